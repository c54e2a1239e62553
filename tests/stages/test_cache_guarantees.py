"""What the cache guarantees (README "What the cache guarantees"), one test per promise.

A small Chair cache (5 synthetic objects through lift, plus a 3-epoch model) is built once
per module and copied for every test that damages it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from stages.stage_table import chain
from stages.store import CategoryStore
from tests.object_zip import chunk_members, edit_member, object_zip

REPO = Path(__file__).resolve().parents[2]
CHAIN = list(chain("lift"))
TINY = dict(data={"n_points": 1500}, render={"image_size": 64}, detect={"feat_dim": 32})


@pytest.fixture(scope="module")
def built(tmp_path_factory, write_params, run):
    """A complete tiny cache + model + metrics, never modified (tests copy it)."""
    root = tmp_path_factory.mktemp("built")
    params = write_params(root, **TINY)
    for stage in CHAIN:
        run([stage, "--params", params, "--cache", root / "cache"])
    run(
        [
            "train",
            "--params",
            params,
            "--cache",
            root / "cache",
            "--models",
            root / "models",
            "--metrics",
            root / "metrics",
            "--plots",
            root / "plots",
        ]
    )
    run(["evaluate", "--params", params, "--cache", root / "cache", "--models", root / "models", "--metrics", root / "metrics"])
    return root


@pytest.fixture
def proj(built, tmp_path):
    """A private copy of the built project (cache, models, metrics, params)."""
    dst = tmp_path / "p"
    shutil.copytree(built, dst)
    return dst


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under root (lock files aside)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(root).rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


def damage_chunk(cache: Path, stage: str, object_id: str, array: str, change=lambda _old: b"junk") -> None:
    """Replace (or, with ``change`` returning None, remove) an array's data inside an object's zip."""
    z = object_zip(cache, stage, object_id)
    edit_member(z, chunk_members(z, array)[0], change)


def args(p: Path, stage: str, *extra: str) -> list:
    base = [stage, "--params", p / "params.yaml", "--cache", p / "cache"]
    if stage in ("train", "evaluate"):
        base += ["--models", p / "models", "--metrics", p / "metrics"]
    if stage == "train":
        base += ["--plots", p / "plots"]
    return base + list(extra)


def set_params(p: Path, **sections) -> None:
    """Rewrite params.yaml with some sections replaced or merged (raw values, even invalid ones)."""
    raw = yaml.safe_load((p / "params.yaml").read_text())
    for name, value in sections.items():
        raw[name] = {**raw[name], **value} if isinstance(value, dict) and isinstance(raw.get(name), dict) else value
    (p / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def summary(output: str, stage: str) -> tuple[int, int, int]:
    line = next(ln for ln in output.splitlines() if ln.startswith(f"[{stage}] Chair:"))
    words = line.split(":", 1)[1].replace(",", "").split()
    return int(words[0]), int(words[2]), int(words[6])  # computed, up to date, failed


# -- 1. validated configuration -------------------------------------------------------------
BAD_SETTINGS = [
    ("render", {"render": {"image_size": "abc"}}, "render.image_size"),
    ("render", {"render": 5}, "render"),
    ("render", {"render": {"backend": "vulkan"}}, "render.backend"),
    ("superpoints", {"superpoints": {"k_adjj": 3}}, "superpoints.k_adjj"),
    ("detect", {"detect": {"oracle": {"fp_rat": 1.0}}}, "detect.oracle.fp_rat"),
    ("lift", {"lift": {"iou_gate": -1}}, "lift.iou_gate"),
    ("train", {"train": {"epochs": -5}}, "train.epochs"),
    ("train", {"train": {"epochs": 0}}, "train.epochs"),
    ("evaluate", {"categorie": ["Chair"]}, "categorie"),
    ("segment", {"segment": {"mode": "sam", "sam_checkpoint": "/nonexistent/sam.pth"}}, "segment.sam_checkpoint"),
    ("detect", {"detect": {"backend": "grounding_dino", "weights_dir": None}}, "detect.weights_dir"),
]


@pytest.mark.parametrize("stage,bad,key", BAD_SETTINGS, ids=[k for _, _, k in BAD_SETTINGS])
def test_a_bad_setting_is_exit_2_naming_the_key_and_leaves_everything_byte_identical(proj, invoke, stage, bad, key):
    before = snapshot(proj)
    set_params(proj, **bad)
    res = invoke(args(proj, stage))
    assert res.exit_code == 2, res.output
    assert key in res.output
    after = snapshot(proj)
    after.pop("params.yaml")
    before.pop("params.yaml")
    assert after == before


def test_a_truncated_sam_checkpoint_is_refused_before_any_object(proj, invoke):
    ck = proj / "sam.pth"
    ck.write_bytes(b"PK\x03\x04 truncated")
    before = snapshot(proj / "cache")
    set_params(proj, segment={"mode": "sam", "sam_checkpoint": str(ck)})
    res = invoke(args(proj, "segment"))
    assert res.exit_code == 2 and "cannot load" in res.output and "segment.sam_checkpoint" in res.output
    assert snapshot(proj / "cache") == before


def test_train_epochs_minus_5_leaves_the_model_files_identical(proj, invoke):
    before = snapshot(proj / "models")
    set_params(proj, train={"epochs": -5})
    res = invoke(args(proj, "train"))
    assert res.exit_code == 2 and "train.epochs" in res.output
    assert snapshot(proj / "models") == before


def test_every_params_key_is_read(tmp_path):
    """The repository's params.yaml validates, so none of its keys is unknown (ignored)."""
    from stages.config import load_config

    cfg = load_config(REPO / "params.yaml")
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    dumped = cfg.model_dump()
    for section, value in raw.items():
        assert section in dumped
        if isinstance(value, dict):
            assert set(value) <= set(dumped[section]), section


