"""Robustness sweep: corrupted or inconsistent cache inputs give a per-object error naming the
object and the file (recorded in failures.json, the other objects complete) or a recompute,
never a silent wrong result and never a crash of the whole stage. Model files are loaded
without running code from them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import BadInputError
from stages.stage_table import chain
from stages.store import CategoryStore
from tests.object_zip import chunk_members, edit_member, object_zip

CHAIN = list(chain("lift"))
TINY = dict(data={"n_points": 2000, "n_fewshot": 2, "n_val": 1, "n_test": 2}, render={"image_size": 64}, detect={"feat_dim": 32})
ALL = ["Chair/0000", "Chair/0001", "Chair/0002", "Chair/0003", "Chair/0004"]  # 0,1 fewshot; 2 val; 3,4 test


@pytest.fixture(scope="module")
def base(tmp_path_factory, run, write_params):
    """A finished chain (ingest .. lift, then train) on five tiny chairs."""
    d = tmp_path_factory.mktemp("robust-base")
    params = write_params(d, **TINY)
    for stage in CHAIN:
        run([stage, "--params", params, "--cache", d / "cache"])
    run(["train", "--params", params, "--cache", d / "cache", "--models", d / "models", "--metrics", d / "metrics", "--plots", d / "plots"])
    return d


@pytest.fixture
def work(base, tmp_path):
    """A private copy of the base project (params, cache, models) for one test."""
    d = tmp_path / "p"
    shutil.copytree(base, d)
    return d


def _args(d: Path, stage: str, *extra: str) -> list:
    return [stage, "--params", d / "params.yaml", "--cache", d / "cache", *extra]


def _store(d: Path, stage: str) -> CategoryStore:
    return CategoryStore(d / "cache", stage, "Chair")


def _failures(d: Path, stage: str) -> dict[str, str]:
    return {f["object"]: f["error"] for f in _store(d, stage).read_json("failures.json")["failed"]}


def _fingerprints(d: Path, stage: str) -> dict[str, str | None]:
    st = _store(d, stage)
    return {oid: st.stored_fingerprint(oid) for oid in ALL}


def _zip(d: Path, stage: str, oid: str) -> Path:
    return object_zip(d / "cache", stage, oid)


def _edit_shard(d: Path, stage: str, oid: str, array: str, change) -> None:
    """Damage the shard member holding every chunk of ``array`` inside the object's zip."""
    z = _zip(d, stage, oid)
    (member,) = chunk_members(z, array)
    edit_member(z, member, change)


