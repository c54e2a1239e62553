"""Rectangle masks from boxes (the PartSLIP case: no SAM, the box itself is the mask)."""

from __future__ import annotations

import numpy as np

from pipeline.boxes import box_pixel_ranges
from pipeline.detect.types import Detections

__all__ = ["box_masks", "box_pixel_ranges"]


def box_masks(det: Detections, height: int, width: int) -> np.ndarray:
    """(B,H,W) bool: pixel centre inside box b."""
    rng = box_pixel_ranges(det.xyxy, height, width)
    masks = np.zeros((len(det), height, width), dtype=bool)
    for b, (r0, r1, c0, c1) in enumerate(rng):
        masks[b, r0:r1, c0:c1] = True
    return masks
