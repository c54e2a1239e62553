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
from stages.stage_table import ROWS, TABLE, names

DVC = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
CATEGORIES = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["categories"]
NOT_PER_CATEGORY = {r.name for r in TABLE if r.scope == "run"}  # report: reads the per-category metrics as directories, writes one report


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
    files = [str(_module_file(m).relative_to(REPO_ROOT)) for m in module_closure(ROWS[stage].module)]
    missing = [f for f in files if not _covered(f, deps)]
    assert not missing, f"dvc.yaml stage {stage!r} lacks code deps {missing} (run python tools/sync_dvc_deps.py)"


@pytest.mark.parametrize("stage", sorted(DVC))
def test_code_deps_exist_and_are_used(stage):
    deps = [d for d in _deps(stage) if d.startswith(("pipeline/", "stages/"))]
    files = [str(_module_file(m).relative_to(REPO_ROOT)) for m in module_closure(ROWS[stage].module)]
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
    assert list(DVC) == list(names(dvc=True))  # the stage table's rows with a Dvc part, in its order
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
            pattern = "/".join(parts[:i] + ("{category}" + parts[i][len(cat) :],) + parts[i + 1 :])
            patterns.setdefault(pattern, []).append(cat)
        assert patterns, f"{stage}: no per-category outs"
        for pattern, cats in patterns.items():
            assert cats == CATEGORIES, (
                f"{stage}: {pattern} is listed for {cats}, params.yaml has {CATEGORIES} (run python tools/sync_dvc_deps.py)"
            )


def test_generator_expands_the_categories_it_is_given():
    mod = _tool()
    stages = yaml.safe_load(mod.generate(["Bottle", "Mug"]))["stages"]
    assert stages["lift"]["deps"][-2:] == ["cache/segment/Bottle.zarr", "cache/segment/Mug.zarr"]
    assert stages["render"]["outs"] == [{"cache/render/Bottle.zarr": {"persist": True}}, {"cache/render/Mug.zarr": {"persist": True}}]
    assert stages["train"]["plots"][1] == {"plots/train/Mug.csv": {"x": "epoch", "y": "val_miou"}}
    assert stages["ingest"]["cmd"] == "partstad ingest --category Bottle --category Mug"
    assert stages["train"]["cmd"] == "partstad train" and stages["train"]["params"] == ["categories", "train"]


# -- weights are inputs: the stages that load them list them as deps ----------------------------
def test_the_demo_params_load_no_weights_so_no_weights_deps():
    """The committed params use simulated backends: no weights file is a dep anywhere."""
    assert _tool().weights_deps() == {}


def test_real_backends_list_their_weights_as_deps_of_the_stages_that_load_them(tmp_path, write_params):
    mod = _tool()
    sam = tmp_path / "sam_vit_b.pth"
    p = write_params(
        tmp_path,
        ["Bottle", "Kettle"],
        detect={"backend": "grounding_dino", "weights_dir": str(tmp_path / "gdino")},
        adapt={"enabled": True, "out_dir": "models/adapt"},
        segment={"mode": "sam", "sam_checkpoint": str(sam)},
    )
    stages = yaml.safe_load(mod.generate(params_path=p))["stages"]
    assert stages["detect"]["deps"][-3:] == [str(tmp_path / "gdino"), "models/adapt/Bottle", "models/adapt/Kettle"]
    assert stages["adapt_detector"]["deps"][-1] == str(tmp_path / "gdino")
    assert stages["segment"]["deps"][-1] == str(sam)
    for name in ("ingest", "render", "lift", "train", "evaluate"):
        assert not [d for d in stages[name]["deps"] if d.startswith((str(tmp_path), "models/adapt"))], name
    # a path inside the repository is written relative to it; adaptation off: no adapted dirs, no base for adapt_detector
    p = write_params(
        tmp_path,
        ["Bottle"],
        name="rel.yaml",
        detect={"backend": "grounding_dino", "weights_dir": str(REPO_ROOT / "models" / "gdino")},
        adapt={"enabled": False},
    )
    stages = yaml.safe_load(mod.generate(params_path=p))["stages"]
    assert stages["detect"]["deps"][-1] == "models/gdino" and "models/adapt/Bottle" not in stages["detect"]["deps"]
    assert not [d for d in stages["adapt_detector"]["deps"] if "gdino" in d]
    assert not [d for d in stages["segment"]["deps"] if d.endswith(".pth")]


def test_a_hub_id_is_listed_as_its_snapshot_and_an_uncached_one_stops_the_tool(tmp_path, write_params, monkeypatch):
    from tests.stages.test_hub_ids import REPO as HF_REPO
    from tests.stages.test_hub_ids import hf_cache

    mod = _tool()
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    p = write_params(
        tmp_path,
        ["Bottle"],
        detect={"backend": "grounding_dino", "weights_dir": HF_REPO},
        segment={"mode": "sam", "sam_checkpoint": "sam_vit_b"},
    )
    with pytest.raises(SystemExit, match="models--IDEA-Research--grounding-dino-base"):
        mod.generate(params_path=p)
    snap = hf_cache(tmp_path / "hf")
    with pytest.raises(SystemExit, match="sam_vit_b_01ec64.pth"):
        mod.generate(params_path=p)
    ck = tmp_path / "torch" / "hub" / "checkpoints" / "sam_vit_b_01ec64.pth"
    ck.parent.mkdir(parents=True)
    ck.write_bytes(b"w")
    stages = yaml.safe_load(mod.generate(params_path=p))["stages"]
    assert stages["detect"]["deps"][-1] == str(snap) and stages["segment"]["deps"][-1] == str(ck)


def test_bytecode_never_enters_a_dependency_hash():
    """dvc.yaml lists code folders (pipeline/train, ...) as deps; a __pycache__ inside them exists or
    not depending on which process imported the module first, so DVC must ignore it (else a
    fresh clone's `dvc repro` writes another dvc.lock)."""
    from pathlib import Path

    lines = {ln.strip() for ln in (Path(__file__).resolve().parents[2] / ".dvcignore").read_text().splitlines()}
    assert {"__pycache__/", "*.pyc"} <= lines


def test_a_tracked_artefacts_settings_hash_covers_only_its_stages_params():
    """models/, metrics/train|adapt|evaluate record a settings hash; DVC re-runs their stage only
    when its params change, so the hash must not move with another section (else a fresh
    clone's `dvc repro` writes other bytes than the committed dvc.lock)."""
    from stages.config import PipelineConfig, config_hash
    from stages.stage_table import dvc_params

    a = PipelineConfig()
    other = a.model_copy(update={"report": a.report.model_copy(update={"n_failures": a.report.n_failures + 3})})
    assert config_hash(a) != config_hash(other)
    for stage in ("train", "evaluate", "adapt_detector"):
        assert config_hash(a, dvc_params(stage)) == config_hash(other, dvc_params(stage)), stage
    retrained = a.model_copy(update={"train": a.train.model_copy(update={"epochs": a.train.epochs + 1})})
    assert config_hash(a, dvc_params("train")) != config_hash(retrained, dvc_params("train"))
    assert config_hash(a, ("adapt.enabled",)) != config_hash(
        a.model_copy(update={"adapt": a.adapt.model_copy(update={"enabled": not a.adapt.enabled})}), ("adapt.enabled",)
    )
