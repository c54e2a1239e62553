"""`partstad detect` / `segment` with the simulators that see only pixels (backend/mode `pixels`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stages.config import ConfigError, parse_config
from stages.provenance import DETECTOR_PIXELS, SAM_PIXELS, SHAPES, object_components
from stages.store import CategoryStore

PIXELS = {"detect": {"backend": "pixels", "pixels": {"steps": 60, "hidden": 64}}, "segment": {"mode": "pixels"}}


def _chain(run, params: Path, cache: Path, stages=("ingest", "render", "detect", "segment"), extra=()):
    out = {}
    for stage in stages:
        out[stage] = run([stage, "--params", params, "--cache", cache, *extra]).output
    return out


@pytest.fixture(scope="module")
def pixels_run(tmp_path_factory, run, write_params):
    d = tmp_path_factory.mktemp("pixels")
    params = write_params(d, **PIXELS)
    logs = _chain(run, params, d / "cache")
    return d, params, logs


def test_detect_and_segment_write_simulated_pixels_results(pixels_run):
    d, _, logs = pixels_run
    assert "[detect] Chair: 5 computed" in logs["detect"] and "[segment] Chair: 5 computed" in logs["segment"]
    det, seg = CategoryStore(d / "cache", "detect", "Chair"), CategoryStore(d / "cache", "segment", "Chair")
    digests = set()
    for i in range(5):
        oid = f"Chair/{i:04d}"
        a = det.attrs(oid)
        assert a["backend"] == "pixels" and a["simulated"] is True and a["fewshot_objects"] == 2
        digests.add(a["classifier_digest"])
        arr = det.read_all(oid, ["xyxy", "label", "score", "feat", "offsets"])
        assert arr["feat"].shape == (arr["xyxy"].shape[0], 256) and arr["feat"].dtype == np.float16
        assert (arr["score"] > 0.5).all() and ((arr["label"] >= 0) & (arr["label"] < 5)).all()
        s = seg.attrs(oid)
        assert s["mode"] == "pixels" and s["simulated"] is True
        mask = seg.read(oid, "mask")
        assert mask.shape == (arr["xyxy"].shape[0], 96, 96) and mask.any()
        assert object_components(str(d / "cache"), "Chair", oid) == [SHAPES, DETECTOR_PIXELS, SAM_PIXELS]
    assert len(digests) == 1  # one classifier per category


def test_rerun_is_up_to_date(pixels_run, run):
    d, params, _ = pixels_run
    logs = _chain(run, params, d / "cache", stages=("detect", "segment"))
    assert "0 computed, 5 up to date" in logs["detect"] and "0 computed, 5 up to date" in logs["segment"]


def test_another_fewshot_set_reruns_pixels_detect_but_not_oracle(tmp_path, run, write_params):
    """The fitted classifier enters every detect key: other few-shot shapes, other detections."""
    cache = tmp_path / "cache"
    pix = write_params(tmp_path, name="pix.yaml", **PIXELS)
    orc = write_params(tmp_path, name="orc.yaml")
    _chain(run, pix, cache, stages=("ingest", "render", "detect"))
    before = CategoryStore(cache, "detect", "Chair").attrs("Chair/0004")["classifier_digest"]
    _chain(run, orc, tmp_path / "cache_oracle", stages=("ingest", "render", "detect"))
    # three few-shot shapes instead of two (data.n_fewshot selects objects: it is not in any key)
    pix3 = write_params(tmp_path, name="pix3.yaml", data={"n_fewshot": 3, "n_val": 0}, **PIXELS)
    orc3 = write_params(tmp_path, name="orc3.yaml", data={"n_fewshot": 3, "n_val": 0})
    logs = _chain(run, pix3, cache, stages=("ingest", "detect"))
    assert "0 computed, 5 up to date" in logs["ingest"] and "[detect] Chair: 5 computed" in logs["detect"]
    after = CategoryStore(cache, "detect", "Chair").attrs("Chair/0004")
    assert after["fewshot_objects"] == 3 and after["classifier_digest"] != before
    logs = _chain(run, orc3, tmp_path / "cache_oracle", stages=("ingest", "detect"))
    assert "0 computed, 5 up to date" in logs["detect"]


def test_pixels_detect_needs_the_fewshot_renders(tmp_path, run, run_failing, write_params):
    params = write_params(tmp_path, **PIXELS)
    cache = tmp_path / "cache"
    run(["ingest", "--params", params, "--cache", cache])
    run(["render", "--params", params, "--cache", cache, "--objects", "0003,0004"])
    res = run_failing(["detect", "--params", params, "--cache", cache, "--objects", "0003"])
    assert "few-shot object Chair/0000 is not ready" in res.output and "partstad render" in res.output


def test_config_knows_the_pixels_backends():
    cfg = parse_config({"detect": {"backend": "pixels", "pixels": {"hidden": 0}}, "segment": {"mode": "pixels", "pixels": {"inside": 0.7}}})
    assert cfg.detect.backend == "pixels" and cfg.detect.pixels.hidden == 0 and cfg.segment.pixels.inside == 0.7
    with pytest.raises(ConfigError, match="detect.backend"):
        parse_config({"detect": {"backend": "pixel"}})
    with pytest.raises(ConfigError, match="segment.pixels.inside"):
        parse_config({"segment": {"pixels": {"inside": 0}}})
    with pytest.raises(ConfigError, match="detect.pixels.nope"):
        parse_config({"detect": {"pixels": {"nope": 1}}})


def test_doctor_names_the_pixels_simulators(tmp_path, invoke, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = invoke(["doctor", "--no-load", "-S", "detect.backend=pixels", "-S", "segment.mode=pixels"])
    assert res.exit_code == 0, res.output
    assert "detect backend         pixels (simulated from rendered pixels" in res.output
    assert "segment mode           pixels (simulated from rendered pixels)" in res.output
