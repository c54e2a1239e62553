"""--jobs: categories side by side in worker processes give the same cache, output and exit codes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from stages.parallel import effective_jobs, resolve_jobs
from stages.stage_table import chain
from tests.object_zip import chunk_members, edit_member, object_zip

CATS = ["Chair", "Bottle"]
CHAIN = list(chain("lift"))


def digest_tree(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file (lock files aside)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


def test_resolve_jobs_never_exceeds_categories_or_goes_below_one():
    assert resolve_jobs("3", 2) == 2 and resolve_jobs("1", 6) == 1 and resolve_jobs("auto", 0) == 1
    assert 1 <= resolve_jobs("auto", 6) <= 6


def test_jobs_fall_back_to_one_on_a_dask_scheduler_or_a_gpu():
    assert effective_jobs("auto") == "auto" and effective_jobs("2", "sync", "cpu") == "2"
    assert effective_jobs("2", "local:2") == 1 and effective_jobs("auto", "threads") == 1
    assert effective_jobs("2", "sync", "cuda") == 1


def test_two_jobs_write_the_same_bytes_and_report_every_category(tmp_path, run, write_params):
    params = write_params(tmp_path, CATS, data={"n_points": 1500, "n_fewshot": 2, "n_val": 1, "n_test": 1}, render={"image_size": 64})
    outs = {}
    for jobs in ("1", "2"):
        cache = tmp_path / f"cache{jobs}"
        run(["ingest", "--params", params, "--cache", cache])  # ingest is quick: always in-process
        outs[jobs] = [run([stage, "--params", params, "--cache", cache, "--jobs", jobs]).output for stage in CHAIN[1:]]
    for stage, seq, par in zip(CHAIN[1:], outs["1"], outs["2"]):
        for cat in CATS:  # each category's summary once, printed by the parent in category order
            line = f"[{stage}] {cat}: 4 computed, 0 up to date, 0 failed"
            assert seq.count(line) == 1 and par.count(line) == 1, (stage, par)
        assert par.index(f"[{stage}] Chair:") < par.index(f"[{stage}] Bottle:")
    a, b = digest_tree(tmp_path / "cache1"), digest_tree(tmp_path / "cache2")
    assert a.keys() == b.keys() and len([k for k in a if k.endswith(".zip")]) == len(CHAIN) * 8
    assert a == b  # same results, byte for byte (zips have fixed timestamps)


def test_a_failing_category_in_a_worker_fails_the_run_and_keeps_the_other(tmp_path, run, invoke, write_params):
    params = write_params(tmp_path, CATS, data={"n_points": 1500, "n_fewshot": 2, "n_val": 1, "n_test": 1}, render={"image_size": 64})
    cache = tmp_path / "cache"
    run(["ingest", "--params", params, "--cache", cache])
    z = object_zip(cache, "ingest", "Chair/0001")
    edit_member(z, chunk_members(z, "xyz")[0], lambda b: b[: len(b) // 2])
    res = invoke(["render", "--params", params, "--cache", cache, "--jobs", "2"])
    assert res.exit_code == 1, res.output
    assert "[render] Chair: 3 computed, 0 up to date, 1 failed" in res.output
    assert "[render] Bottle: 4 computed, 0 up to date, 0 failed" in res.output
    assert "Chair/0001" in res.output and "ingest/Chair.zarr/0001.zip/xyz" in res.output
    fails = json.loads((cache / "render" / "Chair.zarr" / "failures.json").read_text())["failed"]
    assert [f["object"] for f in fails] == ["Chair/0001"]


def test_train_and_evaluate_with_two_jobs_write_every_category(tmp_path, run, write_params):
    params = write_params(tmp_path, CATS, data={"n_points": 1500, "n_fewshot": 2, "n_val": 1, "n_test": 1}, render={"image_size": 64})
    cache, models, metrics = tmp_path / "cache", tmp_path / "models", tmp_path / "metrics"
    for stage in CHAIN:
        run([stage, "--params", params, "--cache", cache])
    out = run(
        [
            "train",
            "--params",
            params,
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
            "--jobs",
            "2",
        ]
    ).output
    for cat in CATS:
        assert f"[train] {cat} partstad: best epoch" in out and (models / cat / "partstad.safetensors").is_file()
    out = run(
        ["evaluate", "--params", params, "--cache", cache, "--models", models, "--metrics", metrics, "--device", "cpu", "--jobs", "2"]
    ).output
    for cat in CATS:
        m = json.loads((metrics / "evaluate" / f"{cat}.json").read_text())
        assert 0 <= m["methods"]["partstad"]["miou"] <= 100 and f"  {cat:18s} partstad" in out


@pytest.mark.parametrize("bad", ["0", "-1", "two"])
def test_a_bad_jobs_value_is_exit_2(tmp_path, invoke, write_params, bad):
    params = write_params(tmp_path, CATS)
    res = invoke(["render", "--params", params, "--cache", tmp_path / "cache", "--jobs", bad])
    assert res.exit_code == 2 and "--jobs" in res.output
    assert not (tmp_path / "cache").exists()
