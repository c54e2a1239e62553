"""Distributed execution: a two-worker LocalCluster gives the synchronous result bit for bit;
lost workers and flaky exceptions are retried; GPU stages ask for a ``GPU`` worker resource;
``file://`` and fsspec cache roots work.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dask
import numpy as np
import pytest

from stages.runner import StageContext, run_stage
from stages.scheduling import ClusterResourceError
from stages.stage_table import chain
from stages.store import CategoryStore
from tests.trusted_keys import trusted

CHAIN = list(chain("lift"))
TINY = dict(data={"n_points": 2000, "n_fewshot": 2, "n_val": 1, "n_test": 2}, render={"image_size": 64}, detect={"feat_dim": 32})


def cache_contents(root: Path) -> dict[tuple[str, ...], object]:
    """Every array and every attrs dict of every object group under a cache root."""
    out: dict[tuple[str, ...], object] = {}
    for store in sorted(Path(root).glob("*/*.zarr")):
        st = CategoryStore(root, store.parent.name, store.stem)
        for oid in st.object_ids(complete_only=False):
            out[(store.parent.name, oid, "attrs")] = st.attrs(oid)
            for name, arr in st.read_all(oid).items():
                out[(store.parent.name, oid, name)] = arr
    return out


def assert_same_cache(a: Path, b: Path) -> int:
    ca, cb = cache_contents(a), cache_contents(b)
    assert ca.keys() == cb.keys()
    for key, va in ca.items():
        vb = cb[key]
        if isinstance(va, np.ndarray):
            assert va.dtype == vb.dtype and va.shape == vb.shape, key
            assert np.array_equal(va, vb, equal_nan=True), f"{key} differs"
        else:
            assert va == vb, key
    return sum(isinstance(v, np.ndarray) for v in ca.values())


def test_local_cluster_run_equals_sync_bit_for_bit(tmp_path, run, write_params):
    params = write_params(tmp_path, **TINY)
    for stage in CHAIN:
        run([stage, "--params", params, "--cache", tmp_path / "sync"])
    outs = [run([stage, "--params", params, "--cache", tmp_path / "dist", "--scheduler", "local:2"]).output for stage in CHAIN]
    for stage, out in zip(CHAIN, outs):
        assert f"[{stage}] Chair: 5 computed, 0 up to date, 0 failed" in out
    n_arrays = assert_same_cache(tmp_path / "sync", tmp_path / "dist")
    assert n_arrays >= 5 * 40  # every array of every object of the seven stages was compared
    # the same run again is a no-op on the cluster too
    out = run(["lift", "--params", params, "--cache", tmp_path / "dist", "--scheduler", "local:2"]).output
    assert "[lift] Chair: 0 computed, 5 up to date" in out


# --------------------------------------------------------------------------- retries
def _src(tmp_path: Path, n: int = 4) -> str:
    src = StageContext("src", "Chair", str(tmp_path), {}).store()
    for i in range(n):
        src.write_object(f"Chair/{i}", {"x": np.arange(5, dtype=np.float32) + i}, {}, f"src{i}")
    return str(tmp_path)


def _ctx(cache: str, marker_dir: Path, **runtime) -> StageContext:
    return StageContext("sq", "Chair", cache, {"sq": {"scale": 2.0}}, runtime={"marker_dir": str(marker_dir), **runtime})


def _first_attempt(ctx: StageContext, object_id: str) -> bool:
    """True the first time an object is attempted (a marker file records the attempt)."""
    marker = Path(ctx.runtime["marker_dir"]) / object_id.replace("/", "_")
    if marker.exists():
        return False
    marker.write_text(str(os.getpid()))
    return True


def crash_once_work(ctx: StageContext, object_id: str):
    """Kills its worker process on the first attempt at Chair/1 (Chair/3: every attempt)."""
    if object_id == ctx.runtime.get("always_crash") or (object_id == "Chair/1" and _first_attempt(ctx, object_id)):
        os._exit(13)
    x = ctx.store("src").read(object_id, "x")
    return {"y": x * ctx.section()["scale"]}, {"pid": os.getpid()}


def flaky_work(ctx: StageContext, object_id: str):
    """Raises a transient OSError on the first attempt of every object."""
    if _first_attempt(ctx, object_id):
        raise OSError("transient network hiccup")
    x = ctx.store("src").read(object_id, "x")
    return {"y": x * ctx.section()["scale"]}, {}


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster reached by address (like `dask scheduler` + `dask worker`), no GPU."""
    from distributed import LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 1, "distributed.scheduler.worker-saturation": 1.0}):
        c = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    yield c
    c.close()


def test_lost_worker_is_retried_and_a_killer_object_fails_alone(tmp_path, cluster):
    cache = _src(tmp_path)
    ids = [f"Chair/{i}" for i in range(4)]
    ctx = _ctx(cache, tmp_path, always_crash="Chair/3")
    rep = run_stage(ctx, ids, crash_once_work, keys=trusted(ctx, ["src"], "1"), scheduler=cluster.scheduler_address)
    assert sorted(rep.done) == ["Chair/0", "Chair/1", "Chair/2"]  # Chair/1 survived a killed worker
    assert [f["object"] for f in rep.failed] == ["Chair/3"]
    assert "Chair/3" in rep.failed[0]["error"] and rep.failed[0]["type"] == "KilledWorker"
    np.testing.assert_array_equal(ctx.store().read("Chair/1", "y"), (np.arange(5) + 1.0) * 2)
    on_disk = json.loads(Path(ctx.store().side_file("failures.json")).read_text())
    assert [f["object"] for f in on_disk["failed"]] == ["Chair/3"]
    assert not ctx.store().is_complete("Chair/3")


