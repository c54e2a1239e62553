"""The whole chain through the real CLI on tiny synthetic data (one category, 5 shapes).

ingest -> render --preview -> visibility -> superpoints -> detect -> segment -> lift ->
train -> evaluate -> report -> export run once per module in a tmp directory; each test
then checks one stage's outputs (arrays, shapes, dtypes, cross-stage consistency).
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from pipeline.data.ply import read_ply
from pipeline.meta import part_names
from stages.stage_table import chain
from stages.store import CategoryStore

CAT = "Chair"
K = len(part_names(CAT))
N = 3000
V = 10
H = W = 96
FEWSHOT, VAL, TEST = ["Chair/0000", "Chair/0001"], ["Chair/0002"], ["Chair/0003", "Chair/0004"]
OID = "Chair/0003"  # a test shape: it goes through every stage including evaluate/export


@pytest.fixture(scope="module")
def pipe(tmp_path_factory, run, write_params):
    """Run every stage once; return the directory layout and each stage's CLI output."""
    root = tmp_path_factory.mktemp("pipe")
    params = write_params(root)
    cache, models, metrics, plots, reports, exports = (root / d for d in ("cache", "models", "metrics", "plots", "reports", "exports"))
    common = ["--params", params, "--cache", cache]
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # render --preview writes reports/previews relative to the cwd
        out["ingest"] = run(["ingest", *common])
        out["render"] = run(["render", *common, "--preview"])
        out["superpoints"] = run(["superpoints", *common, "--preview"])
        for stage in ("visibility", "detect", "segment", "lift"):
            out[stage] = run([stage, *common])
        out["train"] = run(["train", *common, "--models", models, "--metrics", metrics, "--plots", plots, "--device", "cpu"])
        out["evaluate"] = run(["evaluate", *common, "--models", models, "--metrics", metrics, "--device", "cpu"])
        out["report"] = run(["report", "--params", params, "--cache", cache, "--metrics", metrics, "--plots", plots, "--out", reports])
        out["export"] = run(["export", "--params", params, "--cache", cache, "--out", exports])
    return {
        "root": root,
        "params": params,
        "cache": cache,
        "models": models,
        "metrics": metrics,
        "plots": plots,
        "reports": reports,
        "exports": exports,
        "out": out,
    }


def store(pipe, stage: str) -> CategoryStore:
    s = CategoryStore(pipe["cache"], stage, CAT)
    assert (pipe["cache"] / stage / f"{CAT}.zarr").is_dir()
    return s


def test_every_stage_reports_all_objects_computed(pipe):
    for stage in chain("lift"):
        assert f"[{stage}] {CAT}: 5 computed, 0 up to date, 0 failed" in pipe["out"][stage].output
        failures = json.loads((pipe["cache"] / stage / f"{CAT}.zarr" / "failures.json").read_text())
        assert failures["failed"] == [] and failures["n_ok"] == 5
    # 2 test shapes + the validation shape that method auto picks on
    assert f"[evaluate] {CAT}: 3 computed, 0 up to date, 0 failed" in pipe["out"]["evaluate"].output


def test_ingest(pipe):
    ing = store(pipe, "ingest")
    assert ing.object_ids() == FEWSHOT + VAL + TEST
    manifest = json.loads((pipe["cache"] / "ingest" / f"{CAT}.zarr" / "manifest.json").read_text())
    assert {r["object"]: r["split"] for r in manifest} == {
        **dict.fromkeys(FEWSHOT, "fewshot"),
        **dict.fromkeys(VAL, "val"),
        **dict.fromkeys(TEST, "test"),
    }
    d = ing.read_all(OID)
    assert (d["xyz"].shape, d["xyz"].dtype) == ((N, 3), np.float32)
    assert (d["rgb"].shape, d["rgb"].dtype) == ((N, 3), np.uint8)
    assert (d["sem"].shape, d["sem"].dtype) == ((N,), np.int16)
    assert (d["ins"].shape, d["ins"].dtype) == ((N,), np.int32)
    assert d["sem"].min() >= -1 and d["sem"].max() < K
    # normalised frame: centroid at 0, max radius 1
    np.testing.assert_allclose(d["xyz"].mean(0), 0, atol=1e-5)
    assert np.linalg.norm(d["xyz"], axis=1).max() == pytest.approx(1.0, abs=1e-5)
    a = ing.attrs(OID)
    assert "split" not in a and a["simulated"] is True and a["n_points"] == N and a["parts"] == list(part_names(CAT))
    assert len(a["centre"]) == 3 and a["scale"] > 0