def _flip_middle_byte(b: bytes) -> bytes:
    out = bytearray(b)
    out[len(out) // 2] ^= 0x5A
    return bytes(out)


def _rewrite(d: Path, stage: str, oid: str, **replace: np.ndarray) -> None:
    """Replace arrays of a complete object but keep its fingerprint (a silent corruption)."""
    st = _store(d, stage)
    arrays = {name: st.read(oid, name) for name in st.attrs(oid).get("arrays", [])} or st.read_all(oid)
    arrays.update(replace)
    attrs = st.attrs(oid)
    st.write_object(oid, arrays, attrs, attrs["fingerprint"])


# ----------------------------------------------------------------------------- cache data
def test_corrupt_chunks_of_an_upstream_array_fail_only_their_objects(work, run, run_failing):
    vis_before = _fingerprints(work, "visibility")
    _edit_shard(work, "render", "Chair/0001", "pix2pt", lambda b: b[: len(b) // 2])  # truncated shard
    _edit_shard(work, "render", "Chair/0002", "pix2pt", _flip_middle_byte)  # same size, caught by CRC32C
    _edit_shard(work, "render", "Chair/0003", "pix2pt", lambda b: None)  # shard missing from the zip

    out = run_failing(_args(work, "visibility", "--force")).output
    assert "[visibility] Chair: 2 computed, 0 up to date, 3 failed" in out
    assert "3 object(s) failed (listed in visibility/Chair.zarr/failures.json); the other results are kept" in out
    fails = _failures(work, "visibility")
    assert set(fails) == {"Chair/0001", "Chair/0002", "Chair/0003"}
    for oid, msg in fails.items():
        assert f"object {oid}" in msg and f"render/Chair.zarr/{oid.split('/')[1]}.zip/pix2pt" in msg, msg
    assert "corrupt" in fails["Chair/0001"] and "corrupt" in fails["Chair/0002"]
    assert re.search(r"array 'pix2pt' is incomplete: \d+ of 10 chunks present \(shard file missing or damaged\)", fails["Chair/0003"]), (
        fails["Chair/0003"]
    )
    vis = _store(work, "visibility")
    # the failed objects keep their previous (complete, readable) result; the others were rewritten
    assert vis.object_ids() == ALL
    after = _fingerprints(work, "visibility")
    assert all(after[o] == vis_before[o] for o in ALL)  # same key: same config, code and upstream
    for oid in ("Chair/0001", "Chair/0002", "Chair/0003"):
        assert vis.verify_object(oid) is None and vis.read(oid, "visible").size > 0
    with pytest.raises(BadInputError, match="Chair/0002.*pix2pt"):
        _store(work, "render").read("Chair/0002", "pix2pt")
    # render's self-check on skip finds the missing chunk file and, from the digests of the
    # stored bytes, the corrupt contents (nothing decoded), and recomputes those objects
    out = run(_args(work, "render")).output
    assert "[render] Chair: 3 computed, 2 up to date, 0 failed, 3 repaired" in out
    assert _store(work, "render").verify_object("Chair/0003") is None
    out = run(_args(work, "render", "--force")).output
    assert "[render] Chair: 5 computed" in out
    # the recomputed render results have the keys visibility was computed from: the kept
    # results are up to date again and the failure records go away
    out = run(_args(work, "visibility")).output
    assert "[visibility] Chair: 0 computed, 5 up to date, 0 failed" in out
    assert _failures(work, "visibility") == {}


def test_corrupt_chunk_read_lazily_box_by_box_is_named(work, run_failing):
    lift_before = _fingerprints(work, "lift")
    _edit_shard(work, "segment", "Chair/0003", "mask", _flip_middle_byte)  # one box's mask, CRC fails on read
    out = run_failing(_args(work, "lift", "--force")).output
    assert "[lift] Chair: 4 computed, 0 up to date, 1 failed" in out
    msg = _failures(work, "lift")["Chair/0003"]
    assert "object Chair/0003" in msg and "segment/Chair.zarr/0003.zip/mask" in msg and "corrupt" in msg
    assert _fingerprints(work, "lift") == lift_before  # Chair/0003 keeps its previous result


def test_missing_upstream_object_and_unreadable_group_metadata(work, run_failing):
    vis_before = _fingerprints(work, "visibility")
    _zip(work, "render", "Chair/0002").unlink()
    edit_member(_zip(work, "render", "Chair/0004"), "zarr.json", lambda b: b[:20])
    _zip(work, "visibility", "Chair/0000").write_bytes(b"{")  # the stage's own output unreadable: just recomputed
    out = run_failing(_args(work, "visibility")).output
    assert "[visibility] Chair: 1 computed, 2 up to date, 2 failed" in out
    fails = _failures(work, "visibility")
    assert (
        "object Chair/0002" in fails["Chair/0002"]
        and "upstream stage 'render'" in fails["Chair/0002"]
        and "render/Chair.zarr" in fails["Chair/0002"]
    )
    assert "object Chair/0004" in fails["Chair/0004"] and "render/Chair.zarr/0004.zip" in fails["Chair/0004"]
    # the failed objects keep their previous results; the unreadable one was recomputed
    assert _store(work, "visibility").object_ids() == ALL
    assert _fingerprints(work, "visibility") == vis_before
    # downstream of the now missing render results: lift fails these two objects too, by name
    # (their kept visibility results cannot be verified against a missing render result)
    out = run_failing(_args(work, "lift")).output
    assert "[lift] Chair: 0 computed, 3 up to date, 2 failed" in out
    fails = _failures(work, "lift")
    assert set(fails) == {"Chair/0002", "Chair/0004"}
    assert "render/Chair.zarr" in fails["Chair/0002"] and "render/Chair.zarr/0004.zip" in fails["Chair/0004"]


def test_nan_detector_features_are_rejected_by_train_and_evaluate(work, run_failing):
    for oid in ("Chair/0001", "Chair/0003"):
        feat = _store(work, "detect").read(oid, "feat")
        assert len(feat) > 0
        feat[0, 0] = np.nan
        _rewrite(work, "detect", oid, feat=feat)
    weights = work / "models" / "Chair" / "partstad.safetensors"
    old_weights = weights.read_bytes()
    train_args = [
        "train",
        "--params",
        work / "params.yaml",
        "--cache",
        work / "cache",
        "--models",
        work / "models",
        "--metrics",
        work / "metrics",
        "--plots",
        work / "plots",
    ]
    out = run_failing(train_args).output
    assert "[train] Chair partstad:" in out
    assert "SKIPPED Chair/0001" in out and "1 object(s) could not be used for training" in out
    skipped = {s["object"]: s["error"] for s in json.loads((work / "metrics" / "train" / "Chair.json").read_text())["skipped"]}
    assert list(skipped) == ["Chair/0001"] and "NaN" in skipped["Chair/0001"] and "detect/Chair.zarr/0001.zip/feat" in skipped["Chair/0001"]
    assert weights.read_bytes() != old_weights  # the model was still retrained, without Chair/0001
    out = run_failing(
        [
            "evaluate",
            "--params",
            work / "params.yaml",
            "--cache",
            work / "cache",
            "--models",
            work / "models",
            "--metrics",
            work / "metrics",
        ]
    ).output
    assert "[evaluate] Chair: 2 computed, 0 up to date, 1 failed" in out  # test 0004 + val 0002 (for method auto)
    fails = _failures(work, "evaluate")
    assert list(fails) == ["Chair/0003"] and "NaN" in fails["Chair/0003"] and "detect/Chair.zarr/0003.zip/feat" in fails["Chair/0003"]
    assert _store(work, "evaluate").object_ids() == ["Chair/0002", "Chair/0004"]
    metrics = json.loads((work / "metrics" / "evaluate" / "Chair.json").read_text())
    assert metrics["failed"] == ["Chair/0003"] and metrics["n_test"] == 1


def test_masks_of_the_wrong_shape_are_rejected_by_lift(work, run_failing):
    lift_before = _fingerprints(work, "lift")
    m1 = _store(work, "segment").read("Chair/0001", "mask")
    _rewrite(work, "segment", "Chair/0001", mask=m1[:, ::2, ::2])  # half-resolution masks
    m2 = _store(work, "segment").read("Chair/0002", "mask")
    _rewrite(work, "segment", "Chair/0002", mask=np.concatenate([m2, m2[:1]]))  # one mask too many
    out = run_failing(_args(work, "lift", "--force")).output
    assert "[lift] Chair: 3 computed, 0 up to date, 2 failed" in out
    fails = _failures(work, "lift")
    assert set(fails) == {"Chair/0001", "Chair/0002"}
    b1, b2 = len(m1), len(m2)
    assert (
        f"shape ({b1}, 32, 32), expected ({b1}, 64, 64)" in fails["Chair/0001"]
        and "segment/Chair.zarr/0001.zip/mask" in fails["Chair/0001"]
    )
    # one mask too many: the counts of segment and detect disagree before any mask is read
    assert f"the segment result has {b2 + 1} boxes but the detect result has {b2}" in fails["Chair/0002"]
    assert "object Chair/0002" in fails["Chair/0002"] and "segment/Chair.zarr/0002.zip" in fails["Chair/0002"]
    # every object still has a lift result: the two failed ones keep their previous one
    assert _store(work, "lift").object_ids() == ALL and _fingerprints(work, "lift") == lift_before


def test_stale_fingerprint_recomputes_exactly_the_changed_object(work, run):
    from stages.config import load_config
    from stages.render import render_work
    from stages.runner import StageContext

    before = _store(work, "render").read("Chair/0001", "pix2pt")
    ing = _store(work, "ingest")
    xyz = ing.read("Chair/0001", "xyz")
    attrs = ing.attrs("Chair/0001")
    ing.write_object("Chair/0001", {**ing.read_all("Chair/0001"), "xyz": xyz[:, [2, 1, 0]]}, attrs, "upstream-changed")
    out = run(_args(work, "render")).output
    assert "[render] Chair: 1 computed, 4 up to date, 0 failed" in out
    after = _store(work, "render").read("Chair/0001", "pix2pt")
    cfg = load_config(work / "params.yaml")
    expected, _ = render_work(StageContext("render", "Chair", str(work / "cache"), cfg), "Chair/0001")
    np.testing.assert_array_equal(after, expected["pix2pt"])
    assert not np.array_equal(after, before)
    for stage in ("visibility", "superpoints", "detect"):
        assert f"[{stage}] Chair: 1 computed, 4 up to date, 0 failed" in run(_args(work, stage)).output


# ----------------------------------------------------------------------------- model files
class _Evil:
    """Unpickling this runs `touch <marker>`: a loader that executes pickles would create it."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_file(path: Path, marker: Path) -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"weight": torch.zeros(2), "payload": _Evil(marker)}, path)
    return path


def test_pickle_bearing_weight_files_are_refused(work, invoke, tmp_path):
    from pipeline.segment.sam import SamCheckpointError, SamMasker
    from pipeline.train.checkpoint import load_weights

    marker = tmp_path / "code-ran"
    with pytest.raises(SamCheckpointError, match="sam.pth"):
        SamMasker("vit_b", _evil_file(tmp_path / "sam.pth", marker))
    with pytest.raises(Exception):  # noqa: B017 - safetensors refuses anything but its own format
        load_weights(_evil_file(tmp_path / "net.safetensors", marker))
    _evil_file(work / "models" / "Chair" / "partstad.safetensors", marker)
    res = invoke(
        [
            "evaluate",
            "--params",
            work / "params.yaml",
            "--cache",
            work / "cache",
            "--models",
            work / "models",
            "--metrics",
            work / "metrics",
        ]
    )
    assert res.exit_code == 2, res.output  # an unusable weights file is a user mistake: exit 2 before any object
    assert "cannot load trained weights" in res.output and "models/Chair/partstad.safetensors" in res.output
    # refused before any object: no evaluate store, no metrics
    assert not _store(work, "evaluate").exists() and not (work / "metrics" / "evaluate").exists()
    assert not marker.exists(), "code from a weights file was executed"


def test_grounding_dino_accepts_only_safetensors(tmp_path):
    pytest.importorskip("transformers")
    from transformers import BertConfig, BertTokenizer, GroundingDinoConfig, ResNetConfig

    from pipeline.detect.grounding_dino import DetectorWeightsNotFoundError, GroundingDinoDetector

    d = tmp_path / "gdino"
    d.mkdir()
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "leg"]
    BertTokenizer(vocab={w: i for i, w in enumerate(words)}).save_pretrained(d)
    backbone = ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1], layer_type="basic", out_features=["stage2", "stage3", "stage4"]
    )
    GroundingDinoConfig(
        backbone_config=backbone,
        text_config=BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=1, num_attention_heads=2),
        d_model=32,
        num_queries=10,
        encoder_layers=1,
        decoder_layers=1,
    ).save_pretrained(d)
    (d / "preprocessor_config.json").write_text(
        json.dumps({"image_processor_type": "GroundingDinoImageProcessor", "size": {"shortest_edge": 64, "longest_edge": 64}})
    )
    marker = tmp_path / "code-ran"
    _evil_file(d / "pytorch_model.bin", marker)
    with pytest.raises(DetectorWeightsNotFoundError, match="safetensors"):
        GroundingDinoDetector(d)
    assert not marker.exists()
