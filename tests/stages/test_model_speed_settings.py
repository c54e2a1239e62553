"""detect/segment ``batch_size`` and ``precision``: the batch size selects work only (same keys,
same boxes), the autocast precision is a result setting (resolved per device into the keys,
and only where a real model runs); bad values exit 2 naming the key."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from stages.common import key_resolver, make_context
from stages.config import load_config
from stages.store import CategoryStore
from tests.tiny_gdino import save_tiny_gdino

CAT = "Chair"
PARTS = ["arm", "back", "leg", "seat", "wheel"]
TINY = {
    "data": {"n_fewshot": 1, "n_val": 0, "n_test": 1, "n_points": 1500},
    "render": {"image_size": 64, "views": [[10, 0], [40, 120], [20, 240]]},
}
GD = {"backend": "grounding_dino", "score_threshold": 0.0, "max_per_view": 10}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """cache: rendered and detected by a tiny Grounding DINO one view per forward; cache3: rendered only."""
    from tests.stages.conftest import run, write_params

    tmp = tmp_path_factory.mktemp("speed_settings")
    GD["weights_dir"] = str(save_tiny_gdino(tmp / "gdino", PARTS, image_size=96))  # 64 px: a 1x1 level, refused for one view
    p = write_params(tmp, **TINY)
    for stage in ("ingest", "render"):
        run([stage, "--params", p, "--cache", tmp / "cache"])
    shutil.copytree(tmp / "cache", tmp / "cache3")
    run(["detect", "--params", _params(tmp, "one.yaml", detect={**GD, "batch_size": 1}), "--cache", tmp / "cache"])
    return tmp


def _params(tmp: Path, name: str, **sections) -> Path:
    from tests.stages.conftest import write_params

    return write_params(tmp, name=name, **{**TINY, **sections})


def _key(params: Path, cache: Path, stage: str, device: str = "cpu") -> str:
    cfg = load_config(params)
    oid = CategoryStore(cache, "ingest", CAT).object_ids()[0]
    return key_resolver(make_context(stage, CAT, str(cache), cfg, device=device)).key(stage, oid)


def test_detect_batch_size_changes_neither_key_nor_boxes(rendered, invoke):
    one = rendered / "one.yaml"
    three = _params(rendered, "three.yaml", detect={**GD, "batch_size": 3})
    assert _key(one, rendered / "cache", "detect") == _key(three, rendered / "cache", "detect")
    res = invoke(["detect", "--params", three, "--cache", rendered / "cache"])
    assert res.exit_code == 0 and "0 computed, 2 up to date" in res.output, res.output  # same key: nothing to redo
    res = invoke(["detect", "--params", three, "--cache", rendered / "cache3"])
    assert res.exit_code == 0, res.output
    a, b = CategoryStore(rendered / "cache", "detect", CAT), CategoryStore(rendered / "cache3", "detect", CAT)
    ids = a.object_ids()
    assert ids == b.object_ids() and len(ids) == 2
    for oid in ids:
        np.testing.assert_array_equal(a.read(oid, "offsets"), b.read(oid, "offsets"))
        np.testing.assert_array_equal(a.read(oid, "label"), b.read(oid, "label"))
        np.testing.assert_allclose(a.read(oid, "xyxy"), b.read(oid, "xyxy"), atol=1e-3)
        np.testing.assert_allclose(a.read(oid, "score"), b.read(oid, "score"), atol=1e-5)
        assert a.read(oid, "offsets")[-1] > 0


def test_precision_enters_the_keys_resolved_and_only_for_real_models(rendered):
    cache = rendered / "cache"
    gd = GD
    k = {p: _key(_params(rendered, f"d_{p}.yaml", detect={**gd, "precision": p}), cache, "detect") for p in ("auto", "fp32", "bf16")}
    assert k["auto"] == k["fp32"] != k["bf16"]  # auto is fp32 on a CPU
    auto_cuda = _key(_params(rendered, "d_auto.yaml", detect={**gd, "precision": "auto"}), cache, "detect", device="cuda")
    bf16_cuda = _key(_params(rendered, "d_bf16.yaml", detect={**gd, "precision": "bf16"}), cache, "detect", device="cuda")
    assert auto_cuda == bf16_cuda != k["auto"]  # ... and bf16 on CUDA
    oracle = [
        _key(_params(rendered, f"o_{p}.yaml", detect={"precision": p, "batch_size": b}), cache, "detect")
        for p, b in (("fp32", 1), ("bf16", 7))
    ]
    assert oracle[0] == oracle[1]  # the simulated detector has no autocast
    seg = [
        _key(_params(rendered, f"s_{p}.yaml", detect={**GD, "batch_size": 1}, segment={"mode": "box", "precision": p}), cache, "segment")
        for p in ("fp32", "bf16")
    ]
    assert seg[0] == seg[1]  # rectangles: no model
    import torch

    from pipeline.segment.sam import build_tiny_sam

    ck = rendered / "sam.pth"
    torch.save(build_tiny_sam(img_size=64, patch_size=8).state_dict(), ck)
    sam = {
        p_b: _key(
            _params(
                rendered,
                f"sam_{p_b[0]}_{p_b[1]}.yaml",
                detect={**GD, "batch_size": 1},
                segment={"mode": "sam", "sam_checkpoint": str(ck), "precision": p_b[0], "batch_size": p_b[1]},
            ),
            cache,
            "segment",
        )
        for p_b in (("fp32", 1), ("auto", 4), ("bf16", 1))
    }
    assert sam[("fp32", 1)] == sam[("auto", 4)] != sam[("bf16", 1)]


@pytest.mark.parametrize("override", ["detect.batch_size=0", "segment.batch_size=-2", "detect.precision=half", "segment.precision=int8"])
def test_bad_speed_settings_exit_2_naming_the_key(tmp_path, invoke, write_params, override):
    params = write_params(tmp_path)
    res = invoke(["params", "--params", params, "-S", override])
    assert res.exit_code == 2, res.output
    assert override.split("=")[0] in res.output and "Traceback" not in res.output
