"""Ground-truth-free image maps of one rendered view: what a model that sees only pixels sees.

Why: the ``pixels`` simulators (detector features in :mod:`pipeline.detect.pixel_features`,
SAM in :mod:`pipeline.segment.pixel_sam`) must read nothing but the rendered RGB image and
its depth. Renders of point clouds are sparse (a splat per point, background between
points) and show points of the far side through the gaps of the near one, so both first keep
the *front* points (those not well behind the nearest depth around them, a z-buffer test on
the rendered depth) and fill the surface in by normalised convolution (a Gaussian-weighted
mean of the front points around each pixel, the width adapted to how densely the points
cover the image).

Every operation is an elementwise ufunc, an integer filter or a fixed-order scipy.ndimage
correlation with a kernel from :mod:`pipeline.portable` (scipy's own ``gaussian_filter``
builds its kernel with NumPy's SIMD ``exp``), so the maps are the same bits on every x86-64
CPU (docs/reproducibility.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from pipeline import portable as pm

#: A point more than this fraction of the object's depth range behind the nearest depth around
#: it is seen through the front surface.
FRONT_TOLERANCE = 0.03
#: Rec. 601 luma weights.
_LUMA = (0.299, 0.587, 0.114)


@dataclass
class ViewImage:
    """One view cropped to its object (+ margin): densified colour, luminance, front depth."""

    r0: int  # crop origin in the full image (row, column)
    c0: int
    fg: np.ndarray  # (h,w) bool pixels with a rendered point
    front: np.ndarray  # (h,w) bool rendered points on the front surface (not seen through a sparse front)
    support: np.ndarray  # (h,w) bool pixels on the (filled-in) surface
    colour: np.ndarray  # (3,h,w) float64 densified RGB in [0,1] (defined a little beyond the support, 0 far off it)
    luma: np.ndarray  # (h,w) float64 densified luminance in [0,1]
    depth: np.ndarray  # (h,w) float64 densified front depth normalised to [0,1] over the object (like colour)
    sigma: float  # the smoothing width used (pixels)


def gaussian(a: np.ndarray, sigma: float, truncate: float = 3.0) -> np.ndarray:
    """Separable Gaussian smoothing (zero outside the image), radius round(truncate·sigma).

    Like ``scipy.ndimage.gaussian_filter(mode="constant")``, whose kernel comes from NumPy's
    SIMD ``exp`` (other last bits per CPU); here the kernel uses the portable exp and the
    correlation is scipy's fixed-order ``correlate1d``.
    """
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.asarray(pm.exp(-0.5 * (x * x) / (float(sigma) * float(sigma))))
    k = k / k.sum()
    out = ndimage.correlate1d(np.asarray(a, np.float64), k, axis=0, mode="constant", cval=0.0)
    return ndimage.correlate1d(out, k, axis=1, mode="constant", cval=0.0)


def fill_fraction(fg: np.ndarray) -> float:
    """Mean fraction of foreground pixels in the 5x5 window around each foreground pixel
    (1 for a solid render, ~0.1 for sparse single-pixel splats). Integer counts: exact."""
    fg = np.asarray(fg, bool)
    n = int(fg.sum())
    if n == 0:
        return 1.0
    counts = ndimage.correlate(fg.astype(np.int32), np.ones((5, 5), np.int32), mode="constant", cval=0)
    return float(counts[fg].sum()) / (25.0 * n)


def smoothing_sigma(fg: np.ndarray, base: float = 0.75, lo: float = 0.75, hi: float = 3.0) -> float:
    """Gaussian width that bridges the gaps between splats: base / sqrt(fill fraction), clipped."""
    return float(min(max(base / np.sqrt(max(fill_fraction(fg), 1e-6)), lo), hi))


def crop_box(fg: np.ndarray, margin: int) -> tuple[int, int, int, int] | None:
    """[r0, r1, c0, c1) of the foreground's bounding box grown by ``margin`` (None: empty view)."""
    rows = np.flatnonzero(fg.any(1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(fg.any(0))
    H, W = fg.shape
    return (
        max(int(rows[0]) - margin, 0),
        min(int(rows[-1]) + 1 + margin, H),
        max(int(cols[0]) - margin, 0),
        min(int(cols[-1]) + 1 + margin, W),
    )


def view_image(rgb: np.ndarray, depth: np.ndarray, sigma: float | None = None, margin: int = 8) -> ViewImage | None:
    """Densified maps of one view (rgb (H,W,3) uint8, depth (H,W) float, 0 = background);
    None when the view shows nothing."""
    depth = np.asarray(depth, np.float64)
    fg_full = depth > 0
    box = crop_box(fg_full, margin)
    if box is None:
        return None
    r0, r1, c0, c1 = box
    fg = fg_full[r0:r1, c0:c1]
    z = depth[r0:r1, c0:c1]
    fill = fill_fraction(fg)
    sig = smoothing_sigma(fg) if sigma is None else float(sigma)
    # front points: a point whose depth is well behind the nearest depth around it is seen
    # through the gaps of a sparse front surface (an opaque render would hide it)
    zf = z[fg]
    zmin, zmax = float(zf.min()), float(zf.max())
    # the window holds a few points of the front surface however sparse the splats are
    rad = max(int(np.ceil(2.0 / np.sqrt(max(fill, 1e-6)))), 1)
    near = ndimage.grey_erosion(np.where(fg, z, np.inf), size=(2 * rad + 1, 2 * rad + 1), mode="constant", cval=np.inf)
    front = fg & (z <= near + FRONT_TOLERANCE * max(zmax - zmin, 1e-9))
    # the surface's extent in the image: where any rendered point is near (SAM sees the points
    # behind a sparse surface as part of the region they show through)
    w_all = gaussian(fg.astype(np.float64), sig)
    # the weight of a pixel inside a surface of this density is about the fill fraction;
    # a third of it marks the surface's (slightly grown) extent
    dens = float(w_all[fg].sum()) / max(int(fg.sum()), 1)
    support = w_all >= dens / 3.0
    # colour and depth from the front points (their own, sparser, smoothing width), from all
    # points where no front point is near; defined wherever some point contributes, so
    # gradients at the support's border see the surface's own colour, not a step to zero
    sig_f = smoothing_sigma(front) if sigma is None else sig
    frf = front.astype(np.float64)
    w_front = gaussian(frf, sig_f)
    use_front = w_front > dens * 1e-2
    reach = use_front | (w_all > dens * 1e-3)
    safe_f = np.where(use_front, w_front, 1.0)
    safe_a = np.where(w_all > 0, w_all, 1.0)
    img = np.asarray(rgb[r0:r1, c0:c1], np.float64) / 255.0
    fgf = fg.astype(np.float64)

    def dense(values: np.ndarray) -> np.ndarray:
        num_f = gaussian(values * frf, sig_f)
        num_a = gaussian(values * fgf, sig)
        return np.where(use_front, num_f / safe_f, np.where(reach, num_a / safe_a, 0.0))

    colour = np.stack([dense(img[..., ch]) for ch in range(3)])
    luma = colour[0] * _LUMA[0] + colour[1] * _LUMA[1] + colour[2] * _LUMA[2]
    # depth normalised over the object
    dz = dense(np.where(fg, (z - zmin) / max(zmax - zmin, 1e-9), 0.0))
    return ViewImage(r0=r0, c0=c0, fg=fg, front=front, support=support, colour=colour, luma=luma, depth=dz, sigma=sig)


def sobel(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gx, gy) Sobel derivatives of a 2-D map along columns and rows (fixed-order filter)."""
    gx = ndimage.sobel(img, axis=1, mode="nearest")
    gy = ndimage.sobel(img, axis=0, mode="nearest")
    return gx, gy
