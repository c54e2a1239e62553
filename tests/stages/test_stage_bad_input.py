"""Bad inputs through the real CLI: each bad object is recorded and skipped, the rest completes,
and the command exits 1 (0 with --keep-going) so that a partial result is never mistaken for a whole one."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from pipeline.data.ply import read_ply, write_ply
from pipeline.meta import part_names
from stages.stage_table import chain
from stages.store import CategoryStore

CAT = "Chair"
K = len(part_names(CAT))


def _cloud(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xyz = rng.normal(size=(n, 3)) * [0.3, 0.5, 0.2] + [10.0, -4.0, 2.5]  # far from the origin, unit-less scale
    rgb = rng.integers(0, 256, (n, 3)).astype(np.uint8)
    sem = rng.integers(-1, K, n)
    ins = np.where(sem >= 0, sem * 10 + rng.integers(0, 2, n), -1)
    return xyz, rgb, sem, ins


def _write_object(d: Path, xyz, rgb, sem=None, ins=None, label_obj=None) -> Path:
    d.mkdir(parents=True)
    write_ply(d / "pc.ply", xyz, rgb)
    if label_obj is not None:
        np.save(d / "label.npy", label_obj, allow_pickle=True)
    elif sem is not None:
        np.save(d / "label.npy", {"semantic_seg": sem, "instance_seg": ins}, allow_pickle=True)
    return d


class Evil:
    """Unpickling this would run a shell command (the restricted unpickler must refuse it)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def partnete_root(tmp_path):
    """A PartNetE-layout root with two good objects and one object per kind of bad input."""
    root = tmp_path / "PartNetE"
    fs, te = root / "data" / "few_shot" / CAT, root / "data" / "test" / CAT
    good = {}
    xyz, rgb, sem, ins = _cloud(400, 0)
    _write_object(fs / "100", xyz, rgb, sem, ins)
    good["Chair/100"] = (xyz, rgb, sem, ins)
    xyz, rgb, sem, ins = _cloud(300, 1)
    _write_object(te / "200", xyz, rgb, sem, ins)
    good["Chair/200"] = (xyz, rgb, sem, ins)

    bad: dict[str, tuple[Path, str]] = {}
    # truncated binary PLY: the header promises more vertices than the body holds
    xyz, rgb, sem, ins = _cloud(300, 2)
    d = _write_object(fs / "101", xyz, rgb, sem, ins)
    data = (d / "pc.ply").read_bytes()
    (d / "pc.ply").write_bytes(data[: len(data) // 2])
    bad["Chair/101"] = (d / "pc.ply", "truncated")
    # not a PLY at all
    d = _write_object(fs / "102", *_cloud(50, 3))
    (d / "pc.ply").write_bytes(b"\x00\x01garbage that is not a point cloud")
    bad["Chair/102"] = (d / "pc.ply", "not a PLY")
    # NaN coordinates
    xyz, rgb, sem, ins = _cloud(200, 4)
    xyz[5, 1] = np.nan
    _write_object(te / "201", xyz, rgb, sem, ins)
    bad["Chair/201"] = (te / "201" / "pc.ply", "NaN")
    # zero points
    _write_object(te / "202", np.zeros((0, 3)), np.zeros((0, 3), np.uint8), np.zeros(0, np.int64), np.zeros(0, np.int64))
    bad["Chair/202"] = (te / "202" / "pc.ply", "zero vertices")
    # label length != point count
    xyz, rgb, sem, ins = _cloud(200, 5)
    _write_object(te / "203", xyz, rgb, sem[:150], ins[:150])
    bad["Chair/203"] = (te / "203" / "label.npy", "150 labels")
    # a pickle that would run os.system when loaded with np.load(allow_pickle=True)
    marker = tmp_path / "pwned"
    xyz, rgb, sem, ins = _cloud(200, 6)
    _write_object(te / "204", xyz, rgb, label_obj={"semantic_seg": Evil(marker), "instance_seg": ins})
    bad["Chair/204"] = (te / "204" / "label.npy", "forbidden global")
    return {"root": root, "good": good, "bad": bad, "marker": marker}


def test_partnete_bad_objects_are_recorded_and_skipped(tmp_path, partnete_root, run, run_failing, write_params):
    params = write_params(tmp_path)
    cache = tmp_path / "cache"
    ingest = ["ingest", "--params", params, "--cache", cache, "--source", "partnete", "--root", partnete_root["root"], "--category", CAT]
    res = run_failing(ingest)
    good, bad = partnete_root["good"], partnete_root["bad"]
    assert f"[ingest] {CAT}: {len(good)} computed, 0 up to date, {len(bad)} failed" in res.output
    assert f"{len(bad)} object(s) failed (listed in ingest/{CAT}.zarr/failures.json); the other results are kept" in res.output
    assert not partnete_root["marker"].exists()  # the forbidden pickle never ran

    zdir = cache / "ingest" / f"{CAT}.zarr"
    failures = {f["object"]: f for f in json.loads((zdir / "failures.json").read_text())["failed"]}
    assert set(failures) == set(bad)
    for oid, (path, reason) in bad.items():
        msg = failures[oid]["error"]
        assert oid in msg and str(path) in msg and reason in msg, msg
        assert "traceback" not in failures[oid]  # an expected input error, not a bug
        assert f"FAILED {oid}" in res.output
    assert failures["Chair/204"]["type"] == "UnsafePickleError" and "posix.system" in failures["Chair/204"]["error"]

    manifest = json.loads((zdir / "manifest.json").read_text())
    assert {r["object"]: r["split"] for r in manifest} == {"Chair/100": "fewshot", "Chair/200": "test"}
    ing = CategoryStore(cache, "ingest", CAT)
    assert ing.object_ids() == sorted(good)
    for oid, (xyz, rgb, sem, ins) in good.items():
        d, a = ing.read_all(oid), ing.attrs(oid)
        assert d["xyz"].shape == (len(xyz), 3) and a["source"] == "partnete" and a["simulated"] is False
        np.testing.assert_array_equal(d["rgb"], rgb)
        np.testing.assert_array_equal(d["sem"], sem)
        np.testing.assert_array_equal(d["ins"], ins)
        np.testing.assert_allclose(d["xyz"].astype(np.float64) * a["scale"] + np.asarray(a["centre"]), xyz.astype(np.float32), atol=1e-4)

    # --keep-going: the same failures, still recorded, but exit 0 with a warning
    res = run([*ingest, "--keep-going"])
    assert f"[ingest] {CAT}: 0 computed, {len(good)} up to date, {len(bad)} failed" in res.output
    assert f"WARNING {len(bad)} object(s) failed (listed in ingest/{CAT}.zarr/failures.json); exit 0 because of --keep-going" in res.output
    assert {f["object"] for f in json.loads((zdir / "failures.json").read_text())["failed"]} == set(bad)
    assert not partnete_root["marker"].exists()

    # downstream stages only see the good objects
    res = run(["render", "--params", params, "--cache", cache, "--category", CAT])
    assert f"[render] {CAT}: 2 computed, 0 up to date, 0 failed" in res.output


def test_unknown_category_is_a_usage_error(tmp_path, partnete_root, invoke, write_params):
    params = write_params(tmp_path)
    res = invoke(
        [
            "ingest",
            "--params",
            params,
            "--cache",
            tmp_path / "cache",
            "--source",
            "partnete",
            "--root",
            partnete_root["root"],
            "--category",
            "chair",
        ]
    )
    assert res.exit_code == 2
    assert "--category: unknown PartNetE category 'chair'" in res.output and "did you mean Chair" in res.output
    assert not (tmp_path / "cache").exists()
    res = invoke(["render", "--params", params, "--cache", tmp_path / "cache", "--category", "Spaceship"])
    assert res.exit_code == 2 and "unknown PartNetE category 'Spaceship'" in res.output


def test_partnete_source_needs_root(tmp_path, invoke, write_params):
    res = invoke(["ingest", "--params", write_params(tmp_path), "--cache", tmp_path / "cache", "--source", "partnete"])
    assert res.exit_code == 2 and "--source partnete needs --root" in res.output


def test_missing_params_file_is_a_usage_error(tmp_path, invoke):
    res = invoke(["visibility", "--params", tmp_path / "nope.yaml", "--cache", tmp_path / "cache"])
    assert res.exit_code == 2 and "params file not found" in res.output and "nope.yaml" in res.output


def test_evaluate_without_weights_names_the_path(tmp_path, run, invoke, write_params):
    params = write_params(tmp_path, data={"n_points": 500, "n_fewshot": 1, "n_val": 0, "n_test": 1})
    models, cache = tmp_path / "no_models", tmp_path / "cache"
    evaluate = ["evaluate", "--params", params, "--cache", cache, "--models", models, "--metrics", tmp_path / "metrics"]
    # nothing ingested: nothing to evaluate is an error too
    res = invoke(evaluate)
    assert res.exit_code == 1 and "no ingested object in splits test" in res.output, res.output
    run(["ingest", "--params", params, "--cache", cache])
    res = invoke(evaluate)
    assert res.exit_code == 1 and not isinstance(res.exception, (KeyError, AttributeError, TypeError, ValueError)), res.output
    assert str(models / CAT / "partstad.safetensors") in res.output and "partstad train" in res.output
    assert not (tmp_path / "metrics").exists() and not (cache / "evaluate").exists()  # nothing written


def test_stage_without_upstream_records_failures(tmp_path, run, run_failing, write_params):
    """detect before render: every object fails with 'run partstad render first', exit 1."""
    params = write_params(tmp_path, data={"n_points": 500, "n_fewshot": 1, "n_val": 0, "n_test": 1})
    cache = tmp_path / "cache"
    run(["ingest", "--params", params, "--cache", cache])
    res = run_failing(["detect", "--params", params, "--cache", cache])
    assert "[detect] Chair: 0 computed, 0 up to date, 2 failed" in res.output
    assert "2 object(s) failed (listed in detect/Chair.zarr/failures.json)" in res.output
    failed = json.loads((cache / "detect" / "Chair.zarr" / "failures.json").read_text())["failed"]
    assert len(failed) == 2 and all("partstad render" in f["error"] and f["type"] == "MissingUpstreamError" for f in failed)


def test_zero_boxes_flow_through(tmp_path, run, run_failing, write_params):
    """One few-shot and one test shape get no boxes at all; then every shape gets none."""
    small = {"n_points": 1500}
    params = write_params(tmp_path, data=small)
    no_boxes = write_params(
        tmp_path, name="params_noboxes.yaml", data=small, detect={"oracle": {"p_max": 0.0, "fp_rate": 0.0, "whole_object_prob": 0.0}}
    )
    cache, models, metrics, plots = (tmp_path / d for d in ("cache", "models", "metrics", "plots"))
    out_opts = ["--models", models, "--metrics", metrics, "--device", "cpu"]
    c = ["--cache", cache]
    for stage in ("ingest", "render", "visibility", "superpoints", "detect"):
        run([stage, "--params", params, *c])
    det = CategoryStore(cache, "detect", CAT)
    keys = {oid: det.stored_fingerprint(oid) for oid in ("Chair/0000", "Chair/0003")}
    res = run(["detect", "--params", no_boxes, *c, "--objects", "0000,0003"])
    assert "[detect] Chair: 2 computed" in res.output
    for oid in ("Chair/0000", "Chair/0003"):
        d = det.read_all(oid)
        assert d["xyxy"].shape == (0, 4) and d["feat"].shape == (0, 256) and d["label"].shape == (0,)
        np.testing.assert_array_equal(d["offsets"], np.zeros(11))
    assert len(det.read("Chair/0001", "xyxy")) > 0
    # results of two detect configurations are never mixed: under params.yaml these two are stale
    res = run_failing(["segment", "--params", params, *c])
    assert "[segment] Chair: 3 computed, 0 up to date, 2 failed" in res.output
    fails = {f["object"]: f["error"] for f in json.loads((cache / "segment" / "Chair.zarr" / "failures.json").read_text())["failed"]}
    assert set(fails) == set(keys) and all("out of date" in e and "run `partstad detect` first" in e for e in fails.values())
    # as if the configured detector had found nothing in these two shapes: the empty detections
    # under the key params.yaml gives them
    for oid, key in keys.items():
        det.write_object(oid, det.read_all(oid), det.attrs(oid), key)

    assert "[segment] Chair: 2 computed, 3 up to date, 0 failed" in run(["segment", "--params", params, *c]).output
    assert "[lift] Chair: 5 computed, 0 up to date, 0 failed" in run(["lift", "--params", params, *c]).output
    assert CategoryStore(cache, "segment", CAT).read("Chair/0003", "mask").shape == (0, 96, 96)
    lift = CategoryStore(cache, "lift", CAT)
    assert lift.read("Chair/0003", "mask_point").shape == (0,) and lift.read("Chair/0003", "box_box").shape == (0,)
    run(["train", "--params", params, *c, *out_opts, "--plots", plots])
    assert (models / CAT / "partstad.safetensors").is_file()
    res = run(["evaluate", "--params", params, *c, *out_opts])
    assert "[evaluate] Chair: 3 computed, 0 up to date, 0 failed" in res.output  # 2 test + 1 val (method auto)
    ev = CategoryStore(cache, "evaluate", CAT)
    sem = ev.read("Chair/0003", "sem_partstad")
    assert sem.shape == (1500,) and (sem == -1).all()  # no box, no vote: every point is "no part"
    m = json.loads((metrics / "evaluate" / f"{CAT}.json").read_text())
    assert m["failed"] == [] and m["n_test"] == 2 and 0 <= m["methods"]["partstad"]["miou"] <= 100

    # no boxes anywhere (the whole chain under the no-box config): training still runs (only
    # the null logit matters) and says why
    assert "[detect] Chair: 5 computed, 0 up to date" in run(["detect", "--params", no_boxes, *c]).output
    for stage in ("segment", "lift"):
        assert f"[{stage}] Chair: 5 computed, 0 up to date, 0 failed" in run([stage, "--params", no_boxes, *c]).output
    res = run(["train", "--params", no_boxes, *c, *out_opts, "--plots", plots])
    assert "no boxes" in res.output
    res = run(["evaluate", "--params", no_boxes, *c, *out_opts])
    assert "[evaluate] Chair: 3 computed, 0 up to date, 0 failed" in res.output  # 2 test + 1 val (method auto)
    for method in ("partslip", "partstad", "masks_only"):
        assert (ev.read("Chair/0004", f"sem_{method}") == -1).all()


from tests.pipeline.data.test_data_mobility import CABINET_TREE  # noqa: E402  (one PartNet-Mobility cabinet for both suites)


def _write_mobility(d: Path, cat: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A raw PartNet-Mobility object with a `point_sample/` (points + leaf node ids)."""
    d.mkdir(parents=True)
    (d / "meta.json").write_text(json.dumps({"model_cat": cat, "anno_id": d.name}))
    (d / "result.json").write_text(json.dumps(CABINET_TREE))
    rng = np.random.default_rng(seed)
    xyz = np.round(rng.normal(size=(n, 3)) * 40 + 100, 4)
    col = rng.integers(0, 256, (n, 3))
    leaves = rng.choice([3, 5, 6, 8, 9], n)
    ps = d / "point_sample"
    ps.mkdir()
    rows = [f"{p[0]:.4f} {p[1]:.4f} {p[2]:.4f} 0 1 0 {c[0]} {c[1]} {c[2]} 1.000000" for p, c in zip(xyz, col)]
    (ps / f"sample-points-all-pts-nor-rgba-{n}.txt").write_text("\n".join(rows) + "\n")
    (ps / f"sample-points-all-label-{n}.txt").write_text("\n".join(str(x) for x in leaves) + "\n")
    return xyz, col, leaves


def test_mobility_ingest_through_cli(tmp_path, run, write_params):
    root = tmp_path / "mobility"
    xyz, col, leaves = _write_mobility(root / "40147", "StorageFurniture", 500, 0)
    _write_mobility(root / "999", "Chair", 50, 1)  # another category: not listed
    (root / "notes").mkdir()  # no meta.json: ignored
    params = write_params(tmp_path, ["StorageFurniture"])
    cache = tmp_path / "cache"
    res = run(["ingest", "--params", params, "--cache", cache, "--source", "mobility", "--root", root])
    assert "[ingest] StorageFurniture: 1 computed, 0 up to date, 0 failed" in res.output
    manifest = json.loads((cache / "ingest" / "StorageFurniture.zarr" / "manifest.json").read_text())
    assert manifest == [{"object": "StorageFurniture/40147", "split": "test", "source": "mobility", "category": "StorageFurniture"}]
    ing = CategoryStore(cache, "ingest", "StorageFurniture")
    oid = "StorageFurniture/40147"
    d, a = ing.read_all(oid), ing.attrs(oid)
    names = part_names("StorageFurniture")  # door, drawer, handle
    leaf_part = {3: -1, 5: names.index("door"), 6: names.index("handle"), 8: names.index("drawer"), 9: names.index("handle")}
    leaf_ins = {3: -1, 5: 4, 6: 6, 8: 7, 9: 9}
    np.testing.assert_array_equal(d["sem"], [leaf_part[x] for x in leaves])
    np.testing.assert_array_equal(d["ins"], [leaf_ins[x] for x in leaves])
    np.testing.assert_array_equal(d["rgb"], col)
    np.testing.assert_allclose(d["xyz"].astype(np.float64) * a["scale"] + np.asarray(a["centre"]), xyz, atol=1e-3)
    assert a["source"] == "mobility" and a["labelled"] is True
    # and the cloud renders like any other
    res = run(["render", "--params", params, "--cache", cache])
    assert "[render] StorageFurniture: 1 computed" in res.output
    assert CategoryStore(cache, "render", "StorageFurniture").read(oid, "pix2pt").max() < 500


def test_export_roundtrip_of_ply_reader(tmp_path):
    """write_ply/read_ply keep float64 coordinates exactly (export relies on it)."""
    xyz = np.random.default_rng(0).normal(size=(20, 3)) * 1e3
    write_ply(tmp_path / "a.ply", xyz, np.zeros((20, 3), np.uint8), {"semantic": np.arange(20)})
    p = read_ply(tmp_path / "a.ply")
    np.testing.assert_array_equal(p.xyz, xyz)
    np.testing.assert_array_equal(p.props["semantic"], np.arange(20))


def test_ingest_objects_subset_keeps_the_manifest(tmp_path, run, write_params):
    """`ingest --objects X` re-ingests X only; the other ingested objects stay in the manifest."""
    params = write_params(tmp_path, data={"n_points": 500, "n_fewshot": 1, "n_val": 1, "n_test": 1})
    c = ["--params", params, "--cache", tmp_path / "cache"]
    run(["ingest", *c])
    res = run(["ingest", *c, "--objects", "0001", "--force"])
    assert "[ingest] Chair: 1 computed, 0 up to date, 0 failed" in res.output
    manifest = json.loads((tmp_path / "cache" / "ingest" / "Chair.zarr" / "manifest.json").read_text())
    assert [(r["object"], r["split"]) for r in manifest] == [("Chair/0000", "fewshot"), ("Chair/0001", "val"), ("Chair/0002", "test")]
    assert "[render] Chair: 3 computed" in run(["render", *c]).output


def test_ingest_other_root_reingests(tmp_path, run, write_params):
    """The dataset root is part of the ingest fingerprint: same ids under another root re-read."""
    params = write_params(tmp_path)
    cache = tmp_path / "cache"
    xyz = {}
    for name, shift in (("A", 0.0), ("B", 100.0)):
        x, rgb, sem, ins = _cloud(200, 7)
        xyz[name] = x + shift
        _write_object(tmp_path / name / "data" / "test" / CAT / "300", xyz[name], rgb, sem, ins)
    c = ["ingest", "--params", params, "--cache", cache, "--source", "partnete"]
    assert "1 computed" in run([*c, "--root", tmp_path / "A"]).output
    assert "0 computed, 1 up to date" in run([*c, "--root", tmp_path / "A"]).output
    assert "1 computed, 0 up to date" in run([*c, "--root", tmp_path / "B"]).output
    a = CategoryStore(cache, "ingest", CAT).attrs("Chair/300")
    np.testing.assert_allclose(a["centre"], xyz["B"].mean(0))


def _fake_detector_work(ctx, object_id, sec):
    """Stands in for Grounding DINO: two boxes per view (upper and lower half of the silhouette)."""
    from pipeline.detect.types import Detections

    pix2pt = ctx.store("render").read(object_id, "pix2pt")
    rng = np.random.default_rng(0)
    per_view = []
    for v in range(pix2pt.shape[0]):
        r, c = np.nonzero(pix2pt[v] >= 0)
        if not len(r):
            per_view.append((np.zeros((0, 4)), np.zeros(0), np.zeros(0), np.zeros((0, 16))))
            continue
        x1, x2, y1, y2 = c.min(), c.max() + 1, r.min(), r.max() + 1
        ym = (y1 + y2) / 2
        boxes = np.array([[x1, y1, x2, ym], [x1, ym, x2, y2]], np.float32)
        per_view.append((boxes, np.array([1, 3]), np.array([0.9, 0.8]), rng.normal(size=(2, 16))))
    return Detections.concat(per_view, 16, simulated=False), False  # (detections, adapted weights used)


def test_unlabelled_shapes_get_predictions_only(tmp_path, run, run_failing, write_params, monkeypatch):
    """README 'your own data': shapes without label.npy go through a real-detector path
    (faked here), box masks, lift, evaluate (predictions only) and export."""
    root = tmp_path / "PartNetE"
    fs, te = root / "data" / "few_shot" / CAT, root / "data" / "test" / CAT
    for i, oid in enumerate(("100", "101")):
        _write_object(fs / oid, *_cloud(300, 10 + i))
    raw, rgb, _, _ = _cloud(250, 20)
    _write_object(te / "300", raw, rgb)  # no label.npy
    weights = tmp_path / "gdino"
    weights.mkdir()
    oracle = write_params(tmp_path, name="oracle.yaml", data={"source": "partnete", "root": str(root)})
    params = write_params(
        tmp_path,
        data={"source": "partnete", "root": str(root)},
        detect={"backend": "grounding_dino", "weights_dir": str(weights)},
        segment={"mode": "box"},
        train={"ablation_boxes": False},
    )
    cache, models, metrics, exports = (tmp_path / d for d in ("cache", "models", "metrics", "exports"))
    c = ["--cache", cache]
    run(["ingest", "--params", params, *c])
    assert CategoryStore(cache, "ingest", CAT).attrs("Chair/300")["labelled"] is False
    for stage in ("render", "visibility", "superpoints"):
        run([stage, "--params", params, *c])

    res = run_failing(["detect", "--params", oracle, *c])  # the simulated detector needs ground truth
    assert "[detect] Chair: 2 computed, 0 up to date, 1 failed" in res.output
    failed = json.loads((cache / "detect" / "Chair.zarr" / "failures.json").read_text())["failed"]
    assert [f["object"] for f in failed] == ["Chair/300"] and failed[0]["type"] == "BadInputError"
    assert "ground-truth labels" in failed[0]["error"] and "ingest/Chair.zarr" in failed[0]["error"]

    import stages.backends.grounding_dino as gdino

    monkeypatch.setattr(gdino, "_grounding_dino", _fake_detector_work)
    loaded = []  # the preflight load of the (fake) weights, before any object
    monkeypatch.setattr(gdino, "grounding_dino", lambda sec, device, weights_dir=None: loaded.append((sec.weights_dir, device)))
    for stage in ("detect", "segment", "lift"):
        assert "3 computed, 0 up to date, 0 failed" in run([stage, "--params", params, *c]).output
    assert [w for w, _ in loaded] == [str(weights)]  # loaded once, by detect's preflight
    run(["train", "--params", params, *c, "--models", models, "--metrics", metrics, "--plots", tmp_path / "plots"])
    res = run(["evaluate", "--params", params, *c, "--models", models, "--metrics", metrics])
    assert "[evaluate] Chair: 1 computed, 0 up to date, 0 failed" in res.output
    m = json.loads((metrics / "evaluate" / f"{CAT}.json").read_text())
    assert m["n_test"] == 0 and m["methods"] == {} and m["simulated"] is False
    ev = CategoryStore(cache, "evaluate", CAT)
    assert {"partslip", "partstad", "masks_only"} <= set(ev.attrs("Chair/300")["methods"])
    sem = ev.read("Chair/300", "sem_partstad")
    assert sem.shape == (250,) and sem.min() >= -1 and sem.max() < K

    res = run(["export", "--params", params, *c, "--objects", "300", "--out", exports])
    assert "[export] wrote 1 objects" in res.output
    ply = read_ply(exports / "Chair_300_partstad.ply")
    np.testing.assert_allclose(ply.xyz, raw, atol=1e-5)  # back in the file's own coordinates
    np.testing.assert_array_equal(ply.props["semantic"], sem)
    np.testing.assert_array_equal(np.load(exports / "Chair_300_partstad_semantic.npy"), sem)


def _strict_json(path: Path):
    def refuse(token):
        raise AssertionError(f"{path} holds {token}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_no_validation_shapes_gives_strict_json_metrics(tmp_path, run, invoke, write_params):
    """n_val 0: training has no validation mIoU; metric files must still be strict JSON."""
    params = write_params(
        tmp_path, data={"n_points": 800, "n_fewshot": 1, "n_val": 0, "n_test": 1}, train={"epochs": 2, "ablation_boxes": False}
    )
    c = ["--params", params, "--cache", tmp_path / "cache"]
    for stage in chain("lift"):
        run([stage, *c])
    out = ["--metrics", tmp_path / "metrics"]
    run(["train", *c, *out, "--models", tmp_path / "models", "--plots", tmp_path / "plots"])
    m = _strict_json(tmp_path / "metrics" / "train" / f"{CAT}.json")
    assert m["partstad"]["n_val"] == 0 and m["partstad"]["best_val_miou"] is None
    run(["evaluate", *c, *out, "--models", tmp_path / "models"])
    assert "partstad" in _strict_json(tmp_path / "metrics" / "evaluate" / f"{CAT}.json")["methods"]
    run(["report", "--params", params, "--cache", tmp_path / "cache", *out, "--plots", tmp_path / "plots", "--out", tmp_path / "reports"])
    _strict_json(tmp_path / "metrics" / "summary.json")
    # partstad_boxes was not trained: exporting it explains why, and nothing exported is exit 1
    res = invoke(["export", "--params", params, "--cache", tmp_path / "cache", "--method", "partstad_boxes", "--out", tmp_path / "exports"])
    assert res.exit_code == 1, res.output
    assert "no 'partstad_boxes' predictions" in res.output and "[export] wrote 0 objects" in res.output
    assert "nothing exported" in res.output and not list((tmp_path / "exports").glob("*.ply"))


def test_report_with_missing_means(tmp_path, run, write_params):
    """A method whose mIoU/mAP50 are null in every category must not crash the summary."""
    metrics = tmp_path / "metrics"
    (metrics / "evaluate").mkdir(parents=True)
    (metrics / "evaluate" / f"{CAT}.json").write_text(
        json.dumps(
            {
                "category": CAT,
                "n_test": 1,
                "simulated": True,
                "failed": [],
                "methods": {"partstad": {"miou": None, "map50": None, "part_iou": {}, "part_ap50": {}}},
            }
        )
    )
    res = run(
        [
            "report",
            "--params",
            write_params(tmp_path),
            "--cache",
            tmp_path / "cache",
            "--metrics",
            metrics,
            "--plots",
            tmp_path / "plots",
            "--out",
            tmp_path / "reports",
        ]
    )
    assert "mean mIoU n/a" in res.output
    assert (tmp_path / "reports" / "index.html").is_file()
    assert _strict_json(metrics / "summary.json")["partstad"]["n_categories"] == 1


def test_missing_model_files_fail_before_any_work(tmp_path, invoke, write_params):
    gd = write_params(tmp_path, name="gd.yaml", detect={"backend": "grounding_dino", "weights_dir": str(tmp_path / "no_gdino")})
    res = invoke(["detect", "--params", gd, "--cache", tmp_path / "cache"])
    assert res.exit_code == 2 and "no_gdino" in res.output and "detect.weights_dir" in res.output
    sam = write_params(tmp_path, name="sam.yaml", segment={"mode": "sam", "sam_checkpoint": str(tmp_path / "sam_vit_b.pth")})
    res = invoke(["segment", "--params", sam, "--cache", tmp_path / "cache"])
    assert res.exit_code == 2 and "sam_vit_b.pth" in res.output and "segment.sam_checkpoint" in res.output
    assert not (tmp_path / "cache").exists()


def test_train_without_fewshot_objects_is_a_clear_error(tmp_path, run, invoke, write_params):
    params = write_params(tmp_path, data={"n_points": 500, "n_fewshot": 2, "n_val": 0, "n_test": 1})
    train = [
        "train",
        "--params",
        params,
        "--cache",
        tmp_path / "cache",
        "--models",
        tmp_path / "models",
        "--metrics",
        tmp_path / "metrics",
        "--plots",
        tmp_path / "plots",
    ]
    res = invoke(train)  # nothing ingested
    assert res.exit_code == 1 and "no few-shot objects in the ingest manifest" in res.output and "partstad ingest" in res.output, res.output
    assert "Traceback" not in res.output
    run(["ingest", "--params", params, "--cache", tmp_path / "cache"])
    res = invoke(train)  # ingested, but no lift results to train on
    assert res.exit_code == 1 and "none of the 2 few-shot objects is usable" in res.output and "lift/Chair.zarr" in res.output, res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "models" / CAT / "partstad.safetensors").exists()
    assert not (tmp_path / "metrics").exists() and not (tmp_path / "plots").exists()
