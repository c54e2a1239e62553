"""Seeded, area-weighted surface sampling of triangle soups.

Shared by the synthetic generator and the mesh fallback of the PartNet-Mobility reader.
Written directly on numpy (not `trimesh.sample`) so that the result depends only on the
`numpy.random.Generator` passed in and on the triangles, and returns barycentric
coordinates for interpolating UVs or other per-vertex attributes.
"""

from __future__ import annotations

import numpy as np


def barycentric_combine(bary: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Σ_k bary[n,k]·corners[n,k,:] with products and sums as separate steps, so the result
    is the same on every CPU (einsum may fuse multiply-adds; see pipeline/portable.py)."""
    bary = np.asarray(bary, dtype=np.float64)
    corners = np.asarray(corners, dtype=np.float64)
    out = bary[:, 0, None] * corners[:, 0]
    for k in range(1, bary.shape[1]):
        out = out + bary[:, k, None] * corners[:, k]
    return out


def triangle_areas(tris: np.ndarray) -> np.ndarray:
    """(F,3,3) triangles -> (F,) areas."""
    tris = np.asarray(tris, dtype=np.float64)
    cr = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    return 0.5 * np.sqrt((cr * cr).sum(axis=1))


def sample_triangles(
    tris: np.ndarray,
    n: int,
    rng: np.random.Generator,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample `n` points uniformly by area (times optional per-face `weights`).

    Returns (points (n,3) float64, face index (n,) int64, barycentric (n,3) float64).
    Raises ValueError when the total (weighted) area is zero.
    """
    tris = np.asarray(tris, dtype=np.float64)
    w = triangle_areas(tris)
    if weights is not None:
        w = w * np.asarray(weights, dtype=np.float64)
    w = np.where(np.isfinite(w) & (w > 0), w, 0.0)
    total = w.sum()
    if n <= 0:
        return np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros((0, 3))
    if not total > 0:
        raise ValueError("cannot sample a surface of zero area")
    cdf = np.cumsum(w)
    cdf /= cdf[-1]
    face = np.searchsorted(cdf, rng.random(n), side="right")
    face = np.minimum(face, len(w) - 1)
    r1 = np.sqrt(rng.random(n))
    r2 = rng.random(n)
    bary = np.stack([1.0 - r1, r1 * (1.0 - r2), r1 * r2], axis=1)
    pts = barycentric_combine(bary, tris[face])
    return pts, face.astype(np.int64), bary