def test_render(pipe):
    ren = store(pipe, "render")
    d = ren.read_all(OID)
    p2p = d["pix2pt"]
    assert (p2p.shape, p2p.dtype) == ((V, H, W), np.int32)
    assert p2p.min() == -1 and p2p.max() < N  # background present, ids in range
    assert ((p2p >= 0).sum(axis=(1, 2)) > 0).all()  # the object shows in every view
    assert (d["rgb"].shape, d["rgb"].dtype) == ((V, H, W, 3), np.uint8)
    assert (d["depth"].shape, d["depth"].dtype) == ((V, H, W), np.float32)
    np.testing.assert_array_equal(d["depth"] > 0, p2p >= 0)
    assert d["K"].shape == (3, 3) and d["world_to_cam"].shape == (V, 4, 4) and d["view_dirs"].shape == (V, 3)
    np.testing.assert_allclose(np.linalg.norm(d["view_dirs"], axis=1), 1, atol=1e-5)
    assert ren.array(OID, "pix2pt").chunks == (1, H, W)  # one view per chunk
    assert ren.attrs(OID)["image_size"] == [H, W]
    previews = sorted(p.name for p in (pipe["root"] / "reports" / "previews" / CAT).glob("*_views.png"))
    assert previews == [f"{o.split('/')[1]}_views.png" for o in FEWSHOT + VAL + TEST]
    sheets = sorted(p.name for p in (pipe["root"] / "reports" / "previews" / CAT).glob("*_superpoints.png"))
    assert sheets == [f"{o.split('/')[1]}_superpoints.png" for o in FEWSHOT + VAL + TEST]


def test_visibility_matches_pix2pt(pipe):
    p2p = store(pipe, "render").read(OID, "pix2pt")
    vis = store(pipe, "visibility").read_all(OID)
    assert (vis["visible"].shape, vis["visible"].dtype) == ((V, N), np.bool_)
    assert (vis["uv"].shape, vis["uv"].dtype) == ((V, N, 2), np.float32)
    for v in range(V):
        ids = np.unique(p2p[v][p2p[v] >= 0])
        np.testing.assert_array_equal(np.flatnonzero(vis["visible"][v]), ids)
        # every pixel a point wins is the pixel under that point: (row, col) = floor(v, u)
        r, c = np.nonzero(p2p[v] >= 0)
        uv = vis["uv"][v, p2p[v][r, c]]
        np.testing.assert_array_equal(np.floor(uv[:, 1]).astype(int), r)
        np.testing.assert_array_equal(np.floor(uv[:, 0]).astype(int), c)


def test_superpoints(pipe):
    sup = store(pipe, "superpoints")
    sp = sup.read(OID, "sp")
    assert (sp.shape, sp.dtype) == ((N,), np.int32)
    S = sup.attrs(OID)["n_superpoints"]
    np.testing.assert_array_equal(np.unique(sp), np.arange(S))  # contiguous ids
    assert sup.read(OID, "normal").shape == (N, 3)


def test_detect(pipe):
    d = store(pipe, "detect").read_all(OID)
    B = len(d["xyxy"])
    assert B > 0
    assert d["offsets"].shape == (V + 1,) and d["offsets"].dtype == np.int64
    assert d["offsets"][0] == 0 and d["offsets"][-1] == B and (np.diff(d["offsets"]) >= 0).all()
    for v in range(V):
        assert (d["view"][d["offsets"][v] : d["offsets"][v + 1]] == v).all()
    assert (d["xyxy"].shape, d["xyxy"].dtype) == ((B, 4), np.float32)
    assert (d["xyxy"][:, 2] > d["xyxy"][:, 0]).all() and (d["xyxy"][:, 3] > d["xyxy"][:, 1]).all()
    assert d["view"].dtype == np.int16 and d["label"].dtype == np.int16 and d["score"].dtype == np.float32
    assert d["label"].min() >= 0 and d["label"].max() < K
    assert (d["score"] > 0.5).all() and (d["score"] <= 1).all()
    assert (d["feat"].shape, d["feat"].dtype) == ((B, 256), np.float16)
    assert store(pipe, "detect").attrs(OID)["simulated"] is True


