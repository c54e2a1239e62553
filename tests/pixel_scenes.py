"""Rendered synthetic shapes for the pixels-simulator tests (ingest + render at array level)."""

from __future__ import annotations

from functools import cache

import numpy as np

from pipeline.cameras import make_cameras
from pipeline.data.synthetic import generate_shape
from pipeline.render.render import render_views

VIEWS = [(10, 0), (10, 90), (40, 120), (-20, 300)]


@cache
def rendered(category: str, index: int, n_points: int = 4000, size: int = 128) -> tuple[np.ndarray, ...]:
    """(rgb (V,H,W,3) u8, depth (V,H,W) f32, pix2pt (V,H,W) i32, sem (N,) i16, ins (N,) i32) of a synthetic shape."""
    cloud = generate_shape(category, index, n_points=n_points, seed=0)
    cams = make_cameras(views=VIEWS, image_size=size)
    res = render_views(cloud.xyz, cloud.rgb, cams, radius_px=0.005 * size / 2.0, backend="numpy", footprint="disc")
    out = (res.rgb, res.depth.astype(np.float32), res.pix2pt.astype(np.int32), cloud.sem, cloud.ins)
    for a in out:
        a.setflags(write=False)
    return out


def permute_labels(sem: np.ndarray, perm: dict[int, int]) -> np.ndarray:
    """``sem`` with part labels renamed by ``perm`` (labels not in it and -1 kept)."""
    out = np.array(sem, copy=True)
    for a, b in perm.items():
        out[np.asarray(sem) == a] = b
    return out
