"""Multi-view point rendering (SPEC §2.3): RGB image, pixel → point map and depth per view.

Two interchangeable backends draw the same cameras:

* ``"numpy"``: the z-buffer splat of :mod:`splat_numpy`; runs everywhere. Its default
  footprint is the PyTorch3D disc (pixel centres within ``radius_px``), i.e. parity with
  the official renderer.
* ``"pyrender"``: OpenGL points (:mod:`render_gl`), drawn as odd-sized squares. Its numpy
  twin is ``backend="numpy", footprint="square"``: on the same cloud the two agree on
  >= 99 % of the common foreground pixels (the rest are float32-vs-float64 projections
  landing on the other side of a pixel border and near-equal depths); tests check it.

``backend="auto"`` takes pyrender when an offscreen GL context exists, else numpy (with a
warning). Because the two footprints differ (square 5×5 = 25 px vs disc ≈ 12.6 px at the
paper's 2 px radius), ``footprint=None`` means the backend's own footprint; a stage that
needs machine-independent results should pin ``backend`` (and the fingerprint should
include ``RenderResult.backend`` and ``footprint``).

The RGB of a pixel is the colour of its winning point, white (255) for background
(PartSLIP's NormWeightedCompositor with K = 1); depth is the winner's camera z, 0 for
background.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from pipeline.cameras import Cameras, project
from pipeline.render.splat_numpy import FOOTPRINTS, splat_views

log = logging.getLogger(__name__)

BACKENDS = ("auto", "numpy", "pyrender")

#: Point radius of the official renderer in NDC units (SPEC §2.3); 2 px at 800 px.
RADIUS_NDC = 0.005


@dataclass(frozen=True)
class RenderResult:
    """Rendered views. ``rgb`` (V,H,W,3) u8 white background; ``pix2pt`` (V,H,W) i32 -1
    background; ``depth`` (V,H,W) f32 0 background; ``backend`` and ``footprint`` used."""

    rgb: np.ndarray
    pix2pt: np.ndarray
    depth: np.ndarray
    backend: str
    footprint: str


def default_radius_px(image_size: tuple[int, int]) -> float:
    """0.005 NDC in pixels: NDC spans the shorter image side over 2 units (PyTorch3D)."""
    return RADIUS_NDC * min(int(image_size[0]), int(image_size[1])) / 2.0


def colours_from_pix2pt(pix2pt: np.ndarray, rgb: np.ndarray | None) -> np.ndarray:
    """(…,3) uint8 image: the winner's colour (black if ``rgb`` is None), white where
    pix2pt == -1. One gather from an RGBA table viewed as uint32; the table's last row is
    white, which is exactly what index -1 picks."""
    if rgb is None:
        grey = np.where(pix2pt >= 0, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    n = len(rgb)
    table = np.zeros((n + 1, 4), dtype=np.uint8)
    table[:n, :3] = rgb
    table[n, :3] = 255
    packed = table.view(np.uint32)[:, 0][pix2pt]
    return np.ascontiguousarray(packed.view(np.uint8).reshape(pix2pt.shape + (4,))[..., :3])


def depth_from_pix2pt(pix2pt: np.ndarray, z: np.ndarray) -> np.ndarray:
    """(V,H,W) float32 depth of each pixel's winner (z (V,N)), 0 for background."""
    depth = np.zeros(pix2pt.shape, dtype=np.float32)
    for v in range(pix2pt.shape[0]):
        fg = pix2pt[v] >= 0
        depth[v][fg] = z[v][pix2pt[v][fg]]
    return depth


def _resolve_backend(backend: str, footprint: str | None) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if footprint is not None and footprint not in FOOTPRINTS:
        raise ValueError(f"footprint must be one of {FOOTPRINTS} or None, got {footprint!r}")
    if backend == "pyrender" and footprint == "disc":
        raise ValueError("the pyrender backend draws square points; use footprint='square' or None")
    if backend == "auto":
        if footprint == "disc":
            return "numpy"
        from pipeline.render.gl_setup import gl_available, gl_error

        if gl_available():
            return "pyrender"
        log.warning("offscreen OpenGL unavailable (%s); rendering with the numpy splat", gl_error())
        return "numpy"
    return backend


def render_views(
    xyz: np.ndarray,
    rgb: np.ndarray | None,
    cameras: Cameras,
    radius_px: float | None = None,
    backend: str = "auto",
    footprint: str | None = None,
    color_pass: bool = False,
) -> RenderResult:
    """Render an (N,3) cloud with (N,3) uint8 colours from every camera.

    ``radius_px`` defaults to 0.005 NDC (2 px at 800 px). ``footprint`` None = the
    backend's own ("disc" for numpy, "square" for pyrender). ``color_pass`` (pyrender only)
    draws the colours in a second GL pass instead of looking them up from ``pix2pt``.
    Empty clouds give all-background images; points behind the camera are culled.
    """
    xyz = np.asarray(xyz, dtype=np.float32).reshape(-1, 3)
    if rgb is not None:
        rgb = np.asarray(rgb)
        if rgb.shape != xyz.shape:
            raise ValueError(f"rgb shape {rgb.shape} does not match xyz shape {xyz.shape}")
        if rgb.dtype != np.uint8:
            raise ValueError(f"rgb must be uint8, got {rgb.dtype}")
    h, w = cameras.image_size
    r = default_radius_px((h, w)) if radius_px is None else float(radius_px)
    if r < 0:
        raise ValueError(f"radius_px must be >= 0, got {r}")
    used = _resolve_backend(backend, footprint)
    uv, z = project(cameras, xyz)

    if used == "numpy":
        fp = footprint or "disc"
        pix2pt = splat_views(uv, z, (h, w), r, fp)
        image = colours_from_pix2pt(pix2pt, rgb)
    else:
        from pipeline.render.render_gl import render_ids_gl

        fp = "square"
        pix2pt, colour = render_ids_gl(xyz, cameras, r, rgb=rgb, color_pass=color_pass, z=z)
        image = colour if colour is not None else colours_from_pix2pt(pix2pt, rgb)
    return RenderResult(rgb=image, pix2pt=pix2pt, depth=depth_from_pix2pt(pix2pt, z), backend=used, footprint=fp)
