"""Issue 21 (1, 2): `partstad predict` works in its own namespace and exports only labels of the
model it names.

A tiny dataset (2 few-shot + 2 test synthetic chairs) is run through every stage, trained and
evaluated once; predictions then use stems of that dataset (``0003``) and labelled shapes,
and the dataset's stores and the next `evaluate` must not move by one byte or one object.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from own_shapes import coloured_ply_points  # noqa: E402

from stages.stage_table import chain
from stages.store import CategoryStore  # noqa: E402

CAT = "Chair"
N = 1000
TINY = ["-S", "render.image_size=64", "-S", "render.views=[[10, 0], [10, 120], [10, 240]]", "-S", f"data.n_points={N}"]
DATA = [
    *TINY,
    "-S",
    "data.n_fewshot=2",
    "-S",
    "data.n_val=0",
    "-S",
    "data.n_test=2",
    "-S",
    "train.epochs=2",
    "-S",
    "train.ablation_boxes=false",
]
STAGES = chain("evaluate")


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under root, predict's namespace and lock files aside."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock") and p.relative_to(root).parts[0] != "predict"
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A project directory without params.yaml: cache, models/Chair and metrics of the tiny dataset."""
    from click.testing import CliRunner

    from stages.cli import main

    root = tmp_path_factory.mktemp("iso")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        for stage in STAGES:
            res = CliRunner().invoke(main, [stage, "--category", CAT, *DATA])
            assert res.exit_code == 0, (stage, res.output, res.exception)
    return root


def labelled_shape(folder: Path, stem: str, n: int = 1500, seed: int = 0) -> Path:
    """A coloured point cloud with per-point part labels (back above, leg below)."""
    ply = coloured_ply_points(folder, stem, n=n, seed=seed)
    z = np.asarray(trimesh.load(ply).vertices)[:, 2]
    np.save(folder / f"{stem}.labels.npy", np.where(z > 0, 1, 2).astype(np.int64))
    return ply


def metrics(path: Path) -> dict:
    m = json.loads(path.read_text())
    return {"n_test": m["n_test"], "methods": m["methods"]}


def test_colliding_and_labelled_shapes_never_touch_the_dataset(dataset, tmp_path, invoke, monkeypatch):
    monkeypatch.chdir(dataset)
    before = snapshot(dataset / "cache")
    counted = metrics(dataset / "metrics" / "evaluate" / f"{CAT}.json")
    assert counted["n_test"] == 2 and "Chair/0003" in {
        r["object"] for r in json.loads((dataset / "cache/ingest/Chair.zarr/manifest.json").read_text())
    }
    shapes = tmp_path / "shapes"
    mine = labelled_shape(shapes, "0003")  # the stem of a dataset test shape
    labelled_shape(shapes, "mine", seed=1)  # a labelled shape of a new stem
    out = tmp_path / "pred"
    res = invoke(["predict", shapes, "--category", CAT, "--model-dir", dataset / "models" / CAT, "--out", out, *TINY])
    assert res.exit_code == 0, res.output
    assert "[predict] wrote 2 object(s)" in res.output
    # the dataset's stores (ingest manifest, every stage's Chair/0003) are byte for byte as before
    assert snapshot(dataset / "cache") == before
    # the prediction lives in predict's own namespace and comes from the given file
    pred = CategoryStore(str(dataset / "cache" / "predict"), "ingest", CAT)
    assert pred.attrs("Chair/0003")["path"] == str(mine.resolve()) and pred.attrs("Chair/0003")["n_points"] == N
    side = json.loads((out / f"{CAT}_0003_partstad.json").read_text())
    assert side["source_file"] == str(mine.resolve()) and len(side["semantic"]) == N
    assert metrics(out / "metrics" / "evaluate" / f"{CAT}.json")["n_test"] == 2  # the two labelled own shapes, in predict's metrics only
    # the next evaluate of the dataset counts the same objects and gives the same numbers
    res = invoke(["evaluate", "--category", CAT, *DATA, "--metrics", tmp_path / "metrics"])
    assert res.exit_code == 0, res.output
    assert "0 computed, 2 up to date" in res.output
    assert metrics(tmp_path / "metrics" / "evaluate" / f"{CAT}.json") == counted


