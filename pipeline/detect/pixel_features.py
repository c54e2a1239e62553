"""A fixed, ground-truth-free box descriptor computed from the rendered image alone.

Why: the ``pixels`` simulated detector must say what it says about a box (feature, label,
score) from what a detector sees: pixels. This module is its frozen feature extractor,
classical descriptors over the box and the ring around it:

- colour: mean and spread of the densified RGB, a 4-bin luminance histogram;
- shape: foreground fraction of the box and of its 2x2 cells, edge density and an 8-bin
  gradient-orientation histogram of the luminance (magnitude weighted);
- depth: mean and spread of the front depth (normalised over the object), per 2x2 cell;
- surround: foreground fraction, colour, depth and luminance histogram of a ring around the
  box (the box grown by ``ring`` of its size on each side, minus the box), and the box's
  colour and depth contrast with it;
- geometry: the box's size, aspect and position relative to the object's silhouette.

Nothing here reads labels or instances. Box sums come from integral images (sequential
cumulative sums), the orientation bins from cross products with fixed unit vectors (no
arctan), logs from :mod:`pipeline.portable`: the same bits on every CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline import portable as pm
from pipeline.boxes import box_pixel_ranges
from pipeline.pixels import ViewImage, sobel, view_image

N_ORIENT = 8
N_LUMA = 4
#: channels summed over boxes: fg, rgb, rgb², depth, depth², luma histogram, gradient magnitude per orientation
_CH_FG, _CH_RGB, _CH_RGB2, _CH_Z, _CH_Z2, _CH_LUMA = 0, 1, 4, 7, 8, 9
_CH_GRAD = _CH_LUMA + N_LUMA
N_CHANNELS = _CH_GRAD + N_ORIENT

#: descriptor layout (names of the columns, in order)
_NAMES: list[str] = (
    ["fg_frac", "r", "g", "b", "r_sd", "g_sd", "b_sd", "z", "z_sd"]
    + [f"luma{i}" for i in range(N_LUMA)]
    + [f"orient{i}" for i in range(N_ORIENT)]
    + ["edge_density"]
    + [f"cell{i}_fg" for i in range(4)]
    + [f"cell{i}_luma" for i in range(4)]
    + [f"cell{i}_z" for i in range(4)]
    + ["ring_fg", "ring_r", "ring_g", "ring_b", "ring_z"]
    + [f"ring_luma{i}" for i in range(N_LUMA)]
    + ["contrast_r", "contrast_g", "contrast_b", "contrast_z"]
    + ["rel_w", "rel_h", "log_aspect", "rel_cx", "rel_cy", "rel_area", "object_share"]
)
DESCRIPTOR_DIM = len(_NAMES)


def descriptor_names() -> list[str]:
    """Column names of :func:`box_descriptors` (for diagnostics and docs)."""
    return list(_NAMES)


@dataclass(frozen=True)
class PixelFeatureParams:
    """Knobs of the frozen extractor (defaults are the extractor; they enter cache keys)."""

    ring: float = 0.5
    """The surround ring is the box grown by this fraction of its width/height on each side, minus the box."""
    sigma: float | None = None
    """Smoothing width (pixels) of the densified image; None: adapted to the splat density."""


@dataclass
class ViewDescriptorMaps:
    """Integral images of one view, ready for any number of boxes."""

    height: int
    width: int
    r0: int
    c0: int
    integral: np.ndarray  # (N_CHANNELS, h+1, w+1) float64
    sil_xyxy: np.ndarray  # (4,) float64 silhouette box in full-image pixels
    n_fg: int


def _orientation_bins(gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """Unsigned gradient orientation bin 0..N_ORIENT-1 of each pixel (angle in [0, π))."""
    flip = (gy < 0) | ((gy == 0) & (gx < 0))
    x = np.where(flip, -gx, gx)
    y = np.where(flip, -gy, gy)
    k = np.arange(1, N_ORIENT, dtype=np.float64) * (np.pi / N_ORIENT)
    cs, sn = np.asarray(pm.cos(k)), np.asarray(pm.sin(k))
    out = np.zeros(gx.shape, np.int64)
    for c, s in zip(cs.tolist(), sn.tolist()):
        cross = y * c
        cross = cross - x * s
        out += cross >= 0
    return out


def view_maps(rgb: np.ndarray, depth: np.ndarray, params: PixelFeatureParams | None = None) -> ViewDescriptorMaps:
    """Integral images of the descriptor channels of one view (rgb (H,W,3) u8, depth (H,W))."""
    prm = params or PixelFeatureParams()
    H, W = np.shape(depth)
    vim: ViewImage | None = view_image(rgb, depth, sigma=prm.sigma)
    if vim is None:
        return ViewDescriptorMaps(H, W, 0, 0, np.zeros((N_CHANNELS, 1, 1)), np.zeros(4), 0)
    fg = vim.fg
    fgf = fg.astype(np.float64)
    h, w = fg.shape
    ch = np.zeros((N_CHANNELS, h, w))
    ch[_CH_FG] = fgf
    raw = np.asarray(rgb[vim.r0 : vim.r0 + h, vim.c0 : vim.c0 + w], np.float64) / 255.0
    for c in range(3):
        v = raw[..., c] * fgf
        ch[_CH_RGB + c] = v
        ch[_CH_RGB2 + c] = v * v
    zfg = np.where(fg, vim.depth, 0.0)
    ch[_CH_Z] = zfg
    ch[_CH_Z2] = zfg * zfg
    lum = raw[..., 0] * 0.299 + raw[..., 1] * 0.587
    lum = lum + raw[..., 2] * 0.114
    lbin = np.minimum((lum * N_LUMA).astype(np.int64), N_LUMA - 1)
    for i in range(N_LUMA):
        ch[_CH_LUMA + i] = fgf * (lbin == i)
    gx, gy = sobel(vim.luma)
    gx = np.where(vim.support, gx, 0.0)
    gy = np.where(vim.support, gy, 0.0)
    mag = np.sqrt(gx * gx + gy * gy)
    ob = _orientation_bins(gx, gy)
    for i in range(N_ORIENT):
        ch[_CH_GRAD + i] = np.where(ob == i, mag, 0.0)
    integral = np.zeros((N_CHANNELS, h + 1, w + 1))
    integral[:, 1:, 1:] = ch.cumsum(axis=1).cumsum(axis=2)
    rows, cols = np.flatnonzero(fg.any(1)), np.flatnonzero(fg.any(0))
    sil = np.array([cols[0] + vim.c0, rows[0] + vim.r0, cols[-1] + 1 + vim.c0, rows[-1] + 1 + vim.r0], np.float64)
    return ViewDescriptorMaps(H, W, vim.r0, vim.c0, integral, sil, int(fg.sum()))


def _ranges(xyxy: np.ndarray, H: int, W: int) -> np.ndarray:
    """(B,4) int64 [r0, r1, c0, c1) of the pixels whose centre lies in each box (edges inclusive)."""
    return box_pixel_ranges(xyxy, H, W)


def _sums(maps: ViewDescriptorMaps, rng: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, N_CHANNELS) channel sums and (B,) pixel counts over pixel ranges [r0,r1,c0,c1)."""
    n_pix = (np.maximum(rng[:, 1] - rng[:, 0], 0) * np.maximum(rng[:, 3] - rng[:, 2], 0)).astype(np.float64)
    _, hp, wp = maps.integral.shape
    r0 = np.clip(rng[:, 0] - maps.r0, 0, hp - 1)
    r1 = np.clip(rng[:, 1] - maps.r0, 0, hp - 1)
    c0 = np.clip(rng[:, 2] - maps.c0, 0, wp - 1)
    c1 = np.clip(rng[:, 3] - maps.c0, 0, wp - 1)
    r1, c1 = np.maximum(r1, r0), np.maximum(c1, c0)
    integral = maps.integral
    s = integral[:, r1, c1] - integral[:, r0, c1]
    s = s - integral[:, r1, c0]
    s = s + integral[:, r0, c0]
    return s.T, n_pix


