"""PartSLIP's whole-object filter is computed once, by lift; evaluate reads it (no recompute).

A lift result whose ``whole_object_valid`` says "no box is valid" gives PartSLIP no vote in
that object (every point "no part"), which only happens if evaluate reads the stored array;
a stored array of the wrong length fails that object alone, naming object and file.
"""

from __future__ import annotations

import json

import numpy as np

from pipeline.lift import whole_object_valid
from stages.store import CategoryStore

CAT = "Chair"


def test_evaluate_reads_lifts_whole_object_filter(tmp_path, run, run_failing, write_params):
    params = write_params(tmp_path, data={"n_points": 1500})
    cache, models, metrics = tmp_path / "cache", tmp_path / "models", tmp_path / "metrics"
    c = ["--params", params, "--cache", cache]
    for stage in ("ingest", "render", "visibility", "superpoints", "detect", "segment", "lift"):
        run([stage, *c])
    lift = CategoryStore(cache, "lift", CAT)
    # what lift stored is the filter of its inputs
    vis, det = CategoryStore(cache, "visibility", CAT), CategoryStore(cache, "detect", CAT)
    oid = "Chair/0004"
    expect = whole_object_valid(vis.read(oid, "uv"), det.read(oid, "xyxy"), det.read(oid, "view"))
    np.testing.assert_array_equal(lift.read(oid, "whole_object_valid"), expect)
    run(["train", *c, "--models", models, "--metrics", metrics, "--plots", tmp_path / "plots", "--device", "cpu"])
    run(["evaluate", *c, "--models", models, "--metrics", metrics, "--device", "cpu"])
    ev = CategoryStore(cache, "evaluate", CAT)
    assert (ev.read("Chair/0003", "sem_partslip") >= 0).any()  # with lift's filter PartSLIP labels parts

    def rewrite(oid: str, valid: np.ndarray) -> None:
        arrays = lift.read_all(oid)
        arrays["whole_object_valid"] = valid
        lift.write_object(oid, arrays, lift.attrs(oid), lift.stored_fingerprint(oid))

    n_boxes = len(lift.read("Chair/0003", "box_box_view"))
    assert n_boxes > 0
    rewrite("Chair/0003", np.zeros(n_boxes, bool))  # no box passes the filter
    rewrite(oid, np.ones(len(expect) + 1, bool))  # one flag too many
    res = run_failing(["evaluate", *c, "--models", models, "--metrics", metrics, "--device", "cpu", "--force"])
    assert "[evaluate] Chair: 2 computed, 0 up to date, 1 failed" in res.output  # 0003 + the val shape 0002
    assert (ev.read("Chair/0003", "sem_partslip") == -1).all()  # no valid box: no PartSLIP vote
    failed = json.loads((cache / "evaluate" / f"{CAT}.zarr" / "failures.json").read_text())["failed"]
    assert [f["object"] for f in failed] == [oid]
    assert "whole_object_valid" in failed[0]["error"] and "lift" in failed[0]["error"]