# -- 2. keys ------------------------------------------------------------------------------------
def test_different_objects_have_different_keys(proj):
    st = CategoryStore(proj / "cache", "render", "Chair")
    fps = [st.stored_fingerprint(o) for o in st.object_ids()]
    assert len(fps) == 5 and len(set(fps)) == 5


def test_a_label_edit_after_ingest_recomputes_that_object(tmp_path, run, write_params):
    from pipeline.data.ply import write_ply

    root = tmp_path / "PartNetE"
    rng = np.random.default_rng(0)
    for split, oid in [("few_shot", "1"), ("test", "2"), ("test", "3")]:
        d = root / "data" / split / "Chair" / oid
        d.mkdir(parents=True)
        write_ply(d / "pc.ply", rng.normal(size=(300, 3)).astype(np.float32), rng.integers(0, 255, (300, 3)).astype(np.uint8))
        np.save(d / "label.npy", {"semantic_seg": rng.integers(-1, 4, 300), "instance_seg": np.arange(300)}, allow_pickle=True)
    params = write_params(tmp_path, data={"source": "partnete", "root": str(root)})
    cmd = ["ingest", "--params", params, "--cache", tmp_path / "cache"]
    assert summary(run(cmd).output, "ingest") == (3, 0, 0)
    assert summary(run(cmd).output, "ingest") == (0, 3, 0)
    lab = root / "data" / "test" / "Chair" / "2" / "label.npy"
    np.save(lab, {"semantic_seg": np.zeros(300, dtype=np.int64), "instance_seg": np.zeros(300, dtype=np.int64)}, allow_pickle=True)
    assert summary(run(cmd).output, "ingest") == (1, 2, 0)
    assert (CategoryStore(tmp_path / "cache", "ingest", "Chair").read("Chair/2", "sem") == 0).all()


