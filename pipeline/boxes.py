"""Axis-aligned xyxy box geometry: the one implementation of box IoU used everywhere.

Used by lifting (SPEC §7.1 box IoU gate), the PartSLIP baseline, the simulated detectors and
SAMs and non-maximum suppression; :func:`box_pixel_ranges` says which pixels a box covers. Areas are continuous (``x1 - x0``, no +1 pixel convention, as in the
official code); a pair whose union is 0 (two degenerate boxes) has IoU 0.
"""

from __future__ import annotations

import numpy as np


def box_area(b: np.ndarray) -> np.ndarray:
    """Area of xyxy boxes (``...``, 4) -> (``...``); inverted boxes have area 0."""
    return np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise IoU of xyxy boxes ``a`` and ``b`` (numpy broadcasting over leading axes)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    union = box_area(a) + box_area(b) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def box_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of two lists of xyxy boxes."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    return box_iou(a[:, None, :], b[None, :, :])


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
