"""The stage table (stages/stage_table.py) is the one place the stage graph is written.

Every list derived from it is checked equal to it here (a derivation that drifts fails), the
lists that cannot be derived (a docstring, other helpers' constants) are checked against
it, and any hand-written list of stage names in the code or tests must follow its order.
"""

from __future__ import annotations

import ast
import re
import typing

import click
import pytest
import yaml

from stages import stage_table as st
from stages.keys import REPO_ROOT
from stages.keys import STAGES as KEY_GRAPH
from stages.stage_table import ROWS, TABLE, chain, dvc_deps, names

OBJECT = set(names("object"))


def _sync_tool():
    from tests.stages.test_dvc_yaml import _tool

    return _tool()


def _closure(stages: tuple[str, ...]) -> set[str]:
    """Object stages reachable from ``stages`` through the upstream graph (themselves included)."""
    out: set[str] = set()
    todo = [s for s in stages if s in OBJECT]
    while todo:
        s = todo.pop()
        if s not in out:
            out.add(s)
            todo.extend(ROWS[s].upstream)
    return out


# -- the table is consistent in itself --------------------------------------------------------
def test_names_and_commands_are_unique_and_well_formed():
    assert len({r.name for r in TABLE}) == len(TABLE) and len({r.command for r in TABLE}) == len(TABLE)
    for r in TABLE:
        assert re.fullmatch(r"[a-z][a-z_]*", r.name) and r.command == r.name.replace("_", "-"), r.name
        assert r.scope in typing.get_args(st.Scope), r.name
        assert len(r.help) > 20 and r.help.endswith("."), r.name


def test_upstreams_are_earlier_object_stages():
    """The key graph is acyclic and in run order: a stage's upstreams are object stages listed before it."""
    order = [r.name for r in TABLE]
    for r in TABLE:
        for u in r.upstream + r.reads + r.writes:
            assert u in ROWS, f"{r.name}: unknown stage {u!r}"
        for u in r.upstream:
            assert u in OBJECT and order.index(u) < order.index(r.name), f"{r.name}: upstream {u} is not an earlier object stage"
        for u in r.reads:
            assert order.index(u) < order.index(r.name), f"{r.name}: reads {u}, which runs later"
        if r.scope != "object":
            assert not r.upstream, f"{r.name}: only object stages have keyed upstreams"


def test_dvc_reruns_a_stage_whenever_a_key_upstream_changes():
    """For an object stage, the stores it reads are key upstreams, and every key upstream is
    reached through what DVC tracks (else `dvc repro` would skip a stage whose keys changed)."""
    for r in TABLE:
        if r.scope != "object":
            continue
        assert {s for s in r.reads if s in OBJECT} <= set(r.upstream), r.name
        assert set(r.upstream) <= _closure(r.reads) - {r.name}, f"{r.name}: upstreams {set(r.upstream) - _closure(r.reads)} not read"


def test_stores_written_in_place_of_stages_are_closed_upstream():
    """import-partstad writes whole chains: every upstream of a store it writes is written too."""
    for r in TABLE:
        for s in r.writes:
            assert s in OBJECT and set(ROWS[s].upstream) <= set(r.writes), (r.name, s)


def test_sections_are_config_sections_and_dvc_params_are_settings():
    from stages.config import PipelineConfig

    fields = set(PipelineConfig.model_fields)
    for r in TABLE:
        assert set(r.sections) <= fields, r.name
        if r.dvc is not None and r.dvc.params is not None:
            assert {p.split(".")[0] for p in r.dvc.params} <= fields, r.name


@pytest.mark.parametrize("row", TABLE, ids=lambda r: r.name)
def test_every_row_names_a_module_that_defines_its_command(row):
    import importlib

    cmd = getattr(importlib.import_module(row.module), row.attr, None)
    assert isinstance(cmd, click.Command) and cmd.name == row.command, f"{row.module}.{row.attr} is not the click command {row.command!r}"


def test_chain_is_the_upstream_closure_in_run_order():
    assert chain("ingest") == ("ingest",)
    assert chain("segment") == ("ingest", "render", "detect", "segment")
    assert chain("lift") == ("ingest", "render", "visibility", "superpoints", "detect", "segment", "lift")
    assert chain("evaluate") == (*chain("lift"), "train", "evaluate")  # evaluate reads train's model
    with pytest.raises(KeyError, match="no stage 'rendr'"):
        chain("rendr")


