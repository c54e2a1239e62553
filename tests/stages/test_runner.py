"""Stage runner: skip/resume/rewrite, per-object failures, schedulers."""

import json

import numpy as np
import pytest

from pipeline.errors import BadInputError
from stages.runner import StageContext, run_stage
from tests.trusted_keys import trusted


def square_work(ctx: StageContext, object_id: str):
    x = ctx.store("src").read(object_id, "x")
    if np.isnan(x).any():
        raise BadInputError("NaN values", object_id=object_id, path="src.zarr")
    return {"y": x**2 * ctx.section()["scale"]}, {"n": int(len(x))}


CALLS: list[str] = []


def counting_work(ctx, object_id):
    CALLS.append(object_id)
    return square_work(ctx, object_id)


@pytest.fixture
def cache(tmp_path):
    src = StageContext("src", "Chair", str(tmp_path), {}).store()
    for i in range(4):
        x = np.arange(5, dtype=np.float32) + i
        if i == 2:
            x[1] = np.nan
        src.write_object(f"Chair/{i}", {"x": x}, {}, f"src{i}")
    return str(tmp_path)


def _ctx(cache, scale=1.0):
    return StageContext("sq", "Chair", cache, {"sq": {"scale": scale}})


def test_failure_is_recorded_and_others_complete(cache):
    ids = [f"Chair/{i}" for i in range(4)] + ["Chair/9"]
    rep = run_stage(_ctx(cache), ids, square_work, keys=trusted(_ctx(cache), ["src"], "1"))
    assert sorted(rep.done) == ["Chair/0", "Chair/1", "Chair/3"]
    failed = {f["object"]: f["error"] for f in rep.failed}
    assert set(failed) == {"Chair/2", "Chair/9"}
    assert "NaN" in failed["Chair/2"] and "src.zarr" in failed["Chair/2"]
    assert "upstream stage 'src'" in failed["Chair/9"]
    on_disk = json.loads((_ctx(cache).store().side_file("failures.json")).read_text())
    assert {f["object"] for f in on_disk["failed"]} == {"Chair/2", "Chair/9"}
    np.testing.assert_allclose(_ctx(cache).store().read("Chair/3", "y"), (np.arange(5) + 3.0) ** 2)


def test_skip_up_to_date_and_recompute_on_param_change(cache):
    ids = ["Chair/0", "Chair/1"]
    CALLS.clear()
    run_stage(_ctx(cache), ids, counting_work, keys=trusted(_ctx(cache), ["src"], "1"))
    assert CALLS == ids
    CALLS.clear()
    rep = run_stage(_ctx(cache), ids, counting_work, keys=trusted(_ctx(cache), ["src"], "1"))
    assert CALLS == [] and rep.skipped == ids
    rep = run_stage(_ctx(cache, scale=2.0), ids, counting_work, keys=trusted(_ctx(cache, scale=2.0), ["src"], "1"))
    assert CALLS == ids
    assert _ctx(cache).store().read("Chair/0", "y")[2] == pytest.approx(8.0)
    # upstream change of one object re-runs only that object
    CALLS.clear()
    StageContext("src", "Chair", cache, {}).store().write_object("Chair/1", {"x": np.ones(5, np.float32)}, {}, "new")
    run_stage(_ctx(cache, scale=2.0), ids, counting_work, keys=trusted(_ctx(cache, scale=2.0), ["src"], "1"))
    assert CALLS == ["Chair/1"]


def test_threads_scheduler_matches_sync(cache, tmp_path):
    ids = ["Chair/0", "Chair/1", "Chair/3"]
    run_stage(_ctx(cache), ids, square_work, keys=trusted(_ctx(cache), ["src"], "1"), scheduler="sync")
    a = {i: _ctx(cache).store().read(i, "y") for i in ids}
    rep = run_stage(_ctx(cache), ids, square_work, keys=trusted(_ctx(cache), ["src"], "1"), scheduler="threads", force=True)
    assert sorted(rep.done) == ids
    for i in ids:
        np.testing.assert_array_equal(_ctx(cache).store().read(i, "y"), a[i])


def test_unknown_scheduler_is_an_error(cache):
    with pytest.raises(ValueError, match="unknown scheduler"):
        run_stage(_ctx(cache), ["Chair/0"], square_work, keys=trusted(_ctx(cache), ["src"], "1"), scheduler="bogus")


def test_failures_of_objects_outside_a_partial_run_are_kept(cache):
    ids = [f"Chair/{i}" for i in range(4)]
    run_stage(_ctx(cache), ids, square_work, keys=trusted(_ctx(cache), ["src"], "1"))
    run_stage(_ctx(cache), ["Chair/0"], square_work, keys=trusted(_ctx(cache), ["src"], "1"), force=True)
    on_disk = json.loads(_ctx(cache).store().side_file("failures.json").read_text())
    assert [f["object"] for f in on_disk["failed"]] == ["Chair/2"]
    # once the object is fixed and recomputed, its record goes away
    StageContext("src", "Chair", cache, {}).store().write_object("Chair/2", {"x": np.ones(5, np.float32)}, {}, "fixed")
    run_stage(_ctx(cache), ["Chair/2"], square_work, keys=trusted(_ctx(cache), ["src"], "1"))
    assert json.loads(_ctx(cache).store().side_file("failures.json").read_text())["failed"] == []


def test_rerun_with_the_same_failure_leaves_failures_json_unchanged(cache):
    """DVC hashes failures.json (an output): a rerun that changes nothing must not rewrite it."""
    ids = [f"Chair/{i}" for i in range(4)]
    side = _ctx(cache).store().side_file("failures.json")
    run_stage(_ctx(cache), ids, square_work, keys=trusted(_ctx(cache), ["src"], "1"))
    first = side.read_bytes()
    assert json.loads(first)["n_ok"] == 3 and [f["object"] for f in json.loads(first)["failed"]] == ["Chair/2"]
    rep = run_stage(_ctx(cache), ids, square_work, keys=trusted(_ctx(cache), ["src"], "1"))
    assert sorted(rep.skipped) == ["Chair/0", "Chair/1", "Chair/3"] and [f["object"] for f in rep.failed] == ["Chair/2"]
    assert side.read_bytes() == first
