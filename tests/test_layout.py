"""The architecture rules hold: pipeline/ never imports stages/, and no stage imports another."""

from __future__ import annotations

import pytest

from stages.keys import REPO_ROOT, _imports
from stages.stage_table import TABLE

#: Every command module of the stage table (stages/stage_table.py).
STAGE_MODULES = [r.module.split(".", 1)[1] for r in TABLE]


def _modules(package: str) -> list[str]:
    out = []
    for p in sorted((REPO_ROOT / package).rglob("*.py")):
        rel = p.relative_to(REPO_ROOT).with_suffix("")
        parts = list(rel.parts[:-1]) if rel.name == "__init__" else list(rel.parts)
        out.append(".".join(parts))
    return out


@pytest.mark.parametrize("module", _modules("pipeline"))
def test_pipeline_never_imports_the_glue(module):
    from stages.keys import _module_file

    assert not [m for m in _imports(module, _module_file(module)) if m.startswith("stages")]


@pytest.mark.parametrize("stage", STAGE_MODULES)
def test_no_stage_imports_another_stage(stage):
    from stages.keys import _module_file

    others = {f"stages.{s}" for s in STAGE_MODULES} - {f"stages.{stage}"}
    assert not (_imports(f"stages.{stage}", _module_file(f"stages.{stage}")) & others)
