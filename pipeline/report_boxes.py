"""Which boxes the weight network trusted: the views with their boxes and learned weights.

PartSTAD's gain over PartSLIP comes from one number per 2D box, its weight; drawing it on
the box (with the part name) next to the SAM mask of each view's most trusted box shows
whether the network trusts the right boxes. Pure arrays in, an RGB uint8 image out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from pipeline.viz_labels import _render, label_palette


def _thumb_index(size: int, out: int) -> np.ndarray:
    """Nearest-pixel-centre source indices for a resize from ``size`` to ``out`` pixels."""
    return np.minimum(((np.arange(out) + 0.5) * size / out).astype(np.int64), size - 1)


def best_box_per_view(view: np.ndarray, weight: np.ndarray, n_views: int) -> np.ndarray:
    """(V,) index of the highest-weight box of each view, -1 for a view without boxes
    (ties: the first box, i.e. the detector's higher score)."""
    view, weight = np.asarray(view, np.int64), np.asarray(weight, np.float64)
    if view.shape != weight.shape:
        raise ValueError(f"view {view.shape} and weight {weight.shape} differ")
    out = np.full(n_views, -1, np.int64)
    for v in range(n_views):
        idx = np.flatnonzero(view == v)
        if idx.size:
            out[v] = idx[int(np.argmax(weight[idx]))]
    return out


def box_weight_sheet(
    rgb: np.ndarray,
    xyxy: np.ndarray,
    view: np.ndarray,
    label: np.ndarray,
    weight: np.ndarray,
    part_names: Sequence[str],
    mask: np.ndarray | None = None,
    cols: int = 5,
    thumb_px: int = 200,
) -> np.ndarray:
    """Per view: the view with its boxes (part colour, "name w") and below it the SAM mask
    of its highest-weight box. ``rgb`` (V,H,W,3) uint8, boxes in pixels of ``rgb``, ``mask``
    (B,H,W) bool or None (then the mask row is left out)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 4 or rgb.shape[-1] != 3:
        raise ValueError(f"rgb must be (V,H,W,3), got {rgb.shape}")
    n_views, h, w, _ = rgb.shape
    xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
    b = len(xyxy)
    if not (len(view) == len(label) == len(weight) == b):
        raise ValueError(f"box arrays disagree: {b} boxes, {len(view)} views, {len(label)} labels, {len(weight)} weights")
    if mask is not None and np.shape(mask) != (b, h, w):
        raise ValueError(f"mask shape {np.shape(mask)} != ({b}, {h}, {w})")
    lab = np.asarray(label, np.int64)
    wts = np.asarray(weight, np.float64)
    pal = label_palette(len(part_names)).astype(np.float64) / 255.0
    best = best_box_per_view(view, wts, n_views)
    scale = thumb_px / max(h, w)
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    ri, ci = _thumb_index(h, th), _thumb_index(w, tw)
    ncol = max(1, min(cols, n_views))
    nblock = -(-n_views // ncol)
    per_block = 2 if mask is not None else 1
    dpi = 100
    fig = Figure(figsize=(ncol * tw / dpi, nblock * per_block * (th + 16) / dpi), dpi=dpi)
    fig.patch.set_facecolor("white")
    total_rows = nblock * per_block
    for v in range(n_views):
        r, c = divmod(v, ncol)
        ax = fig.add_axes((c / ncol, 1 - (r * per_block + 1) / total_rows, 1 / ncol, th / (th + 16) / total_rows))
        ax.imshow(rgb[v][ri][:, ci], interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(f"view {v}", fontsize=7, pad=1)
        for k in np.flatnonzero(np.asarray(view) == v):
            x0, y0, x1, y1 = xyxy[k] * scale
            col = pal[lab[k] + 1] if -1 <= lab[k] < len(part_names) else (0, 0, 0)
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=2.0 if k == best[v] else 0.8, edgecolor=col))
            name = part_names[lab[k]] if 0 <= lab[k] < len(part_names) else str(lab[k])
            ax.text(x0, y0, f"{name} {wts[k]:.2f}", fontsize=5, color="white", va="bottom", bbox={"facecolor": col, "pad": 0.5, "lw": 0})
        ax.set_xlim(0, tw)
        ax.set_ylim(th, 0)
        if mask is None:
            continue
        ax = fig.add_axes((c / ncol, 1 - (r * per_block + 2) / total_rows, 1 / ncol, th / (th + 16) / total_rows))
        ax.set_axis_off()
        kb = int(best[v])
        if kb < 0:
            ax.imshow(np.full((th, tw, 3), 255, np.uint8))
            ax.set_title("no box", fontsize=7, pad=1)
            continue
        img = rgb[v][ri][:, ci].astype(np.float64) / 255.0 * 0.35 + 0.65  # dimmed view
        m = np.asarray(mask[kb], bool)[ri][:, ci]
        img[m] = pal[lab[kb] + 1] if 0 <= lab[kb] < len(part_names) else (0, 0, 0)
        ax.imshow(img, interpolation="nearest")
        name = part_names[lab[kb]] if 0 <= lab[kb] < len(part_names) else str(lab[kb])
        ax.set_title(f"SAM mask: {name} w={wts[kb]:.2f}", fontsize=7, pad=1)
    return _render(fig)
