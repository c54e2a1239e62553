"""The detector registry (``detect.backend``): boxes, labels, scores and features per view.

Adding a detector = one class below (or its own module when it is big, like
:mod:`stages.backends.grounding_dino`) + one ``DETECTORS.register`` line; its config section,
if any, goes into ``DetectConfig`` (stages/config.py), which accepts every registered name.
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import BadInputError
from pipeline.meta import part_names
from stages.backends.base import Backend, Registry
from stages.backends.grounding_dino import GroundingDino
from stages.helpers import object_seed


def _needs_labels(ctx: Any, object_id: str, what: str) -> None:
    """The simulated detectors read the ground truth: an unlabelled shape fails (per object)."""
    ing = ctx.store("ingest")
    if not ing.attrs(object_id).get("labelled", True):
        raise BadInputError(
            f"{what} and this object has none; use detect.backend: grounding_dino for unlabelled shapes", object_id=object_id, path=ing.url
        )


class OracleDetector(Backend):
    name = "oracle"
    simulated = True
    description = "detector (oracle: simulated from ground truth)"
    config_section = "oracle"  # shared: the pixels detector reuses its proposal knobs

    def describe(self, cfg: Any) -> str:
        return "oracle (simulated from ground truth; needs labelled shapes)"

    def work(self, ctx: Any, object_id: str) -> tuple[Any, dict[str, Any]]:
        from pipeline.detect.oracle import OracleDetectorParams, oracle_detect

        sec = ctx.config.detect
        _needs_labels(ctx, object_id, "the oracle (simulated) detector needs ground-truth labels")
        ing = ctx.store("ingest")
        sem, ins = ing.read(object_id, "sem"), ing.read(object_id, "ins")
        pix2pt = ctx.store("render").read(object_id, "pix2pt")
        knobs = {
            **sec.oracle.model_dump(),
            "score_threshold": sec.score_threshold,
            "feat_dim": sec.feat_dim,
            "max_per_view": sec.max_per_view,
        }
        knobs["fp_size"] = tuple(knobs["fp_size"])
        det, _diagnostics = oracle_detect(
            pix2pt, sem, ins, part_names(ctx.category), OracleDetectorParams(**knobs), seed=object_seed(sec.seed, object_id)
        )
        return det, {}


class PixelsDetector(Backend):
    name = "pixels"
    simulated = True
    description = (
        "detector (pixels: simulated from rendered pixels; boxes placed from ground truth, "
        "labels and scores from a classifier fitted on the few-shot renders)"
    )
    config_section = "pixels"
    private_section = True

    def describe(self, cfg: Any) -> str:
        return "pixels (simulated from rendered pixels; boxes placed from ground truth: needs labelled and few-shot shapes)"

    def key_extra(self, ctx: Any, current: Any) -> dict[str, Any]:
        """Its classifier is fitted on the few-shot objects' renders: their keys enter every detect key."""
        from stages.pixel_fewshot import fewshot_key

        return fewshot_key(ctx.cache, ctx.category, current)

    def work(self, ctx: Any, object_id: str) -> tuple[Any, dict[str, Any]]:
        from pipeline.detect.pixel_sim import pixel_detect
        from stages.pixel_fewshot import detector_params, fewshot_classifier

        sec = ctx.config.detect
        _needs_labels(ctx, object_id, "the pixels (simulated) detector places its boxes from ground-truth parts")
        ing = ctx.store("ingest")
        clf, record = fewshot_classifier(ctx, object_id)
        proposal, pixels = detector_params(ctx.config)
        r = ctx.store("render").read_all(object_id, ["rgb", "depth", "pix2pt"])
        det = pixel_detect(
            r["rgb"],
            r["depth"],
            r["pix2pt"],
            ing.read(object_id, "sem"),
            ing.read(object_id, "ins"),
            part_names(ctx.category),
            clf,
            proposal,
            pixels,
            seed=object_seed(sec.seed, object_id),
            score_threshold=sec.score_threshold,
        )
        return det, record


class ImportDetector(Backend):
    """Boxes of the original PartSTAD preprocessing, written by ``partstad import-partstad``."""

    name = "import"
    description = "import (original PartSTAD preprocessing)"
    computed = False

    def preflight(self, cfg: Any, device: str) -> None:
        from stages.common import ParamsError

        raise ParamsError(
            "detect.backend: 'import' results are written by `partstad import-partstad`; `partstad detect` would overwrite them"
        )

    def work(self, ctx: Any, object_id: str) -> tuple[Any, dict[str, Any]]:
        raise BadInputError(
            "detect.backend 'import' is filled by `partstad import-partstad`, not by `partstad detect`", object_id=object_id
        )


DETECTORS: Registry[Backend] = Registry("detector", "detect.backend")
DETECTORS.register(OracleDetector())
DETECTORS.register(PixelsDetector())
DETECTORS.register(GroundingDino())
DETECTORS.register(ImportDetector())


def detector(cfg: Any) -> Backend:
    """The configured detector (``detect.backend``)."""
    return DETECTORS.get(cfg.detect.backend)