def test_segment(pipe):
    B = len(store(pipe, "detect").read(OID, "xyxy"))
    seg = store(pipe, "segment")
    m = seg.read(OID, "mask")
    assert (m.shape, m.dtype) == ((B, H, W), np.bool_)
    assert seg.array(OID, "mask").chunks == (1, H, W)  # one box per chunk
    assert m.any(axis=(1, 2)).mean() > 0.5  # most boxes got a non-empty mask
    assert seg.attrs(OID)["simulated"] is True


def test_lift_membership(pipe):
    B = len(store(pipe, "detect").read(OID, "xyxy"))
    lift = store(pipe, "lift")
    d = lift.read_all(OID)
    sp = store(pipe, "superpoints").read(OID, "sp")
    S = int(sp.max()) + 1
    for mode in ("mask", "box"):
        pt, bx = d[f"{mode}_point"], d[f"{mode}_box"]
        assert pt.dtype == np.int32 and bx.dtype == np.int32 and pt.shape == bx.shape and len(pt) > 0
        assert 0 <= pt.min() and pt.max() < N and 0 <= bx.min() and bx.max() < B
        assert len(np.unique(pt.astype(np.int64) * B + bx)) == len(pt)  # COO without duplicates
        np.testing.assert_array_equal(d[f"{mode}_sp"], sp)
        assert d[f"{mode}_sp_size"].shape == (S,) and d[f"{mode}_sp_size"].sum() == N
        assert d[f"{mode}_gt"].shape == (S, K + 1)
        np.testing.assert_array_equal(d[f"{mode}_meta"][:1], [K])
    # a mask member is a visible point of the box's view
    vis = store(pipe, "visibility").read(OID, "visible")
    assert vis[d["mask_box_view"][d["mask_box"]], d["mask_point"]].all()
    assert d["whole_object_valid"].shape == (B,)
    a = lift.attrs(OID)
    assert a["n_members_mask"] == len(d["mask_point"]) and a["image_size"] == [H, W] and a["simulated"] is True


def test_train_outputs(pipe):
    assert (pipe["models"] / CAT / "partstad.safetensors").is_file()
    assert (pipe["models"] / CAT / "partstad_boxes.safetensors").is_file()
    with (pipe["plots"] / "train" / f"{CAT}.csv").open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["epoch", "loss", "val_miou"] and len(rows) == 1 + 1 + 3  # epochs 0 (untrained) .. 3
    assert [int(r[0]) for r in rows[1:]] == [0, 1, 2, 3]
    m = json.loads((pipe["metrics"] / "train" / f"{CAT}.json").read_text())
    assert m["epochs"] == 3 and m["partstad"]["n_train"] == 2 and m["partstad"]["n_val"] == 1


def test_evaluate(pipe):
    m = json.loads((pipe["metrics"] / "evaluate" / f"{CAT}.json").read_text())
    assert m["simulated"] is True and m["n_test"] == 2 and m["failed"] == []
    for method in ("partslip", "partstad"):
        assert 0.0 <= m["methods"][method]["miou"] <= 100.0
        assert set(m["methods"][method]["part_iou"]) == set(part_names(CAT))
    # auto: the best method on validation (ties: the simpler), with the numbers it decided on
    auto = m["auto"]
    assert auto["n_val"] == 1 and set(auto["val_miou"]) == {"partslip", "masks_only", "partstad_boxes", "partstad"}
    best = max(auto["val_miou"].values())
    assert auto["method"] == next(k for k in ("partslip", "masks_only", "partstad_boxes", "partstad") if auto["val_miou"][k] == best)
    assert m["methods"]["auto"]["picked"] == auto["method"] and m["methods"]["auto"]["miou"] == m["methods"][auto["method"]]["miou"]
    ev = store(pipe, "evaluate")
    assert ev.object_ids() == sorted(TEST + VAL)  # the evaluate.splits objects + validation (for auto)
    assert m["n_test"] == len(TEST)  # metrics only over the evaluate.splits objects
    for method in ev.attrs(OID)["methods"]:
        sem = ev.read(OID, f"sem_{method}")
        assert (sem.shape, sem.dtype) == ((N,), np.int16) and sem.min() >= -1 and sem.max() < K
        assert ev.read(OID, f"ins_{method}").shape == (N,)