def _stats(s: np.ndarray, n_pix: np.ndarray) -> dict[str, np.ndarray]:
    fg = s[:, _CH_FG]
    inv = 1.0 / np.maximum(fg, 1.0)
    mean = s[:, _CH_RGB : _CH_RGB + 3] * inv[:, None]
    var = s[:, _CH_RGB2 : _CH_RGB2 + 3] * inv[:, None] - mean * mean
    z = s[:, _CH_Z] * inv
    zvar = s[:, _CH_Z2] * inv - z * z
    return {
        "fg": fg,
        "fg_frac": fg / np.maximum(n_pix, 1.0),
        "rgb": mean,
        "rgb_sd": np.sqrt(np.maximum(var, 0.0)),
        "z": z,
        "z_sd": np.sqrt(np.maximum(zvar, 0.0)),
        "luma": s[:, _CH_LUMA : _CH_LUMA + N_LUMA] * inv[:, None],
        "grad": s[:, _CH_GRAD : _CH_GRAD + N_ORIENT],
    }


def _mean_luma(rgb: np.ndarray) -> np.ndarray:
    out = rgb[:, 0] * 0.299 + rgb[:, 1] * 0.587
    return out + rgb[:, 2] * 0.114


def box_descriptors(maps: ViewDescriptorMaps, xyxy: np.ndarray, params: PixelFeatureParams | None = None) -> np.ndarray:
    """(B, DESCRIPTOR_DIM) float64 descriptors of boxes ``xyxy`` (B,4) in one view."""
    prm = params or PixelFeatureParams()
    b = np.asarray(xyxy, np.float64).reshape(-1, 4)
    B = b.shape[0]
    out = np.zeros((B, DESCRIPTOR_DIM))
    if B == 0 or maps.n_fg == 0:
        return out
    H, W = maps.height, maps.width
    rng = _ranges(b, H, W)
    s, n = _sums(maps, rng)
    box = _stats(s, n)
    # 2x2 cells: split the pixel ranges at their middles
    rm = (rng[:, 0] + rng[:, 1]) // 2
    cm = (rng[:, 2] + rng[:, 3]) // 2
    cells = []
    for ra, rb in ((rng[:, 0], rm), (rm, rng[:, 1])):
        for ca, cb in ((rng[:, 2], cm), (cm, rng[:, 3])):
            cs, cn = _sums(maps, np.stack([ra, rb, ca, cb], 1))
            cells.append(_stats(cs, cn))
    # ring: grown box minus box
    bw, bh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    grown = np.stack([b[:, 0] - prm.ring * bw, b[:, 1] - prm.ring * bh, b[:, 2] + prm.ring * bw, b[:, 3] + prm.ring * bh], 1)
    gs, gn = _sums(maps, _ranges(grown, H, W))
    ring = _stats(gs - s, np.maximum(gn - n, 0.0))
    grad = box["grad"]
    gsum = grad.sum(1)
    cols: list[np.ndarray] = [
        box["fg_frac"][:, None],
        box["rgb"],
        box["rgb_sd"],
        box["z"][:, None],
        box["z_sd"][:, None],
        box["luma"],
        grad / np.maximum(gsum, 1e-12)[:, None],
        (gsum / np.maximum(box["fg"], 1.0))[:, None],
        np.stack([c["fg_frac"] for c in cells], 1),
        np.stack([_mean_luma(c["rgb"]) for c in cells], 1),
        np.stack([c["z"] for c in cells], 1),
        ring["fg_frac"][:, None],
        ring["rgb"],
        ring["z"][:, None],
        ring["luma"],
        box["rgb"] - ring["rgb"],
        (box["z"] - ring["z"])[:, None],
    ]
    sx0, sy0, sx1, sy1 = maps.sil_xyxy
    sw, sh = max(sx1 - sx0, 1.0), max(sy1 - sy0, 1.0)
    w = np.maximum(bw, 1e-3)
    h = np.maximum(bh, 1e-3)
    geo = np.stack(
        [
            bw / sw,
            bh / sh,
            np.asarray(pm.log(w / h)),
            ((b[:, 0] + b[:, 2]) * 0.5 - sx0) / sw,
            ((b[:, 1] + b[:, 3]) * 0.5 - sy0) / sh,
            (bw * bh) / (sw * sh),
            box["fg"] / max(maps.n_fg, 1),
        ],
        1,
    )
    cols.append(geo)
    out = np.concatenate(cols, axis=1)
    assert out.shape[1] == DESCRIPTOR_DIM
    return out


def descriptors_for_view(rgb: np.ndarray, depth: np.ndarray, xyxy: np.ndarray, params: PixelFeatureParams | None = None) -> np.ndarray:
    """Convenience: :func:`view_maps` then :func:`box_descriptors` for one view."""
    return box_descriptors(view_maps(rgb, depth, params), xyxy, params)