def test_code_hash_follows_the_source_of_imported_modules(tmp_path, monkeypatch):
    from stages import keys

    fake = tmp_path / "repo"
    for pkg in ("pipeline", "stages"):
        shutil.copytree(REPO / pkg, fake / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(keys, "REPO_ROOT", fake)
    for fn in (keys.module_closure, keys.code_hash):
        fn.cache_clear()
    before = {s: keys.code_hash(s) for s in ("render", "visibility", "superpoints")}
    assert "pipeline.render.splat_numpy" in keys.module_closure("stages.render")
    splat = fake / "pipeline" / "render" / "splat_numpy.py"
    splat.write_text(splat.read_text() + "\n# a change\n")
    for fn in (keys.module_closure, keys.code_hash):
        fn.cache_clear()
    after = {s: keys.code_hash(s) for s in ("render", "visibility", "superpoints")}
    assert after["render"] != before["render"]
    assert after["visibility"] == before["visibility"]  # visibility does not run the renderer
    for fn in (keys.module_closure, keys.code_hash):
        fn.cache_clear()


def test_a_downstream_stage_refuses_a_stale_upstream(proj, run, invoke):
    set_params(proj, render={"radius_ndc": 0.01})
    assert summary(run(args(proj, "render")).output, "render") == (5, 0, 0)
    before = snapshot(proj / "cache" / "lift")
    res = invoke(args(proj, "lift"))  # visibility was not re-run: it belongs to the old renders
    assert res.exit_code == 1
    assert "visibility result is out of date" in res.output and "run `partstad visibility` first" in res.output
    assert summary(res.output, "lift")[2] == 5
    assert {k: v for k, v in snapshot(proj / "cache" / "lift").items() if k != "Chair.zarr/failures.json"} == {
        k: v for k, v in before.items() if k != "Chair.zarr/failures.json"
    }


def test_tau_round_trips_through_the_weights_file(proj, run):
    from pipeline.train.checkpoint import load_weights

    set_params(proj, train={"tau": 4.0})
    run(args(proj, "train"))
    net, _theta, meta = load_weights(proj / "models" / "Chair" / "partstad.safetensors")
    assert net.tau == 4.0 and json.loads(meta["config"])["train_config"]["tau"] == 4.0
    run(args(proj, "evaluate"))
    prov = json.loads((proj / "metrics" / "evaluate" / "Chair.json").read_text())["provenance"]
    assert float(prov["models"]["files"]["partstad.safetensors"]["tau"]) == 4.0


# -- 3. never lose good work -----------------------------------------------------------------
def test_a_failing_object_keeps_its_previous_result(proj, invoke):
    ren = CategoryStore(proj / "cache", "render", "Chair")
    old_fp = ren.stored_fingerprint("Chair/0001")
    old_rgb = ren.read("Chair/0001", "rgb")
    # the object's input breaks, and a setting change asks for a recompute of every object
    damage_chunk(proj / "cache", "ingest", "Chair/0001", "xyz")
    set_params(proj, render={"radius_ndc": 0.01})
    res = invoke(args(proj, "render"))
    assert res.exit_code == 1 and summary(res.output, "render") == (4, 0, 1)
    assert ren.stored_fingerprint("Chair/0001") == old_fp
    assert np.array_equal(ren.read("Chair/0001", "rgb"), old_rgb)
    failures = json.loads((proj / "cache" / "render" / "Chair.zarr" / "failures.json").read_text())
    assert [f["object"] for f in failures["failed"]] == ["Chair/0001"]
    assert not list((proj / "cache" / "render" / "Chair.zarr").glob(".staging-*"))


def test_keep_going_downgrades_object_failures_to_a_warning(proj, invoke):
    object_zip(proj / "cache", "render", "Chair/0002").unlink()
    res = invoke(args(proj, "visibility", "--force", "--keep-going"))
    assert res.exit_code == 0 and "WARNING 1 object(s) failed" in res.output


# -- 4. one writer per store -------------------------------------------------------------------
def _cli(*a: object) -> list[str]:
    return [sys.executable, "-m", "stages.cli", *map(str, a)]


def test_two_processes_rendering_one_store_at_once_lose_nothing(proj):
    env = {**os.environ, "PYOPENGL_PLATFORM": "egl"}
    cmd = _cli("render", "--params", proj / "params.yaml", "--cache", proj / "cache", "--force")
    procs = [subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sum("[render] Chair: 5 computed" in o for o in outs) == 2
    st = CategoryStore(proj / "cache", "render", "Chair")
    assert len(st.object_ids()) == 5 and all(st.verify_object(o) is None for o in st.object_ids())
    assert not [p.name for p in Path(st.url).iterdir() if p.name.startswith(".")]
    assert summary(subprocess.run(cmd[:-1], cwd=REPO, env=env, capture_output=True, text=True).stdout, "render") == (0, 5, 0)


def test_a_second_writer_with_lock_timeout_0_stops_with_a_clear_message(proj, invoke):
    from filelock import FileLock

    with FileLock(str(proj / "cache" / "render" / "Chair.zarr.lock")):
        res = invoke(args(proj, "render", "--force", "--lock-timeout", "0"))
    assert res.exit_code == 1 and "another partstad run is writing" in res.output


# -- 5. self-check on skip ---------------------------------------------------------------------
def test_a_deleted_chunk_is_recomputed_on_the_next_run(proj, run):
    damage_chunk(proj / "cache", "render", "Chair/0003", "pix2pt", change=lambda _old: None)
    out = run(args(proj, "render")).output
    assert summary(out, "render") == (1, 4, 0) and "1 repaired" in out
    assert CategoryStore(proj / "cache", "render", "Chair").verify_object("Chair/0003") is None


def test_garbage_store_metadata_is_a_clear_error(proj, invoke):
    (proj / "cache" / "render" / "Chair.zarr" / "zarr.json").write_text("{ not json")
    res = invoke(args(proj, "render"))
    assert res.exit_code == 1 and "render store of Chair is unreadable" in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


def test_garbage_failures_json_is_replaced_with_a_warning(proj, run):
    (proj / "cache" / "render" / "Chair.zarr" / "failures.json").write_text("][")
    run(args(proj, "render"))
    assert json.loads((proj / "cache" / "render" / "Chair.zarr" / "failures.json").read_text())["failed"] == []


# -- 6. exit codes -----------------------------------------------------------------------------
def test_no_object_matched_is_exit_1(proj, invoke):
    res = invoke(args(proj, "render", "--objects", "Chair/9999"))
    assert res.exit_code == 1 and "matched no" in res.output


def test_a_wrong_root_never_empties_the_manifest(proj, invoke):
    manifest = proj / "cache" / "ingest" / "Chair.zarr" / "manifest.json"
    before = manifest.read_bytes()
    res = invoke(args(proj, "ingest", "--source", "partnete", "--root", proj / "nope"))
    assert res.exit_code == 2 and "not a directory" in res.output
    empty = proj / "empty"
    empty.mkdir()
    res = invoke(args(proj, "ingest", "--source", "partnete", "--root", empty, "--category", "Chair"))
    assert res.exit_code == 1 and "no objects found" in res.output
    res = invoke(args(proj, "ingest", "--source", "partnete", "--root", empty))  # every category found there: none
    assert res.exit_code == 2 and "no known category found" in res.output
    assert manifest.read_bytes() == before


def test_evaluate_with_nothing_to_evaluate_keeps_the_metrics(proj, invoke):
    metrics = proj / "metrics" / "evaluate" / "Chair.json"
    before = metrics.read_bytes()
    res = invoke(args(proj, "evaluate", "--objects", "Chair/9999"))
    assert res.exit_code == 1
    assert metrics.read_bytes() == before


def test_a_truncated_weights_file_stops_evaluate_before_any_object(proj, invoke):
    w = proj / "models" / "Chair" / "partstad.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    before = snapshot(proj / "cache") | snapshot(proj / "metrics")
    res = invoke(args(proj, "evaluate", "--force"))
    assert res.exit_code == 2 and "cannot load trained weights" in res.output  # a bad weights file: exit 2
    assert snapshot(proj / "cache") | snapshot(proj / "metrics") == before


# -- 7. input hardening --------------------------------------------------------------------------
def _partnete(root: Path, objects: list[tuple[str, str]]) -> None:
    from pipeline.data.ply import write_ply

    rng = np.random.default_rng(1)
    for split, oid in objects:
        d = root / "data" / split / "Chair" / oid
        d.mkdir(parents=True)
        write_ply(d / "pc.ply", rng.normal(size=(200, 3)).astype(np.float32), rng.integers(0, 255, (200, 3)).astype(np.uint8))
        np.save(d / "label.npy", {"semantic_seg": rng.integers(-1, 4, 200), "instance_seg": np.arange(200)}, allow_pickle=True)


def test_odd_object_folder_names_fail_alone_with_a_clear_message(tmp_path, invoke, write_params):
    root = tmp_path / "PartNetE"
    _partnete(root, [("few_shot", "1"), ("test", "²"), ("test", "a b"), ("test", "chair_a")])
    params = write_params(tmp_path, data={"source": "partnete", "root": str(root)})
    res = invoke(["ingest", "--params", params, "--cache", tmp_path / "cache"])
    assert res.exit_code == 1
    assert summary(res.output, "ingest") == (2, 0, 2)
    assert "invalid object id '²'" in res.output and "invalid object id 'a b'" in res.output
    manifest = json.loads((tmp_path / "cache" / "ingest" / "Chair.zarr" / "manifest.json").read_text())
    assert sorted(r["object"] for r in manifest) == ["Chair/1", "Chair/chair_a"]


def test_the_same_id_in_two_splits_is_an_error_and_nothing_is_ingested(tmp_path, invoke, write_params):
    root = tmp_path / "PartNetE"
    _partnete(root, [("few_shot", "7"), ("test", "7"), ("test", "8")])
    params = write_params(tmp_path, data={"source": "partnete", "root": str(root)})
    res = invoke(["ingest", "--params", params, "--cache", tmp_path / "cache"])
    assert res.exit_code == 1 and "Chair/7" in res.output and "few_shot" in res.output and "test" in res.output
    assert not (tmp_path / "cache" / "ingest" / "Chair.zarr" / "manifest.json").exists()


def test_a_no_op_run_leaves_the_store_byte_identical(proj, run):
    """`partstad <stage>` with everything up to date writes nothing, so DVC sees no change."""
    store = proj / "cache" / "render" / "Chair.zarr"
    before = {p: p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}
    out = run(args(proj, "render")).output
    assert "0 computed" in out and "0 failed" in out
    after = {p: p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}
    assert after == before