def test_report(pipe):
    html = (pipe["reports"] / "index.html").read_text()
    assert "Simulated" in html and CAT in html
    summary = json.loads((pipe["metrics"] / "summary.json").read_text())
    assert summary["simulated"] is True and 0 <= summary["partstad"]["miou"] <= 100


def _raw_synthetic_xyz(index: int) -> np.ndarray:
    """The synthetic shape's coordinates before ingest normalised them."""
    import pipeline.data.synthetic as synth
    from pipeline.data.cloud import make_cloud

    seen = {}

    def spy(xyz_raw, *a, **kw):
        seen["xyz"] = np.asarray(xyz_raw, dtype=np.float64).copy()
        return make_cloud(xyz_raw, *a, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(synth, "make_cloud", spy)
        synth.generate_shape(CAT, index, n_points=N, seed=0)
    return seen["xyz"]


def test_export_in_original_coordinates(pipe):
    assert "[export] wrote 3 objects" in pipe["out"]["export"].output  # every evaluated shape (test + val)
    stem = pipe["exports"] / f"{CAT}_0003_partstad"
    ply = read_ply(stem.with_suffix(".ply"))
    sem = np.load(f"{stem}_semantic.npy")
    ins = np.load(f"{stem}_instance.npy")
    assert sem.shape == (N,) and ins.shape == (N,) and ply.xyz.shape == (N, 3)
    np.testing.assert_array_equal(ply.props["semantic"], sem)
    np.testing.assert_array_equal(ply.props["instance"], ins)
    np.testing.assert_array_equal(sem, store(pipe, "evaluate").read(OID, "sem_partstad"))
    a = store(pipe, "ingest").attrs(OID)
    xyz = store(pipe, "ingest").read(OID, "xyz").astype(np.float64)
    np.testing.assert_allclose(ply.xyz, xyz * a["scale"] + np.asarray(a["centre"]), atol=1e-9)
    np.testing.assert_allclose(ply.xyz, _raw_synthetic_xyz(3), atol=1e-5)
    assert not list(pipe["exports"].glob(f"{CAT}_0000_*"))  # few-shot shapes were not evaluated


def test_rerun_is_up_to_date(pipe, run):
    common = ["--params", pipe["params"], "--cache", pipe["cache"]]
    for stage in chain("lift"):
        out = run([stage, *common]).output
        assert f"[{stage}] {CAT}: 0 computed, 5 up to date, 0 failed" in out, out
    out = run(["evaluate", *common, "--models", pipe["models"], "--metrics", pipe["metrics"]]).output
    assert f"[evaluate] {CAT}: 0 computed, 3 up to date" in out  # 2 test + 1 val (auto)


def test_render_param_change_recomputes(tmp_path, run, write_params):
    """Changing render.image_size re-renders and, through the fingerprints, re-projects."""
    cache = tmp_path / "cache"
    p1 = write_params(tmp_path, ["Chair", "Bottle"])
    p2 = write_params(tmp_path, ["Chair", "Bottle"], name="params64.yaml", render={"image_size": 64})
    sel = ["--cache", cache, "--objects", "0000"]
    run(["ingest", "--params", p1, *sel])
    for stage in ("render", "visibility"):
        assert "Bottle: 1 computed" in run([stage, "--params", p1, *sel]).output
    for stage in ("render", "visibility"):
        out = run([stage, "--params", p1, *sel]).output
        assert f"[{stage}] Chair: 0 computed, 1 up to date" in out and f"[{stage}] Bottle: 0 computed, 1 up to date" in out
    for stage in ("render", "visibility"):
        out = run([stage, "--params", p2, *sel]).output
        assert f"[{stage}] Chair: 1 computed, 0 up to date" in out and f"[{stage}] Bottle: 1 computed, 0 up to date" in out
    for cat in ("Chair", "Bottle"):
        assert CategoryStore(cache, "render", cat).read(f"{cat}/0000", "pix2pt").shape == (V, 64, 64)
    # ingest did not change: still up to date under the new render params
    assert "Chair: 0 computed, 1 up to date" in run(["ingest", "--params", p2, *sel]).output


def test_retrained_weights_are_used_in_the_same_process(pipe, tmp_path, run, write_params):
    """evaluate caches loaded nets per process; a retrained file must not reuse the old net."""
    import shutil

    import torch

    from pipeline.train.checkpoint import load_weights
    from pipeline.train.decode import predict
    from stages.config import load_config
    from stages.runner import StageContext
    from stages.train_io import prepare_object

    cache, models, metrics = tmp_path / "cache", tmp_path / "models", tmp_path / "metrics"
    shutil.copytree(pipe["cache"], cache)
    shutil.copytree(pipe["models"], models)
    ev_args = ["evaluate", "--params", pipe["params"], "--cache", cache, "--models", models, "--metrics", metrics, "--device", "cpu"]
    assert "3 computed" in run([*ev_args, "--force"]).output  # 2 test + 1 val (auto)
    before = CategoryStore(cache, "evaluate", CAT).read(OID, "prob_partstad")
    old = load_weights(models / CAT / "partstad.safetensors")

    reseeded = write_params(tmp_path, train={"seed": 7, "lr": 1e-2, "ablation_boxes": False})
    run(
        [
            "train",
            "--params",
            reseeded,
            "--cache",
            cache,
            "--models",
            models,
            "--metrics",
            metrics,
            "--plots",
            tmp_path / "plots",
            "--device",
            "cpu",
        ]
    )
    new = load_weights(models / CAT / "partstad.safetensors")
    assert any(not torch.equal(a, b) for a, b in zip(old[0].state_dict().values(), new[0].state_dict().values()))
    assert "3 computed" in run(ev_args).output  # the weights digest is part of the fingerprint
    after = CategoryStore(cache, "evaluate", CAT).read(OID, "prob_partstad")
    ctx = StageContext("evaluate", CAT, str(cache), load_config(pipe["params"]), runtime={"models": str(models)})
    expected = predict(new[0], new[1], prepare_object(ctx, OID, "mask", pos_enc=True))
    np.testing.assert_allclose(after, expected, atol=1e-6)
    assert not np.allclose(after, before, atol=1e-6)


def test_retraining_writes_byte_identical_model_files(pipe, tmp_path, run):
    """`partstad train` twice on the same cache: every model file is byte-identical (metadata
    order included), so evaluate's keys and DVC's hashes do not change on a retrain."""
    models = [tmp_path / "m1", tmp_path / "m2"]
    for m in models:
        run(
            [
                "train",
                "--params",
                pipe["params"],
                "--cache",
                pipe["cache"],
                "--models",
                m,
                "--metrics",
                m / "metrics",
                "--plots",
                tmp_path / "plots",
                "--device",
                "cpu",
            ]
        )
    # the metrics DVC tracks are the same bytes too (no wall times in them)
    first_metrics = (models[0] / "metrics" / "train" / f"{CAT}.json").read_bytes()
    assert b"seconds" not in first_metrics
    assert (models[1] / "metrics" / "train" / f"{CAT}.json").read_bytes() == first_metrics
    names = sorted(p.name for p in (models[0] / CAT).glob("*.safetensors"))
    assert names == ["partstad.safetensors", "partstad_boxes.safetensors"]
    for name in names:
        first = (pipe["models"] / CAT / name).read_bytes()
        assert (models[0] / CAT / name).read_bytes() == first and (models[1] / CAT / name).read_bytes() == first