def test_dvc_deps_are_the_outs_of_the_stages_read():
    assert dvc_deps(ROWS["lift"]) == tuple(f"cache/{s}/{{category}}.zarr" for s in ("visibility", "superpoints", "detect", "segment"))
    assert dvc_deps(ROWS["evaluate"])[0] == "models/{category}"


# -- what is derived from the table equals it ---------------------------------------------------
def test_key_graph_is_the_object_rows():
    assert list(KEY_GRAPH) == list(names("object"))
    assert all(KEY_GRAPH[r.name].upstream == r.upstream and KEY_GRAPH[r.name].sections == r.sections for r in TABLE if r.scope == "object")


def test_import_writes_the_rows_stores_with_their_upstreams():
    from stages.import_partstad import STAGES as IMPORTED

    assert list(IMPORTED) == [s for s in names("object") if s in ROWS["import_partstad"].writes]
    assert all(IMPORTED[s] == ROWS[s].upstream for s in IMPORTED)


def test_cli_commands_are_the_rows_in_order():
    from stages.cli import COMMANDS, main

    assert list(COMMANDS) == [r.command for r in TABLE]
    assert main.list_commands(click.Context(main)) == [r.command for r in TABLE]
    for r in TABLE:
        assert COMMANDS[r.command] == (r.module, r.attr, r.help)


def test_cli_help_names_the_dvc_stages_in_order():
    """`partstad --help` says "Stages, in order: a -> b -> ...": the dvc stages (adapt-detector is optional)."""
    from stages.cli import main

    said = re.search(r"Stages, in order: (.*?)\. ", " ".join((main.help or "").split())).group(1).split(" -> ")
    assert said == [r.command for r in TABLE if r.dvc is not None and r.name != "adapt_detector"]


def test_dvc_yaml_stages_are_the_rows_with_a_dvc_part():
    tool = _sync_tool()
    assert list(tool.STAGES) == list(names(dvc=True))
    committed = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    assert list(committed) == list(names(dvc=True))
    for r in TABLE:
        if r.dvc is None:
            continue
        data_deps = [d for d in committed[r.name]["deps"] if not d.startswith(("pipeline/", "stages/"))]
        expected = [
            d.replace("{category}", c)
            for d in dvc_deps(r)
            for c in (yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["categories"] if "{category}" in d else ["{category}"])
        ]
        assert data_deps[: len(expected)] == expected, r.name
        assert committed[r.name]["cmd"].split()[:2] == ["partstad", r.command]


def test_weights_deps_name_table_stages():
    """tools/sync_dvc_deps.py adds weights deps by stage name: they must be dvc stages."""
    import inspect

    src = inspect.getsource(_sync_tool().weights_deps)
    used = set(re.findall(r'setdefault\("(\w+)"', src))
    try:  # the backend registries (stages/backends) say which stages load weights
        from stages.backends.lookup import STAGE_REGISTRY

        used |= set(STAGE_REGISTRY)
    except ImportError:
        pass
    assert used and used <= set(names(dvc=True)), used


# -- lists that cannot be derived are checked against the table --------------------------------
def test_other_stage_lists_agree_with_the_table():
    from stages.cpu_numerics import PINNED_COMMANDS

    assert PINNED_COMMANDS <= {r.command for r in TABLE}
    predict = ast.parse((REPO_ROOT / "stages" / "predict.py").read_text())
    chains = [ast.literal_eval(n.value) for n in predict.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "CHAIN"]
    assert chains == [chain("lift")[1:]], "stages/predict.py CHAIN: the object stages after ingest, up to lift"


def _string_lists(path) -> list[tuple[int, list[str]]]:
    """Every list/tuple literal of 3+ string constants in a file, with its line."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, (ast.List, ast.Tuple))
            and len(node.elts) >= 3
            and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts)
        ):
            out.append((node.lineno, [e.value for e in node.elts]))
    return out


def test_hand_written_stage_lists_follow_the_table_order():
    """A literal chain (3+ stage names or commands, starting at ingest) lists them in run order, each once."""
    rank = {**{r.name: i for i, r in enumerate(TABLE)}, **{r.command: i for i, r in enumerate(TABLE)}}
    bad = []
    for folder in ("stages", "pipeline", "tests", "tools", "benchmarks"):
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            for line, items in _string_lists(path):
                if items[0] == "ingest" and all(i in rank for i in items):
                    ranks = [rank[i] for i in items]
                    if ranks != sorted(set(ranks)):
                        bad.append(f"{path.relative_to(REPO_ROOT)}:{line} {items}")
    assert not bad, "stage lists out of the stage table's order:\n" + "\n".join(bad)
