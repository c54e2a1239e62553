"""Resume: a stage killed with SIGKILL leaves only fully readable complete groups, and the
rerun computes exactly the missing objects; a param change re-runs only what it affects.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from stages.stage_table import chain as stage_chain
from stages.store import CategoryStore

VENV_BIN = Path(sys.executable).parent


def complete_groups(store_dir: Path) -> list[str]:
    """Objects whose zip holds group metadata that says complete (read raw, without the store)."""
    out = []
    for z in store_dir.glob("*.zip"):
        try:
            with zipfile.ZipFile(z) as zf:
                attrs = json.loads(zf.read("zarr.json")).get("attributes", {})
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            continue  # unreadable: not complete (only whole zips are ever renamed in)
        if attrs.get("complete"):
            out.append(z.stem)
    return sorted(out)


def read_store(root: Path, stage: str) -> dict[str, dict[str, np.ndarray]]:
    st = CategoryStore(root, stage, "Chair")
    out = {}
    for oid in st.object_ids():
        out[oid] = st.read_all(oid)
    return out


def test_killed_render_resumes_with_only_missing_objects(tmp_path, run, write_params):
    params = write_params(tmp_path, data={"n_points": 20000, "n_fewshot": 4, "n_val": 2, "n_test": 6}, render={"image_size": 384})
    cache = tmp_path / "cache"
    run(["ingest", "--params", params, "--cache", cache])
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen(
        ["partstad", "render", "--params", str(params), "--cache", str(cache)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    store_dir = cache / "render" / "Chair.zarr"
    deadline = time.monotonic() + 120
    while len(complete_groups(store_dir)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole session: no cleanup code runs
    proc.wait()
    proc.stdout.close()
    done_at_kill = complete_groups(store_dir)
    assert 2 <= len(done_at_kill) < 12, f"kill came too late or too early: {done_at_kill}"

    # every group marked complete reads back fully and equals a clean run's result
    run(["ingest", "--params", params, "--cache", tmp_path / "clean"])
    run(["render", "--params", params, "--cache", tmp_path / "clean"])
    clean = read_store(tmp_path / "clean", "render")
    killed = read_store(cache, "render")
    assert sorted(killed) == [f"Chair/{n}" for n in done_at_kill]
    for oid, arrays in killed.items():
        assert arrays.keys() == clean[oid].keys()
        for name, arr in arrays.items():
            np.testing.assert_array_equal(arr, clean[oid][name], err_msg=f"{oid} {name}")

    out = run(["render", "--params", params, "--cache", cache]).output
    k = len(done_at_kill)
    assert f"[render] Chair: {12 - k} computed, {k} up to date, 0 failed" in out
    resumed = read_store(cache, "render")
    assert sorted(resumed) == sorted(clean)
    for oid in clean:
        for name, arr in clean[oid].items():
            np.testing.assert_array_equal(resumed[oid][name], arr, err_msg=f"{oid} {name}")
    # leftovers of the killed run (staging groups, trash) were swept by the resumed run
    assert not list(store_dir.glob(".trash-*")) and not list(store_dir.glob(".staging-*")) and not list(store_dir.rglob("*.partial"))


def _summary(out: str, stage: str) -> tuple[int, int]:
    m = re.search(rf"\[{stage}\] Chair: (\d+) computed, (\d+) up to date", out)
    assert m, out
    return int(m.group(1)), int(m.group(2))


def test_param_change_reruns_only_affected_stages_and_objects(tmp_path, run, run_failing, write_params):
    chain = list(stage_chain("lift"))
    tiny = dict(data={"n_points": 2000}, render={"image_size": 64}, detect={"feat_dim": 32})
    params = write_params(tmp_path, **tiny)
    cache = tmp_path / "cache"
    for stage in chain:
        assert _summary(run([stage, "--params", params, "--cache", cache]).output, stage) == (5, 0)

    # superpoints.reg changes: superpoints and lift (its downstream) recompute, nothing else
    params = write_params(tmp_path, **tiny, superpoints={"reg": 0.2})
    counts = {s: _summary(run([s, "--params", params, "--cache", cache]).output, s) for s in chain}
    assert counts == {
        "ingest": (0, 5),
        "render": (0, 5),
        "visibility": (0, 5),
        "superpoints": (5, 0),
        "detect": (0, 5),
        "segment": (0, 5),
        "lift": (5, 0),
    }

    # segment.boundary_noise changes: segment and lift only
    params = write_params(tmp_path, **tiny, superpoints={"reg": 0.2}, segment={"boundary_noise": 0.1})
    counts = {s: _summary(run([s, "--params", params, "--cache", cache]).output, s) for s in chain}
    assert counts == {
        "ingest": (0, 5),
        "render": (0, 5),
        "visibility": (0, 5),
        "superpoints": (0, 5),
        "detect": (0, 5),
        "segment": (5, 0),
        "lift": (5, 0),
    }

    # an upstream result whose stored key no longer matches its config/code/upstreams is stale:
    # segment refuses that one object (keeping its previous result) and names the stage to re-run
    st = CategoryStore(cache, "detect", "Chair")
    seg = CategoryStore(cache, "segment", "Chair")
    seg_fp = seg.stored_fingerprint("Chair/0001")
    seg_mask = seg.read("Chair/0001", "mask")
    arrays = {name: st.read("Chair/0001", name) for name in ["xyxy", "view", "label", "score", "feat", "offsets"]}
    st.write_object("Chair/0001", arrays, st.attrs("Chair/0001"), "a-different-fingerprint")
    out = run_failing(["segment", "--params", params, "--cache", cache]).output
    assert "[segment] Chair: 0 computed, 4 up to date, 1 failed" in out
    assert "FAILED Chair/0001" in out and "out of date" in out and "run `partstad detect` first" in out
    assert "1 object(s) failed" in out and "segment/Chair.zarr/failures.json" in out
    fails = json.loads(Path(seg.side_file("failures.json")).read_text())["failed"]
    assert [f["object"] for f in fails] == ["Chair/0001"] and "out of date" in fails[0]["error"]
    assert seg.stored_fingerprint("Chair/0001") == seg_fp  # the failing object keeps its result
    np.testing.assert_array_equal(seg.read("Chair/0001", "mask"), seg_mask)
    # lift refuses it too (its detect upstream is stale), touching nothing
    out = run_failing(["lift", "--params", params, "--cache", cache]).output
    assert "[lift] Chair: 0 computed, 4 up to date, 1 failed" in out and "run `partstad detect` first" in out
    # re-running detect recomputes exactly that object; its key is again the one segment and
    # lift were computed from, so they are up to date again and their failure records go away
    assert _summary(run(["detect", "--params", params, "--cache", cache]).output, "detect") == (1, 4)
    assert st.stored_fingerprint("Chair/0001") != "a-different-fingerprint"
    assert _summary(run(["segment", "--params", params, "--cache", cache]).output, "segment") == (0, 5)
    assert _summary(run(["lift", "--params", params, "--cache", cache]).output, "lift") == (0, 5)
    assert json.loads(Path(seg.side_file("failures.json")).read_text())["failed"] == []
    assert seg.stored_fingerprint("Chair/0001") == seg_fp


def test_delete_interrupted_by_a_kill_never_leaves_a_complete_looking_group(tmp_path):
    st = CategoryStore(tmp_path, "render", "Chair")
    st.write_object("Chair/1", {"a": np.arange(3)}, {}, "fp1")
    st.write_object("Chair/2", {"a": np.arange(3)}, {}, "fp2")
    # a kill mid-write leaves only a staging directory and a half-packed zip behind;
    # an older version's delete killed between its rename and its removal left a trash directory
    st.object_file("Chair/1").unlink()
    (Path(st.url) / ".staging-1-deadbeef").mkdir()
    (Path(st.url) / ".staging-1-deadbeef.zip").write_bytes(b"PK")
    (Path(st.url) / ".trash-1-deadbeef").mkdir()
    assert st.object_ids() == ["Chair/2"] and not st.is_complete("Chair/1")
    st.write_object("Chair/1", {"a": np.arange(4)}, {}, "fp1b")  # written beside the leftover
    assert st.object_ids() == ["Chair/1", "Chair/2"] and st.read("Chair/1", "a").tolist() == [0, 1, 2, 3]
    # the next run sweeps leftovers of killed runs (under the store lock) before any work
    assert st.clean_leftovers() == 3
    assert not list(Path(st.url).glob(".trash-*")) and not list(Path(st.url).glob(".staging-*"))
    assert st.object_ids() == ["Chair/1", "Chair/2"] and st.read("Chair/1", "a").tolist() == [0, 1, 2, 3]
