"""Weights are inputs: one changed byte of a SAM checkpoint or of an adapted Grounding DINO
changes the per-object keys of segment / detect, and provenance names every weights file
with its digest. Tiny random models (tests/tiny_gdino.py, pipeline.segment.sam.build_tiny_sam)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from stages.common import key_resolver, make_context
from stages.config import load_config
from stages.detector_weights import dir_digest
from stages.sam_weights import file_digest
from stages.store import CategoryStore
from tests.tiny_gdino import save_tiny_gdino

CAT = "Chair"
PARTS = ["arm", "back", "leg", "seat", "wheel"]
TINY = {"data": {"n_fewshot": 1, "n_val": 0, "n_test": 1, "n_points": 1500}, "render": {"image_size": 64, "views": [[10, 0], [40, 120]]}}


def flip_one_byte(path: Path) -> None:
    """Replace ``path`` by a copy with one byte changed (a new file, as `dvc pull` writes it)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(bytes(data))
    os.replace(tmp, path)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Ingested, rendered and (oracle-)detected tiny Chair shapes."""
    from tests.stages.conftest import run, write_params

    tmp = tmp_path_factory.mktemp("weights_tracking")
    p = write_params(tmp, **TINY)
    for stage in ("ingest", "render", "detect"):
        run([stage, "--params", p, "--cache", tmp / "cache"])
    return tmp


def _params(tmp: Path, name: str, **sections) -> Path:
    from tests.stages.conftest import write_params

    return write_params(tmp, name=name, **{**TINY, **sections})


def _key(params: Path, cache: Path, stage: str) -> str:
    cfg = load_config(params)
    oid = CategoryStore(cache, "ingest", CAT).object_ids()[0]
    return key_resolver(make_context(stage, CAT, str(cache), cfg)).key(stage, oid)


def test_one_byte_of_the_sam_checkpoint_changes_the_segment_key(cache):
    import torch

    from pipeline.segment.sam import build_tiny_sam

    ck = cache / "sam.pth"
    torch.save(build_tiny_sam(img_size=64, patch_size=8).state_dict(), ck)
    p = _params(cache, "sam.yaml", segment={"mode": "sam", "sam_checkpoint": str(ck)})
    before = _key(p, cache / "cache", "segment")
    assert _key(p, cache / "cache", "segment") == before  # deterministic
    flip_one_byte(ck)
    after = _key(p, cache / "cache", "segment")
    assert after != before
    # the simulated SAMs load no weights: the checkpoint setting's content plays no part
    oracle = _params(cache, "oracle.yaml", segment={"mode": "oracle", "sam_checkpoint": str(ck)})
    k = _key(oracle, cache / "cache", "segment")
    flip_one_byte(ck)
    assert _key(oracle, cache / "cache", "segment") == k


def test_one_byte_of_the_adapted_detector_changes_the_detect_key(cache):
    base = save_tiny_gdino(cache / "base", PARTS, image_size=64)
    adapted = save_tiny_gdino(cache / "adapt" / CAT, PARTS, image_size=64, seed=1)
    det = {"backend": "grounding_dino", "weights_dir": str(base)}
    on = _params(cache, "on.yaml", detect=det, adapt={"enabled": True, "out_dir": str(cache / "adapt")})
    off = _params(cache, "off.yaml", detect=det, adapt={"enabled": False, "out_dir": str(cache / "adapt")})
    k_on, k_off = _key(on, cache / "cache", "detect"), _key(off, cache / "cache", "detect")
    assert k_on != k_off
    flip_one_byte(adapted / "model.safetensors")
    assert _key(on, cache / "cache", "detect") != k_on
    assert _key(off, cache / "cache", "detect") == k_off  # adaptation off: only the base weights count
    flip_one_byte(base / "model.safetensors")
    assert _key(off, cache / "cache", "detect") != k_off


def test_provenance_names_every_weights_file_with_its_digest(cache, monkeypatch):
    from stages.provenance import describe, provenance

    monkeypatch.setenv("TORCH_HOME", str(cache / "torch"))
    hub = cache / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True, exist_ok=True)
    (hub / "sam_vit_b_01ec64.pth").write_bytes(b"tiny sam")
    base = save_tiny_gdino(cache / "prov_base", PARTS, image_size=64)
    adapted = save_tiny_gdino(cache / "prov_adapt" / CAT, PARTS, image_size=64, seed=2)
    (adapted / "adapt.json").write_text(json.dumps({"base_weights_digest": dir_digest(base)}))
    cfg = load_config(
        _params(
            cache,
            "prov.yaml",
            detect={"backend": "grounding_dino", "weights_dir": str(base)},
            adapt={"enabled": True, "out_dir": str(cache / "prov_adapt")},
            segment={"mode": "sam", "sam_checkpoint": "sam_vit_b"},
        )
    )
    rec = provenance(cfg, [], categories=[CAT])
    w = {e["setting"]: e for e in rec["weights"]}
    assert [e["role"] for e in rec["weights"]] == ["detector", f"adapted detector ({CAT})", "SAM (vit_b)"]
    assert w["detect.weights_dir"]["path"] == str(base) and w["detect.weights_dir"]["digest"] == dir_digest(base)
    assert w["adapt.out_dir"]["path"] == str(adapted) and w["adapt.out_dir"]["digest"] == dir_digest(adapted)
    assert w["adapt.out_dir"]["base_digest"] == dir_digest(base)
    sam = w["segment.sam_checkpoint"]
    assert sam["spec"] == "sam_vit_b" and sam["path"] == str(hub / "sam_vit_b_01ec64.pth") and sam["source"] == "torch_hub"
    assert sam["digest"] == file_digest(hub / "sam_vit_b_01ec64.pth") != "<missing>"
    assert json.loads(json.dumps(rec)) == rec and describe(rec)  # JSON-ready, and the one-line summary still works
    # the demo's simulated backends load no weights: no list at all
    assert "weights" not in provenance(load_config(_params(cache, "sim.yaml")), [])


def test_detect_records_the_digest_of_the_weights_behind_its_boxes(cache, run):
    base = save_tiny_gdino(cache / "rec_base", PARTS, image_size=96)  # the processor resizes: 64 px leaves a 1x1 level
    p = _params(
        cache, "rec.yaml", detect={"backend": "grounding_dino", "weights_dir": str(base), "score_threshold": 0.0, "max_per_view": 5}
    )
    shutil.copytree(cache / "cache", cache / "rec_cache")  # a copy: the module's cache keeps its oracle boxes
    run(["detect", "--params", p, "--cache", cache / "rec_cache"])
    det = CategoryStore(cache / "rec_cache", "detect", CAT)
    for oid in det.object_ids():
        assert det.attrs(oid)["weights"] == {"spec": str(base), "digest": dir_digest(base)}
