"""Axis-aligned xyxy box geometry: the one implementation of box IoU used everywhere.

Used by lifting (SPEC §5.3 box IoU gate), the PartSLIP baseline, the simulated detector and
non-maximum suppression. Areas are continuous (``x1 - x0``, no +1 pixel convention, as in the
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
