"""The masker registry (``segment.mode``): one (H,W) mask per detected box.

Adding a masker = one class below (or its own module when it is big, like
:mod:`stages.backends.sam`) + one ``MASKERS.register`` line. ``work(ctx, object_id, det)``
gets the object's Detections and returns ((B,H,W) masks, extra attrs); extra arrays to store
go under the attrs' ``"arrays"`` entry.
"""

from __future__ import annotations

from typing import Any

from stages.backends.base import Masker, Registry
from stages.backends.sam import Sam
from stages.helpers import object_seed


class OracleMasker(Masker):
    name = "oracle"
    simulated = True
    description = "SAM (oracle: simulated from ground truth)"

    def describe(self, cfg: Any) -> str:
        return "oracle (simulated from ground truth)"

    def work(self, ctx: Any, object_id: str, det: Any = None) -> tuple[Any, dict[str, Any]]:
        from pipeline.segment.oracle import OracleMaskParams, oracle_masks

        sec = ctx.config.segment
        ing = ctx.store("ingest")
        pix2pt = ctx.store("render").read(object_id, "pix2pt")
        return oracle_masks(
            det,
            pix2pt,
            ing.read(object_id, "sem"),
            ing.read(object_id, "ins"),
            OracleMaskParams(boundary_noise=sec.boundary_noise),
            seed=object_seed(sec.seed, object_id),
        ), {}


class PixelsMasker(Masker):
    name = "pixels"
    simulated = True
    description = "SAM (pixels: simulated from rendered pixels)"
    config_section = "pixels"
    private_section = True

    def describe(self, cfg: Any) -> str:
        return "pixels (simulated from rendered pixels)"

    def work(self, ctx: Any, object_id: str, det: Any = None) -> tuple[Any, dict[str, Any]]:
        from pipeline.segment.pixel_sam import PixelSamParams, pixel_masks

        r = ctx.store("render").read_all(object_id, ["rgb", "depth"])
        return pixel_masks(det, r["rgb"], r["depth"], PixelSamParams(**ctx.config.segment.pixels.model_dump())), {}


class BoxMasker(Masker):
    """The box rectangle itself (the PartSLIP case)."""

    name = "box"
    description = "box (rectangles)"

    def work(self, ctx: Any, object_id: str, det: Any = None) -> tuple[Any, dict[str, Any]]:
        from pipeline.segment.box import box_masks

        H, W = ctx.store("render").array(object_id, "pix2pt").shape[1:]
        return box_masks(det, H, W), {}


MASKERS: Registry[Masker] = Registry("masker", "segment.mode")
MASKERS.register(OracleMasker())
MASKERS.register(PixelsMasker())
MASKERS.register(Sam())
MASKERS.register(BoxMasker())


def masker(cfg: Any) -> Masker:
    """The configured masker (``segment.mode``)."""
    return MASKERS.get(cfg.segment.mode)
