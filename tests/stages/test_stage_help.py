"""`partstad --help` and `partstad <stage> --help` exit 0 and say what each stage does."""
from __future__ import annotations

import pytest

from stages.cli import main

STAGES = ["ingest", "render", "visibility", "superpoints", "detect", "segment", "lift", "train", "evaluate", "report", "export"]


def test_main_help_lists_every_stage(invoke):
    res = invoke(["--help"])
    assert res.exit_code == 0, res.output
    assert "Few-shot 3D part segmentation" in res.output
    for name in STAGES:
        assert name in main.commands, f"stage {name} is not registered"
        assert f"  {name} " in res.output or f"  {name}\n" in res.output


@pytest.mark.parametrize("name", sorted(main.commands))
def test_stage_help(invoke, name):
    cmd = main.commands[name]
    for flag in ("--help", "-h"):
        res = invoke([name, flag])
        assert res.exit_code == 0, res.output
        assert res.output.startswith(f"Usage: main {name} [OPTIONS]") or res.output.startswith(f"Usage: partstad {name}")
        first_line = (cmd.help or "").strip().splitlines()[0] if cmd.help else ""
        assert len(first_line) > 20, f"`partstad {name}` has no description"
        assert first_line.split()[0] in res.output
        assert "--params" in res.output  # every stage reads params.yaml


@pytest.mark.parametrize("name", [s for s in STAGES if s not in ("train", "report", "export")])
def test_per_object_stages_share_the_common_options(invoke, name):
    res = invoke([name, "--help"])
    for opt in ("--cache", "--category", "--objects", "--scheduler", "--device", "--force"):
        assert opt in res.output, f"`partstad {name}` lacks {opt}"


def test_unknown_command_is_a_usage_error(invoke):
    res = invoke(["rendr"])
    assert res.exit_code == 2 and "No such command 'rendr'" in res.output


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_option_is_documented(name):
    import click

    undocumented = [p.opts[0] for p in main.commands[name].params if isinstance(p, click.Option) and not p.help]
    assert undocumented == [], f"`partstad {name}` options without help: {undocumented}"
