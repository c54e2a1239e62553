"""dvc.yaml declares, for every stage, the code it really runs (checked against the imports).

A missing code dep would let `dvc repro` call a changed stage "up to date"; the per-object
keys would catch it inside the stage, but only if DVC runs the stage at all.
"""
from __future__ import annotations


import pytest
import yaml

from stages.keys import REPO_ROOT, _module_file, module_closure

DVC = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]


def _deps(stage: str) -> list[str]:
    spec = DVC[stage]
    body = spec.get("do", spec)
    return [d for d in body.get("deps", []) if "${" not in d]


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
    """dvc.yaml is exactly what tools/sync_dvc_deps.py writes (no hand-edited code deps)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sync_dvc_deps", REPO_ROOT / "tools" / "sync_dvc_deps.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    text = (REPO_ROOT / "dvc.yaml").read_text()
    assert mod.sync(text) == text, "dvc.yaml code deps differ from the import graph: run python tools/sync_dvc_deps.py"
