"""Point visibility per view (SPEC §2.3): a point is visible in a view iff it wins at least
one pixel of that view's ``pix2pt`` map.

The official code takes ``np.unique(pc_idx[v])[1:]``, assuming a background pixel exists;
when a view has none it silently drops point 0 (SPEC §11.16). Here background (-1) is
excluded explicitly, so the result is right either way.
"""

from __future__ import annotations

import numpy as np

from pipeline.cameras import Cameras, project


def visible_points(pix2pt: np.ndarray, n_points: int) -> np.ndarray:
    """(V,N) bool: point p owns >= 1 pixel in view v. ``pix2pt`` (V,H,W) int, -1 = background.

    One bincount over all views at once (ids offset by v·N). Raises ValueError on ids
    outside [-1, n_points).
    """
    pix = np.asarray(pix2pt)
    if pix.ndim != 3:
        raise ValueError(f"pix2pt must be (V,H,W), got shape {pix.shape}")
    v = pix.shape[0]
    n = int(n_points)
    if n < 0:
        raise ValueError(f"n_points must be >= 0, got {n_points}")
    flat = pix.reshape(v, -1)
    fg = flat >= 0
    if flat.size and (flat.max() >= n or flat.min() < -1):
        raise ValueError(f"pix2pt holds ids outside [-1, {n})")
    if n == 0:
        return np.zeros((v, 0), dtype=bool)
    ids = (flat.astype(np.int64) + (np.arange(v, dtype=np.int64) * n)[:, None])[fg]
    return (np.bincount(ids, minlength=v * n) > 0).reshape(v, n)


def point_pixels(cameras: Cameras, xyz: np.ndarray) -> np.ndarray:
    """(V,N,2) float32 pixel coordinates (column, row) of every point, occluded or not
    (SPEC §2.3 ``screen_coords``); NaN for points behind the camera."""
    uv, _ = project(cameras, xyz)
    return uv
