"""Rectangle masks from boxes (the PartSLIP case: no SAM, the box itself is the mask)."""
from __future__ import annotations

import numpy as np

from pipeline.detect.types import Detections


def box_pixel_ranges(xyxy: np.ndarray, height: int, width: int) -> np.ndarray:
    """(B,4) int64 [r0, r1, c0, c1) of the pixels whose centre (c+0.5, r+0.5) lies in the box.

    Edges are inclusive: a centre exactly on the box border is inside. Clipped to the image;
    an empty range (r0 >= r1 or c0 >= c1) means no pixel.
    """
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    c0 = np.ceil(b[:, 0] - 0.5)
    c1 = np.floor(b[:, 2] - 0.5) + 1
    r0 = np.ceil(b[:, 1] - 0.5)
    r1 = np.floor(b[:, 3] - 0.5) + 1
    out = np.stack([r0, r1, c0, c1], 1)
    out[:, :2] = np.clip(out[:, :2], 0, height)
    out[:, 2:] = np.clip(out[:, 2:], 0, width)
    return out.astype(np.int64)


def box_masks(det: Detections, height: int, width: int) -> np.ndarray:
    """(B,H,W) bool: pixel centre inside box b."""
    rng = box_pixel_ranges(det.xyxy, height, width)
    masks = np.zeros((len(det), height, width), dtype=bool)
    for b, (r0, r1, c0, c1) in enumerate(rng):
        masks[b, r0:r1, c0:c1] = True
    return masks


class BoxMasker:
    """Masker interface twin of :class:`pipeline.segment.sam.SamMasker` for rectangle masks."""

    simulated = False

    def masks_for_object(self, images: np.ndarray, det: Detections, embeddings=None):
        """images (V,H,W,3) -> (masks (B,H,W) bool, {}) (no embeddings to cache)."""
        _, H, W = np.shape(images)[:3]
        return box_masks(det, H, W), {}