def test_exceptions_are_retried_on_the_cluster(tmp_path):
    cache = _src(tmp_path, 3)
    ids = [f"Chair/{i}" for i in range(3)]
    rep = run_stage(
        _ctx(cache, tmp_path), ids, flaky_work, keys=trusted(_ctx(cache, tmp_path), ["src"], "1"), scheduler="local:2", retries=1
    )
    assert sorted(rep.done) == ids and rep.failed == []
    (tmp_path / "m2").mkdir()
    rep = run_stage(
        _ctx(cache, tmp_path / "m2"),
        ids,
        flaky_work,
        keys=trusted(_ctx(cache, tmp_path / "m2"), ["src"], "1"),
        scheduler="local:2",
        retries=0,
        force=True,
    )
    assert rep.done == [] and {f["object"] for f in rep.failed} == set(ids)
    assert all("transient network hiccup" in f["error"] and f["type"] == "OSError" for f in rep.failed)


# --------------------------------------------------------------------------- GPU resources
def test_gpu_tasks_need_a_gpu_worker(tmp_path, cluster):
    cache = _src(tmp_path, 2)
    ids = ["Chair/0", "Chair/1"]
    with pytest.raises(ClusterResourceError, match="--resources GPU=1"):
        run_stage(
            _ctx(cache, tmp_path),
            ids,
            crash_once_work,
            keys=trusted(_ctx(cache, tmp_path), ["src"], "1"),
            scheduler=cluster.scheduler_address,
            resources={"GPU": 1},
        )
    # local:N workers offer the requested resource, so GPU stages run there
    (tmp_path / "m").mkdir()
    rep = run_stage(
        _ctx(cache, tmp_path / "m"),
        ids,
        crash_once_work,
        keys=trusted(_ctx(cache, tmp_path / "m"), ["src"], "1"),
        scheduler="local:1",
        resources=lambda ctx: {"GPU": 1} if ctx.section()["scale"] else None,
    )
    assert sorted(rep.done) == ids


def test_gpu_resources_only_for_real_models_on_cuda():
    from stages.config import parse_config
    from stages.detect import gpu_resources as det_res
    from stages.segment import gpu_resources as seg_res

    def ctx(stage, device, **sections):
        return StageContext(stage, "Chair", "c", parse_config(sections), device=device)

    assert det_res(ctx("detect", "cuda", detect={"backend": "grounding_dino"})) == {"GPU": 1}
    assert det_res(ctx("detect", "cpu", detect={"backend": "grounding_dino"})) is None
    assert det_res(ctx("detect", "cuda", detect={"backend": "oracle"})) is None
    assert seg_res(ctx("segment", "cuda", segment={"mode": "sam"})) == {"GPU": 1}
    assert seg_res(ctx("segment", "cuda", segment={"mode": "oracle"})) is None
    assert seg_res(ctx("segment", "cpu", segment={"mode": "sam"})) is None


# --------------------------------------------------------------------------- cache roots
def test_file_url_root_is_the_local_directory(tmp_path, cluster):
    cache = _src(tmp_path / "c", 2)
    url = f"file://{cache}"
    rep = run_stage(
        _ctx(url, tmp_path),
        ["Chair/0", "Chair/1"],
        flaky_work,
        keys=trusted(_ctx(url, tmp_path), ["src"], "1"),
        scheduler=cluster.scheduler_address,
    )
    assert sorted(rep.done) == ["Chair/0", "Chair/1"]
    st = CategoryStore(cache, "sq", "Chair")  # the same store through the plain path
    assert st.is_complete("Chair/1") and st.read("Chair/1", "y").tolist() == [2.0, 4.0, 6.0, 8.0, 10.0]
    assert json.loads(Path(st.side_file("failures.json")).read_text())["n_ok"] == 2


def test_fsspec_root_with_side_files_and_resume():
    import fsspec

    fs = fsspec.filesystem("memory")
    root = "memory://scale-test"
    try:
        src = StageContext("src", "Chair", root, {}).store()
        assert not src.is_local
        for i in range(3):
            src.write_object(f"Chair/{i}", {"x": np.full(4, float(i), np.float32)}, {}, f"s{i}")
        ctx = StageContext("sq", "Chair", root, {"sq": {"scale": 3.0}}, runtime={"marker_dir": "/nonexistent"})
        ids = ["Chair/0", "Chair/1", "Chair/2", "Chair/7"]
        rep = run_stage(
            ctx, ids, lambda c, o: ({"y": c.store("src").read(o, "x") * 3}, {}), keys=trusted(ctx, ["src"], "1"), scheduler="threads"
        )
        assert sorted(rep.done) == ids[:3] and [f["object"] for f in rep.failed] == ["Chair/7"]
        fails = ctx.store().read_json("failures.json")
        assert fails["failed"][0]["object"] == "Chair/7" and "memory://scale-test/src/Chair.zarr" in fails["failed"][0]["error"]
        assert ctx.store().object_ids() == ids[:3]
        # an upstream rewrite makes exactly that object stale; a rewrite replaces the group
        src.write_object("Chair/1", {"x": np.ones(4, np.float32)}, {}, "changed")
        rep = run_stage(ctx, ids[:3], lambda c, o: ({"y": c.store("src").read(o, "x") * 3}, {}), keys=trusted(ctx, ["src"], "1"))
        assert rep.done == ["Chair/1"] and sorted(rep.skipped) == ["Chair/0", "Chair/2"]
        assert ctx.store().read("Chair/1", "y").tolist() == [3.0] * 4
        ctx.store().write_json("manifest.json", [{"object": "Chair/0"}])
        assert ctx.store().read_json("manifest.json") == [{"object": "Chair/0"}]
        assert ctx.store().read_json("absent.json", default=[]) == []
    finally:
        if fs.exists("/scale-test"):
            fs.rm("/scale-test", recursive=True)
