"""`partstad --help` and `partstad <stage> --help` exit 0 and say what each stage does."""

from __future__ import annotations

import click
import pytest

from stages.cli import main
from stages.stage_table import TABLE

#: Every command of the stage table (stages/stage_table.py).
STAGES = [r.command for r in TABLE]
#: Commands that write a cache store or a model directory (they take --keep-going / --lock-timeout).
WRITERS = [r.command for r in TABLE if r.scope in ("object", "category") or r.writes]
#: Commands that map over the objects of the cache (the common per-object options).
PER_OBJECT = [r.command for r in TABLE if r.scope == "object"]
#: The command group is lazy (a command's module is imported when it runs), so commands are
#: looked up through the group rather than its (empty) `commands` dict.
COMMANDS = main.list_commands(click.Context(main))


def command(name: str) -> click.Command:
    cmd = main.get_command(click.Context(main), name)
    assert cmd is not None, f"stage {name} is not registered"
    return cmd


def test_main_help_lists_every_stage(invoke):
    res = invoke(["--help"])
    assert res.exit_code == 0, res.output
    assert "Few-shot 3D part segmentation" in res.output
    for name in STAGES:
        assert name in COMMANDS and command(name).name == name, f"stage {name} is not registered"
        assert f"  {name} " in res.output or f"  {name}\n" in res.output
    # the exit-code contract is documented (help text is re-wrapped: compare words)
    assert "Exit codes: 0 done, 1 some object failed or nothing matched, 2 invalid params or options" in " ".join(res.output.split())


def test_version(invoke):
    res = invoke(["--version"])
    assert res.exit_code == 0 and res.output.startswith("partstad, version "), res.output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_stage_help(invoke, name):
    cmd = command(name)
    for flag in ("--help", "-h"):
        res = invoke([name, flag])
        assert res.exit_code == 0, res.output
        assert res.output.startswith(f"Usage: main {name} [OPTIONS]") or res.output.startswith(f"Usage: partstad {name} [OPTIONS]"), (
            res.output
        )
        first_line = (cmd.help or "").strip().splitlines()[0] if cmd.help else ""
        assert len(first_line) > 20, f"`partstad {name}` has no description"
        assert first_line.split()[0] in res.output
        assert "--params" in res.output  # every stage reads params.yaml


@pytest.mark.parametrize("name", PER_OBJECT)
def test_per_object_stages_share_the_common_options(invoke, name):
    res = invoke([name, "--help"])
    # ingest runs no model, so it has no --device
    for opt in ("--cache", "--category", "--objects", "--scheduler", "--force", *(("--device",) if name != "ingest" else ())):
        assert opt in res.output, f"`partstad {name}` lacks {opt}"


@pytest.mark.parametrize("name", WRITERS)
def test_writing_commands_take_keep_going_and_lock_timeout(name):
    opts = {o for p in command(name).params if isinstance(p, click.Option) for o in p.opts}
    assert {"--keep-going", "--lock-timeout"} <= opts, f"`partstad {name}` lacks --keep-going/--lock-timeout"


def test_unknown_command_is_a_usage_error(invoke):
    res = invoke(["rendr"])
    assert res.exit_code == 2 and "No such command 'rendr'" in res.output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_is_documented(name):
    undocumented = [p.opts[0] for p in command(name).params if isinstance(p, click.Option) and not p.help]
    assert undocumented == [], f"`partstad {name}` options without help: {undocumented}"
