"""Backend registries (stages/backends): a new detector is one class + one register line.

The fake detector below lives only in this test: registering it makes ``detect.backend: fake``
valid, runs detect -> segment -> lift, puts its weights digest into the detect key, and doctor
and provenance describe it, with no other module edited.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stages.backends.base import Backend
from stages.backends.detectors import DETECTORS
from stages.backends.lookup import STAGE_REGISTRY, registry
from stages.backends.maskers import MASKERS
from stages.backends.sources import SOURCES
from stages.config import ConfigError, parse_config
from stages.store import CategoryStore

REPO = Path(__file__).resolve().parents[2]


class FakeDetector(Backend):
    """Two boxes per view (upper and lower half of the silhouette), labels 0 and 1; "weights" = one file."""

    name = "fake"
    simulated = True
    description = "detector (fake: halves of the silhouette, for tests)"

    def __init__(self, weights: Path):
        self.weights = weights
        self.preflights: list[str] = []

    def preflight(self, cfg: Any, device: str) -> None:
        from stages.common import ParamsError

        if not self.weights.is_file():
            raise ParamsError(f"fake detector: no weights file {self.weights}")
        self.preflights.append(device)

    def weights_key(self, cfg: Any, category: str) -> dict[str, Any]:
        from stages.sam_weights import file_digest

        return {"fake_weights": file_digest(self.weights)}

    def weights_records(self, cfg: Any, categories: list[str] | None = None) -> list[dict[str, Any]]:
        from stages.sam_weights import file_digest

        return [
            {
                "role": "fake detector",
                "setting": None,
                "spec": str(self.weights),
                "path": str(self.weights),
                "source": "local",
                "revision": None,
                "digest": file_digest(self.weights),
            }
        ]

    def work(self, ctx: Any, object_id: str) -> tuple[Any, dict[str, Any]]:
        from pipeline.detect.types import Detections

        pix2pt = ctx.store("render").read(object_id, "pix2pt")
        xyxy, view, label = [], [], []
        for v in range(pix2pt.shape[0]):
            r, c = np.nonzero(pix2pt[v] >= 0)
            if not len(r):
                continue
            x1, x2, y1, y2 = c.min(), c.max() + 1, r.min(), r.max() + 1
            ym = (y1 + y2) / 2
            xyxy += [[x1, y1, x2, ym], [x1, ym, x2, y2]]
            view += [v, v]
            label += [0, 1]
        n = len(xyxy)
        det = Detections(
            xyxy=np.asarray(xyxy, np.float32).reshape(n, 4),
            view=np.asarray(view, np.int16),
            label=np.asarray(label, np.int16),
            score=np.full(n, 0.9, np.float32),
            feat=np.ones((n, 8), np.float32),
            simulated=True,
        )
        return det, {"fake_weights": self.weights.name}


@pytest.fixture
def fake(tmp_path):
    weights = tmp_path / "fake.bin"
    weights.write_bytes(b"version 1")
    backend = DETECTORS.register(FakeDetector(weights))
    yield backend
    DETECTORS.unregister("fake")


def test_fake_detector_runs_detect_segment_lift(tmp_path, fake, run, invoke, write_params):
    params = write_params(
        tmp_path, detect={"backend": "fake"}, segment={"mode": "box"}, data={"n_points": 800, "n_fewshot": 1, "n_val": 0, "n_test": 1}
    )
    c = ["--params", params, "--cache", tmp_path / "cache"]
    for stage in ("ingest", "render", "visibility", "superpoints", "detect", "segment", "lift"):
        assert "2 computed, 0 up to date, 0 failed" in run([stage, *c]).output, stage
    assert fake.preflights == ["cpu"]  # once, before any object
    det = CategoryStore(tmp_path / "cache", "detect", "Chair")
    a = det.attrs("Chair/0000")
    assert a["backend"] == "fake" and a["simulated"] is True and a["fake_weights"] == "fake.bin"
    n = det.read("Chair/0000", "xyxy").shape[0]
    assert n > 0 and det.read("Chair/0000", "feat").shape == (n, 8)
    assert CategoryStore(tmp_path / "cache", "segment", "Chair").read("Chair/0000", "mask").shape == (n, 96, 96)
    assert CategoryStore(tmp_path / "cache", "lift", "Chair").is_complete("Chair/0000")

    # its weights digest is in the detect key: new content at the same path recomputes detect, and segment then sees it stale
    assert "0 computed, 2 up to date" in run(["detect", *c]).output
    fake.weights.write_bytes(b"version 2")
    res = invoke(["segment", *c])
    assert res.exit_code == 1 and "run `partstad detect` first" in res.output
    assert "2 computed, 0 up to date" in run(["detect", *c]).output

    # doctor and provenance describe it
    from stages.doctor import checks
    from stages.provenance import object_components, provenance

    cfg = parse_config({"detect": {"backend": "fake"}})
    rows = {name: (status, detail) for status, name, detail in checks(cfg, load=False)}
    assert rows["detect backend"] == ("ok", FakeDetector.description)
    assert FakeDetector.description in object_components(str(tmp_path / "cache"), "Chair", "Chair/0000")
    rec = provenance(cfg, [])
    assert rec["detector"]["backend"] == "fake" and rec["weights"][0]["role"] == "fake detector"


def test_missing_fake_weights_is_exit_2(tmp_path, fake, invoke, run, write_params):
    params = write_params(tmp_path, detect={"backend": "fake"}, data={"n_points": 800, "n_fewshot": 1, "n_val": 0, "n_test": 1})
    c = ["--params", params, "--cache", tmp_path / "cache"]
    run(["ingest", *c])
    fake.weights.unlink()
    res = invoke(["detect", *c])
    assert res.exit_code == 2 and "fake detector: no weights file" in res.output
    assert not (tmp_path / "cache" / "detect").exists()


def test_unregistered_backend_is_refused_by_the_config():
    with pytest.raises(ConfigError, match=r"detect.backend: Input should be one of 'oracle', 'pixels', 'grounding_dino', 'import'"):
        parse_config({"detect": {"backend": "fake"}})
    with pytest.raises(ConfigError, match="segment.mode"):
        parse_config({"segment": {"mode": "nope"}})


def test_config_names_are_the_registry_keys():
    assert DETECTORS.names() == ("oracle", "pixels", "grounding_dino", "import")
    assert MASKERS.names() == ("oracle", "pixels", "sam", "box")
    assert SOURCES.names() == ("synthetic", "partnete", "mobility", "files")
    for kind, field in (("detectors", "detect.backend"), ("maskers", "segment.mode"), ("sources", "data.source")):
        reg = registry(kind)
        assert reg.setting == field
        for name in reg.names():  # every registered name is a valid value of its setting
            section, key = field.split(".")
            assert getattr(getattr(parse_config({section: {key: name}}), section), key) == name


def test_simulated_flags_and_gpu_needs():
    assert {n for n in DETECTORS if DETECTORS[n].simulated} == {"oracle", "pixels"}
    assert {n for n in MASKERS if MASKERS[n].simulated} == {"oracle", "pixels"}
    assert {n for n in SOURCES if SOURCES[n].simulated} == {"synthetic"}
    assert [n for n in DETECTORS if DETECTORS[n].needs_gpu("cuda")] == ["grounding_dino"]
    assert [n for n in MASKERS if MASKERS[n].needs_gpu("cuda")] == ["sam"]
    assert not any(b.needs_gpu("cpu") for reg in (DETECTORS, MASKERS, SOURCES) for b in reg.values())
    assert set(STAGE_REGISTRY) == {"ingest", "detect", "segment"}


def test_no_backend_string_switches_outside_the_registries():
    """``backend ==``, ``mode ==``, ``source ==`` on the configured names belong in stages/backends."""
    pattern = re.compile(r"""(detect\.backend|segment\.mode|data\.source|sec\.backend|sec\.mode|\["source"\])\s*(==|!=|in \()\s*["'(]""")
    allowed = {"stages/predict.py", "stages/adapt_detector.py", "stages/model_check.py"}  # see CONTRIBUTING.md "Adding a backend"
    found = []
    for path in sorted([*REPO.glob("stages/*.py"), *REPO.glob("tools/*.py")]):
        rel = path.relative_to(REPO).as_posix()
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line) and rel not in allowed:
                found.append(f"{rel}:{i}: {line.strip()}")
    assert found == []
