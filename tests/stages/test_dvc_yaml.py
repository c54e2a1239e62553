"""dvc.yaml declares, for every stage, the code it really runs (checked against the imports),
and, one stage per pipeline step, the outs of every category of params.yaml.

A missing code dep would let `dvc repro` call a changed stage "up to date"; the per-object
keys would catch it inside the stage, but only if DVC runs the stage at all. A category
missing from a stage's outs would be computed but neither tracked nor shared by DVC.
"""
from __future__ import annotations

from pathlib import PurePosixPath

import pytest
import yaml

from stages.keys import REPO_ROOT, _module_file, module_closure

DVC = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
CATEGORIES = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["categories"]
NOT_PER_CATEGORY = {"report"}  # reads the per-category metrics as directories, writes one report


def _deps(stage: str) -> list[str]:
    return list(DVC[stage].get("deps", []))


def _outs(stage: str) -> list[str]:
    """Every path the stage writes: outs, metrics and plots (entries with options are one-key mappings)."""
    return [o if isinstance(o, str) else next(iter(o)) for key in ("outs", "metrics", "plots") for o in DVC[stage].get(key, [])]


def _tool():
    """tools/sync_dvc_deps.py as a module (tools/ is not a package)."""
    import importlib.util
    import sys

    if "sync_dvc_deps" not in sys.modules:
        spec = importlib.util.spec_from_file_location("sync_dvc_deps", REPO_ROOT / "tools" / "sync_dvc_deps.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules["sync_dvc_deps"] = mod  # dataclasses look their module up there
        spec.loader.exec_module(mod)
    return sys.modules["sync_dvc_deps"]


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("stage", sorted(DVC))
def test_code_deps_cover_every_module_the_stage_imports(stage):
    deps = _deps(stage)
    files = [str(_module_file(m).relative_to(REPO_ROOT)) for m in module_closure(f"stages.{stage}")]
    missing = [f for f in files if not _covered(f, deps)]
    assert not missing, f"dvc.yaml stage {stage!r} lacks code deps {missing} (run python tools/sync_dvc_deps.py)"


@pytest.mark.parametrize("stage", sorted(DVC))
def test_code_deps_exist_and_are_used(stage):
    deps = [d for d in _deps(stage) if d.startswith(("pipeline/", "stages/"))]
    files = [str(_module_file(m).relative_to(REPO_ROOT)) for m in module_closure(f"stages.{stage}")]
    for d in deps:
        assert (REPO_ROOT / d).exists(), f"{stage}: dep {d} does not exist"
        assert any(f == d or f.startswith(d + "/") for f in files), f"{stage}: dep {d} is not imported by the stage"


def test_generator_reproduces_dvc_yaml():
    """dvc.yaml is exactly what tools/sync_dvc_deps.py writes (no hand edits, categories of params.yaml)."""
    mod = _tool()
    text = (REPO_ROOT / "dvc.yaml").read_text()
    assert mod.generate() == text, "dvc.yaml differs from the import graph or params.yaml categories: run python tools/sync_dvc_deps.py"


def test_one_stage_per_step_with_the_outs_of_every_category():
    """No foreach (one `partstad` process per step); each per-category stage lists, for each
    of its output patterns, exactly the categories of params.yaml, and re-runs when they change."""
    assert {"ingest", "train", "evaluate", "report"} <= set(DVC)
    for stage, spec in DVC.items():
        assert not {"foreach", "matrix", "do"} & set(spec), f"{stage}: uses foreach/matrix; one stage per step"
        assert "${" not in spec["cmd"], f"{stage}: templated cmd {spec['cmd']!r}"
        if stage in NOT_PER_CATEGORY:
            continue
        assert "categories" in spec.get("params", []), f"{stage}: `categories` is not among its params"
        patterns: dict[str, list[str]] = {}
        for out in _outs(stage):
            parts = PurePosixPath(out).parts
            hits = [i for i, p in enumerate(parts) if p.split(".")[0] in CATEGORIES]
            assert len(hits) == 1, f"{stage}: out {out} names no category of params.yaml (or several)"
            i = hits[0]
            cat = parts[i].split(".")[0]
            pattern = "/".join(parts[:i] + ("{category}" + parts[i][len(cat):],) + parts[i + 1:])
            patterns.setdefault(pattern, []).append(cat)
        assert patterns, f"{stage}: no per-category outs"
        for pattern, cats in patterns.items():
            assert cats == CATEGORIES, f"{stage}: {pattern} is listed for {cats}, params.yaml has {CATEGORIES} (run python tools/sync_dvc_deps.py)"


def test_generator_expands_the_categories_it_is_given():
    mod = _tool()
    stages = yaml.safe_load(mod.generate(["Bottle", "Mug"]))["stages"]
    assert stages["lift"]["deps"][-2:] == ["cache/segment/Bottle.zarr", "cache/segment/Mug.zarr"]
    assert stages["render"]["outs"] == [{"cache/render/Bottle.zarr": {"persist": True}}, {"cache/render/Mug.zarr": {"persist": True}}]
    assert stages["train"]["plots"][1] == {"plots/train/Mug.csv": {"x": "epoch", "y": "val_miou"}}
    assert stages["ingest"]["cmd"] == "partstad ingest --category Bottle --category Mug"
    assert stages["train"]["cmd"] == "partstad train" and stages["train"]["params"] == ["categories", "train"]