def _other_model(dataset: Path, where: Path) -> Path:
    """A copy of the trained model with one bias changed: compatible, but another model."""
    from safetensors import safe_open

    from pipeline.train.checkpoint import canonical_safetensors

    target = where / CAT
    shutil.copytree(dataset / "models" / CAT, target)
    path = target / "partstad.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta, tensors = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}
    tensors["out.bias"] = tensors["out.bias"] + 3.0
    path.write_bytes(canonical_safetensors(tensors, meta))
    return target


def test_a_failed_prediction_exports_nothing(dataset, tmp_path, invoke, monkeypatch):
    """An earlier model's cached labels never leave under a new model's name: evaluate fails
    inside predict (per object, then for the whole category) and nothing is written."""
    import stages.evaluate
    from stages.config import load_config
    from stages.model_check import evaluation_problem

    monkeypatch.chdir(tmp_path)
    shape = labelled_shape(tmp_path / "shapes", "solo")
    common = ["--category", CAT, "--cache", tmp_path / "cache", *TINY]
    res = invoke(["predict", shape, "--model-dir", dataset / "models" / CAT, "--out", tmp_path / "a", *common])
    assert res.exit_code == 0 and "wrote 1 object(s)" in res.output, res.output
    other = _other_model(dataset, tmp_path / "other")
    pcache = str(tmp_path / "cache" / "predict")
    cfg = load_config("params.yaml", [a for a in TINY if a != "-S"], missing_ok=True)
    assert evaluation_problem(pcache, cfg, CAT, "Chair/solo", dataset / "models" / CAT) is None
    assert "not computed with the weights" in evaluation_problem(pcache, cfg, CAT, "Chair/solo", other)

    def shape_error(*_a, **_k):  # what a 256-d model meets on another detector's features
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (12x659 and 403x403)")

    monkeypatch.setattr(stages.evaluate, "_predict", shape_error)
    res = invoke(["predict", shape, "--model-dir", other, "--out", tmp_path / "b", *common])
    assert res.exit_code == 1, res.output
    assert "wrote" not in res.output and "FAILED Chair/solo" in res.output and "mat1 and mat2" in res.output
    assert not list((tmp_path / "b").glob(f"{CAT}_*"))
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)

    # evaluate stops for the whole category (a damaged store): still nothing, still no "wrote"
    (tmp_path / "cache" / "predict" / "evaluate" / f"{CAT}.zarr" / "zarr.json").write_text("{garbage")
    res = invoke(["predict", shape, "--model-dir", other, "--out", tmp_path / "c", *common])
    assert res.exit_code == 1, res.output
    assert "wrote" not in res.output and "FAILED Chair/solo" in res.output and "unreadable" in res.output
    assert not list((tmp_path / "c").glob(f"{CAT}_*"))


def test_export_writes_only_labels_of_the_model_it_names(dataset, tmp_path, invoke, monkeypatch):
    project = tmp_path / "proj"
    for d in ("cache", "models"):
        shutil.copytree(dataset / d, project / d, ignore=shutil.ignore_patterns("predict"))
    monkeypatch.chdir(project)
    res = invoke(["export", "--category", CAT, *DATA, "--out", "ok"])
    assert res.exit_code == 0 and "wrote 2 objects" in res.output, res.output
    side = json.loads((project / "ok" / f"{CAT}_0003_partstad.json").read_text())
    assert side["provenance"]["models"]["dir"] == f"models/{CAT}"
    # the model is retrained (another file) after evaluate: its name must not go on the old labels
    retrained = _other_model(dataset, tmp_path / "other") / "partstad.safetensors"
    shutil.copy(retrained, project / "models" / CAT / "partstad.safetensors")
    res = invoke(["export", "--category", CAT, *DATA, "--out", "stale"])
    assert res.exit_code == 1, res.output
    assert "Chair/0003: not exported" in res.output and "not computed with the weights in models/Chair" in res.output
    assert not list((project / "stale").glob("*.json"))
