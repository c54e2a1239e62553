"""`partstad import-partstad`: original PartSTAD preprocessing -> our six stores -> lift/train/evaluate."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from scipy.ndimage import binary_dilation

from pipeline.cameras import make_cameras, project
from pipeline.data.cloud import normalise
from pipeline.data.ply import write_ply
from pipeline.detect.imported import object_paths
from stages.cli import main
from stages.stage_table import ROWS
from stages.store import CategoryStore

CAT = "Chair"  # parts: arm back leg seat wheel
V, S = 10, 64  # 10 paper views of 64 x 64
FEW, TEST, BAD_MASK, BAD_N, NO_PRE = "101", "202", "303", "404", "505"
IMPORTED = ROWS["import_partstad"].writes


def _chair(rng, n=500):
    """Raw (un-normalised) chair points with back (1), legs (2, 4 instances) and seat (3)."""
    n_seat, n_back = n * 2 // 5, n * 3 // 10
    n_leg = n - n_seat - n_back
    seat = rng.uniform([-1, 0, -1], [1, 0.1, 1], (n_seat, 3))
    back = rng.uniform([-1, 0.1, -1], [1, 1.5, -0.85], (n_back, 3))
    corners = np.array([[-0.9, -0.9], [0.9, -0.9], [-0.9, 0.9], [0.9, 0.9]])
    leg_ins = np.arange(n_leg) % 4
    legs = np.column_stack([corners[leg_ins, 0], rng.uniform(-1, 0, n_leg), corners[leg_ins, 1]])
    legs[:, [0, 2]] += rng.uniform(-0.05, 0.05, (n_leg, 2))
    xyz = np.concatenate([seat, back, legs]) * 7.0 + [30.0, -4.0, 12.0]
    sem = np.concatenate([np.full(n_seat, 3), np.full(n_back, 1), np.full(n_leg, 2)])
    ins = np.concatenate([np.zeros(n_seat, int), np.ones(n_back, int), 2 + leg_ins])
    colours = np.array([[0, 0, 0], [200, 40, 40], [40, 200, 40], [40, 40, 200]])
    rgb = np.clip(colours[sem] + rng.integers(-20, 20, (n, 3)), 0, 255).astype(np.uint8)
    return xyz.astype(np.float32), rgb, sem, ins


def _write_partnete(root, split, oid, xyz, rgb, sem, ins):
    d = root / "data" / split / CAT / oid
    d.mkdir(parents=True)
    write_ply(d / "pc.ply", xyz, rgb)
    np.save(d / "label.npy", {"semantic_seg": sem, "instance_seg": ins}, allow_pickle=True)


def _write_preprocessed(save_dir, oid, xyz_norm, rgb, sem, rng):
    """The original layout (SPEC §9): renders, pc_idx, screen_coords, superpoints, GLIP, SAM."""
    P = object_paths(save_dir, CAT, oid)
    for d in (P["rendered_img"], P["pc_idx"].parent, P["pred"].parent, P["mask"].parent):
        d.mkdir(parents=True, exist_ok=True)
    cams = make_cameras(image_size=S)
    uv, z = project(cams, xyz_norm)
    pc_idx = np.full((V, S, S), -1, np.int64)
    for v in range(V):  # 1-pixel z-buffer: the nearest point wins its pixel
        col, row = np.floor(uv[v]).astype(int).T
        for p in np.argsort(-z[v]):
            pc_idx[v, row[p], col[p]] = p
        img = np.full((S, S, 4), 254, np.uint8)
        fg = pc_idx[v] >= 0
        img[fg, :3] = rgb[pc_idx[v][fg]]
        Image.fromarray(img, "RGBA").save(P["rendered_img"] / f"{v}.png")
    np.save(P["pc_idx"], pc_idx)
    np.save(P["screen_coords"], uv.astype(np.float32))
    groups = []  # superpoints: each part cut into slabs along x (unequal sizes -> object array)
    for part in np.unique(sem):
        idx = np.flatnonzero(sem == part)
        idx = idx[np.argsort(xyz_norm[idx, 0])]
        groups += [g.tolist() for g in np.array_split(idx, max(1, len(idx) // 23))]
    sp_arr = np.empty(len(groups), dtype=object)
    for i, g in enumerate(groups):
        sp_arr[i] = g
    np.save(P["superpoint"], sp_arr, allow_pickle=True)
    recs, masks = [], []
    for v in range(V):  # one box per visible part, score descending within the view
        for part in np.unique(sem):
            m = binary_dilation(np.isin(pc_idx[v], np.flatnonzero(sem == part)))
            if m.sum() < 4:
                continue
            rows, cols = np.nonzero(m)
            x1, y1, x2, y2 = cols.min(), rows.min(), cols.max() + 1, rows.max() + 1
            recs.append(
                {
                    "image_id": v,
                    "category_id": int(part) + 1,
                    "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                    "score": float(rng.uniform(0.5, 1.0)),
                    "pos": [1, 2],
                    "level": 0,
                }
            )
            masks.append(m)
    order = np.lexsort(([-r["score"] for r in recs], [r["image_id"] for r in recs]))
    recs, masks = [recs[i] for i in order], np.stack([masks[i] for i in order]).astype(np.float64)
    B = len(recs)
    labels = np.array([r["category_id"] - 1 for r in recs])
    feat = (rng.standard_normal((B, 256)) * 0.3 + np.eye(5, 256)[labels]).astype(np.float32)
    P["pred"].write_text(json.dumps(recs))
    np.savez_compressed(P["feature"], feature=feat, fused_feature=feat, logit=np.zeros((B, 5)), centerness=np.zeros(B))
    np.savez_compressed(P["mask"], mask=masks)
    return {"recs": recs, "feat": feat, "masks": masks > 0.5, "pc_idx": pc_idx, "uv": uv, "groups": groups}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("import")
    root, save = tmp / "PartNetE", tmp / "partstad_save"
    refs = {}
    for i, (split, oid) in enumerate([("few_shot", FEW), ("test", TEST), ("test", BAD_MASK), ("test", BAD_N), ("test", NO_PRE)]):
        rng = np.random.default_rng(i)
        xyz, rgb, sem, ins = _chair(rng, 500 + 20 * i)
        _write_partnete(root, split, oid, xyz, rgb, sem, ins)
        if oid == NO_PRE:
            continue
        xyz_n = normalise(xyz)[0]
        if oid == BAD_N:  # preprocessing of a cloud with 3 points fewer than the PartNetE one
            xyz_n, rgb, sem = xyz_n[:-3], rgb[:-3], sem[:-3]
        refs[oid] = _write_preprocessed(save, oid, xyz_n, rgb, sem, rng) | {"sem": sem, "xyz": xyz_n}
    object_paths(save, CAT, BAD_MASK)["mask"].write_bytes(b"PK\x03\x04 truncated zip")
    params = tmp / "params.yaml"
    params.write_text("categories: [Chair]\ntrain:\n  epochs: 2\n  batch_size: 1\nevaluate:\n  splits: [test]\n")
    return {"tmp": tmp, "root": root, "save": save, "params": params, "cache": tmp / "cache", "refs": refs}


def _cli(*args, code=0):
    """`partstad <args>` in-process; ``code``: the exit code it must give (1: some object failed)."""
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert res.exit_code == code, res.output
    return res.output


@pytest.fixture(scope="module")
def imported(dataset):
    """The import of the dataset: two bad objects fail, so the command exits 1 (the others are imported)."""
    d = dataset
    out = _cli("import-partstad", "--params", d["params"], "--cache", d["cache"], "--save-dir", d["save"], "--data-root", d["root"], code=1)
    assert "2 object(s) failed to import (listed in each store's failures.json); the others are imported" in out
    return out


def _store(d, stage):
    return CategoryStore(str(d["cache"]), stage, CAT)


def test_stores_hold_the_imported_arrays(dataset, imported):
    d = dataset
    assert "2 imported, 0 up to date, 2 failed" in imported
    for oid in (FEW, TEST):
        o, ref = f"{CAT}/{oid}", d["refs"][oid]
        for stage in IMPORTED:
            assert _store(d, stage).is_complete(o), (stage, oid)
        ing = _store(d, "ingest").read_all(o, ["xyz", "sem"])
        np.testing.assert_allclose(ing["xyz"], ref["xyz"], atol=1e-6)
        np.testing.assert_array_equal(ing["sem"], ref["sem"])
        ren = _store(d, "render")
        assert ren.attrs(o)["backend"] == "import" and ren.attrs(o)["image_size"] == [S, S]
        pix2pt = ren.read(o, "pix2pt")
        assert pix2pt.dtype == np.int32 and pix2pt.shape == (V, S, S)
        np.testing.assert_array_equal(pix2pt, ref["pc_idx"])
        assert ren.read(o, "rgb").shape == (V, S, S, 3) and ren.read(o, "world_to_cam").shape == (V, 4, 4)
        np.testing.assert_allclose(ren.read(o, "K"), make_cameras(image_size=S).K)
        depth = ren.read(o, "depth")
        assert ((depth > 0) == (pix2pt >= 0)).all() and depth.max() < 2.2 + 1
        vis = _store(d, "visibility").read_all(o, ["uv", "visible"])
        np.testing.assert_array_equal(vis["uv"], ref["uv"])
        for v in range(V):
            np.testing.assert_array_equal(np.flatnonzero(vis["visible"][v]), np.unique(ref["pc_idx"][v])[1:])
        sps = _store(d, "superpoints")
        sp = sps.read(o, "sp")
        for s, g in enumerate(ref["groups"]):
            assert (sp[g] == s).all()
        assert (sps.read(o, "normal") == 0).all()
        det = _store(d, "detect")
        a = det.read_all(o, ["xyxy", "view", "label", "score", "feat", "offsets"])
        recs = ref["recs"]
        exp = np.array([[x, y, x + w, y + h] for x, y, w, h in (r["bbox"] for r in recs)], np.float32)
        np.testing.assert_allclose(a["xyxy"], exp)
        np.testing.assert_array_equal(a["label"], [r["category_id"] - 1 for r in recs])
        np.testing.assert_array_equal(a["view"], [r["image_id"] for r in recs])
        np.testing.assert_allclose(a["score"], [r["score"] for r in recs], rtol=1e-6)
        assert a["feat"].dtype == np.float16 and a["feat"].shape == (len(recs), 256)
        np.testing.assert_allclose(a["feat"].astype(np.float32), ref["feat"], atol=2e-3)
        assert a["offsets"].shape == (V + 1,) and a["offsets"][-1] == len(recs)
        assert det.attrs(o)["backend"] == "import" and det.attrs(o)["simulated"] is False
        seg = _store(d, "segment")
        np.testing.assert_array_equal(seg.read(o, "mask"), ref["masks"])
        assert seg.attrs(o)["mode"] == "import"
    man = {r["object"]: r["split"] for r in _store(d, "ingest").read_json("manifest.json")}
    assert man == {f"{CAT}/{FEW}": "fewshot", f"{CAT}/{TEST}": "test"}


def test_bad_objects_are_in_every_failures_json(dataset, imported):
    d = dataset
    for stage in IMPORTED:
        fails = {f["object"]: f["error"] for f in _store(d, stage).read_json("failures.json")["failed"]}
        assert set(fails) == {f"{CAT}/{BAD_MASK}", f"{CAT}/{BAD_N}"}, stage
        assert "sam_mask.npz" in fails[f"{CAT}/{BAD_MASK}"]
        assert (
            "screen_coords.npy" in fails[f"{CAT}/{BAD_N}"]
            and "has 557 points" in fails[f"{CAT}/{BAD_N}"]
            and "has 560" in fails[f"{CAT}/{BAD_N}"]
        )
        assert not _store(d, stage).is_complete(f"{CAT}/{BAD_MASK}")
    assert f"{CAT}/{NO_PRE}" not in _store(d, "ingest").object_ids()


def test_rerun_skips_up_to_date_objects(dataset, imported):
    d = dataset
    args = ["import-partstad", "--params", d["params"], "--cache", d["cache"], "--save-dir", d["save"], "--data-root", d["root"]]
    out = _cli(*args, code=1)
    assert "0 imported, 2 up to date, 2 failed" in out
    assert f"FAILED {CAT}/{BAD_MASK}" in out and f"FAILED {CAT}/{BAD_N}" in out
    # --keep-going: the same failures are reported (and stay in failures.json), exit 0
    out = _cli(*args, "--keep-going")
    assert "0 imported, 2 up to date, 2 failed" in out and f"FAILED {CAT}/{BAD_MASK}" in out
    assert "WARNING 2 object(s) failed to import" in out and "exit 0 because of --keep-going" in out
    for stage in IMPORTED:
        assert {f["object"] for f in _store(d, stage).read_json("failures.json")["failed"]} == {f"{CAT}/{BAD_MASK}", f"{CAT}/{BAD_N}"}


def test_lift_train_evaluate_on_imported_data(dataset, imported):
    d, tmp = dataset, dataset["tmp"]
    common = ["--params", d["params"], "--cache", d["cache"]]
    out = _cli("lift", *common)
    assert "2 computed" in out and "0 failed" in out
    lift = _store(d, "lift")
    assert lift.attrs(f"{CAT}/{FEW}")["simulated"] is False and lift.attrs(f"{CAT}/{FEW}")["n_members_mask"] > 0
    _cli("train", *common, "--device", "cpu", "--models", tmp / "models", "--metrics", tmp / "metrics", "--plots", tmp / "plots")
    model = tmp / "models" / CAT / "partstad.safetensors"
    assert model.is_file() and model.stat().st_size > 0
    _cli("evaluate", *common, "--device", "cpu", "--models", tmp / "models", "--metrics", tmp / "metrics")
    metrics = json.loads((tmp / "metrics" / "evaluate" / f"{CAT}.json").read_text())
    assert metrics["n_test"] == 1 and metrics["simulated"] is False
    assert {"partslip", "partstad"} <= set(metrics["methods"])
    assert 0 <= metrics["methods"]["partstad"]["miou"] <= 100


def test_import_reports_carry_their_seconds_not_a_repaired_list(dataset, imported, tmp_path):
    """Each store's report: the run's seconds in `seconds`, nothing repaired (was: seconds in `repaired`)."""
    from pipeline.data.partnete import list_partnete
    from stages.common import load_params, make_context
    from stages.import_partstad import STAGES, import_category

    d = dataset
    rows = [
        {"object": f"{c}/{o}", "split": s, "source": "partnete", "path": str(p)}
        for c, o, s, p in list_partnete(d["root"], categories=[CAT])
        if o == FEW
    ]
    ctx = make_context(
        "import",
        CAT,
        str(tmp_path / "cache"),
        load_params(str(d["params"])),
        runtime={"sources": {r["object"]: r for r in rows}, "save_dir": str(d["save"]), "data_root": str(d["root"])},
    )
    reports = import_category(ctx, rows, "sync", force=False)
    assert [r.stage for r in reports] == list(STAGES) == list(IMPORTED)
    for r in reports:
        assert r.done == [f"{CAT}/{FEW}"] and r.repaired == [] and isinstance(r.seconds, float) and r.seconds > 0
        assert "repaired" not in r.summary() and r.summary().endswith(f"({r.seconds:.1f} s)")


def test_import_keys_are_the_key_resolvers(dataset, imported):
    """One key scheme: the stored import keys are what KeyResolver computes for the six stores
    written together (this module's code hash; no hand-bumped version)."""
    from stages.keys import KeyResolver, code_hash

    d = dataset
    o = f"{CAT}/{FEW}"
    stored = {s: _store(d, s).stored_fingerprint(o) for s in IMPORTED}
    view = {"import": str(d["save"].resolve()), "data_root": str(d["root"].resolve())}
    from stages.import_partstad import _files_digest

    files = _files_digest(view["import"], str(d["root"].resolve() / "data" / "few_shot" / CAT / FEW), CAT, FEW)
    resolver = KeyResolver(
        lambda s: view, lambda s: _store(d, s), extra=lambda s, oid: {"files": files}, code=lambda s: code_hash("import_partstad")
    )
    assert resolver.keys_written_together(list(IMPORTED), o) == stored
    # the downstream resolver accepts them (imported results are roots whose recorded upstream chain agrees)
    assert KeyResolver(lambda s: {}, lambda s: _store(d, s)).current("segment", o) == stored["segment"]
