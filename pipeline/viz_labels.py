"""Pictures of part labels for the report: palettes, 3D scatters, curves, PNG bytes.

Everything here is a pure function from arrays to an RGB uint8 image, rendered with
matplotlib's Agg canvas on a private ``Figure`` (no pyplot, no global backend state), so it
works headless, in dask workers and in tests, and the same input gives the same pixels.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import hsv_to_rgb, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from pipeline.report_style import method_colour

if TYPE_CHECKING:
    from mpl_toolkits.mplot3d.axes3d import Axes3D

NONE_GREY = (200, 200, 200)
"""Colour of label -1 ("no part"): light grey so predicted parts stand out."""

# Fixed, well separated colours (the tab10 order, then the lighter tab20 companions), so a
# part keeps its colour across every figure of the report.
_BASE_COLOURS = np.array(
    [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
        (174, 199, 232),
        (255, 187, 120),
        (152, 223, 138),
        (255, 152, 150),
        (197, 176, 213),
        (196, 156, 148),
        (247, 182, 210),
        (219, 219, 141),
        (158, 218, 229),
        (57, 59, 121),
    ],
    dtype=np.uint8,
)


def _golden_hues(n: int, start: int, sat: float = 0.75, val: float = 0.85) -> np.ndarray:
    """(n,3) uint8 colours with hues spread by the golden ratio (for > 20 parts)."""
    k = np.arange(start, start + n, dtype=np.float64)
    hsv = np.stack([(k * 0.6180339887) % 1.0, np.full(n, sat), np.full(n, val)], axis=1)
    return np.round(hsv_to_rgb(hsv) * 255).astype(np.uint8)


def label_palette(n_parts: int) -> np.ndarray:
    """(n_parts+1, 3) uint8: row 0 is the grey of label -1, row k+1 the colour of part k."""
    if n_parts < 0:
        raise ValueError(f"n_parts must be >= 0, got {n_parts}")
    cols = _BASE_COLOURS[:n_parts]
    if n_parts > len(_BASE_COLOURS):
        extra = _golden_hues(n_parts - len(_BASE_COLOURS), len(_BASE_COLOURS))
        cols = np.concatenate([cols, extra], axis=0)
    return np.concatenate([np.array([NONE_GREY], dtype=np.uint8), cols], axis=0)


def colour_labels(labels: np.ndarray, n_parts: int) -> np.ndarray:
    """(N,) part ids in -1..n_parts-1 -> (N,3) uint8 colours of :func:`label_palette`."""
    lab = np.asarray(labels)
    if lab.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {lab.shape}")
    lab = lab.astype(np.int64)
    if lab.size and (lab.min() < -1 or lab.max() >= n_parts):
        raise ValueError(f"labels must lie in [-1, {n_parts - 1}], got [{lab.min()}, {lab.max()}]")
    return label_palette(n_parts)[lab + 1]


def instance_colours(ins: np.ndarray) -> np.ndarray:
    """(N,) instance ids -> (N,3) uint8, a fixed pseudo-random colour per id, grey for -1.

    The colour depends only on the id (a multiplicative hash), so the same instance id has
    the same colour in every picture and run.
    """
    ids = np.asarray(ins).astype(np.int64)
    if ids.ndim != 1:
        raise ValueError(f"ins must be 1-D, got shape {ids.shape}")
    out = np.empty((ids.size, 3), dtype=np.uint8)
    out[:] = NONE_GREY
    uniq, inv = np.unique(ids, return_inverse=True)
    h = ((uniq.astype(np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B1)) & np.uint64(0xFFFFFFFF)
    hue = (h & np.uint64(0xFFFF)).astype(np.float64) / 65536.0
    sat = 0.55 + 0.4 * ((h >> np.uint64(16)) & np.uint64(0xFF)).astype(np.float64) / 255.0
    val = 0.7 + 0.25 * ((h >> np.uint64(24)) & np.uint64(0xFF)).astype(np.float64) / 255.0
    cols = np.round(hsv_to_rgb(np.stack([hue, sat, val], axis=1)) * 255).astype(np.uint8)
    cols[uniq < 0] = NONE_GREY
    out[:] = cols[inv.reshape(-1)]
    return out


def _render(fig: Figure) -> np.ndarray:
    """Rasterise a Figure to an (h,w,3) uint8 array with the Agg canvas."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def subsample_indices(n: int, max_points: int) -> np.ndarray:
    """Fixed (seeded) subset of point indices, sorted, so every panel (static or interactive)
    shows the same points of an object."""
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, size=max_points, replace=False))


_subsample = subsample_indices


def to_plot_frame(xyz: np.ndarray) -> np.ndarray:
    """Object frame (+Y up, front +Z) -> matplotlib frame (+Z up).

    (x, y, z) -> (x, -z, y) is a proper rotation (no mirroring), so with the default azimuth
    -60 deg the camera sits on the object's +Z (front) side, slightly to its right.
    """
    return np.stack([xyz[:, 0], -xyz[:, 2], xyz[:, 1]], axis=1)


def scatter_views(
    xyz: np.ndarray,
    label_sets: Mapping[str, np.ndarray],
    n_parts: int,
    part_names: Sequence[str],
    elev: float = 20.0,
    azim: float = -60.0,
    max_points: int = 6000,
    size_px: int = 360,
    point_size: float = 2.0,
    instance_sets: Mapping[str, np.ndarray | None] | None = None,
) -> np.ndarray:
    """One 3D scatter panel per label set (titled by its key) side by side, shared legend.

    ``xyz`` is in the normalised object frame with +Y up; ``size_px`` is the side of one
    panel. ``instance_sets`` (same keys, (N,) instance ids or None) adds a second row coloured
    by :func:`instance_colours` under the part row, so grouping errors show too (a None panel
    stays blank). Returns an (h, w, 3) uint8 image.
    """
    pts = np.asarray(xyz, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"xyz must be (N,3), got shape {pts.shape}")
    if len(part_names) != n_parts:
        raise ValueError(f"{len(part_names)} part names for n_parts={n_parts}")
    if not label_sets:
        raise ValueError("label_sets is empty")
    for name, lab in label_sets.items():
        if np.shape(lab) != (len(pts),):
            raise ValueError(f"label set {name!r} has shape {np.shape(lab)}, expected ({len(pts)},)")
    inst = dict(instance_sets or {})
    if set(inst) - set(label_sets):
        raise ValueError(f"instance sets {sorted(set(inst) - set(label_sets))} have no label set")
    for name, ins in inst.items():
        if ins is not None and np.shape(ins) != (len(pts),):
            raise ValueError(f"instance set {name!r} has shape {np.shape(ins)}, expected ({len(pts)},)")
    rows: list[tuple[str, Mapping[str, np.ndarray | None]]] = [("sem", dict(label_sets))]
    if inst:
        rows.append(("ins", {k: inst.get(k) for k in label_sets}))

    idx = _subsample(len(pts), max_points)
    p = to_plot_frame(pts[idx])
    finite = np.isfinite(p).all(axis=1)
    if finite.any():
        lo, hi = p[finite].min(axis=0), p[finite].max(axis=0)
    else:
        lo, hi = np.full(3, -1.0), np.full(3, 1.0)
    centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 1e-6) * 1.02

    palette = label_palette(n_parts).astype(np.float64) / 255.0
    n_panels = len(label_sets)
    legend_rows = int(np.ceil((n_parts + 1) / max(1, min(n_parts + 1, 3 * n_panels))))
    legend_px = 24 + 18 * legend_rows
    dpi = 100
    title_px = 26
    total_h = len(rows) * (size_px + title_px) + legend_px
    fig = Figure(figsize=(size_px * n_panels / dpi, total_h / dpi), dpi=dpi)
    fig.patch.set_facecolor("white")
    height = size_px / total_h
    for r, (kind, sets) in enumerate(rows):
        top = total_h - r * (size_px + title_px)  # pixels from the bottom to this row's title top
        bottom = (top - title_px - size_px) / total_h
        for i, (title, row_lab) in enumerate(sets.items()):
            # projection="3d" makes an Axes3D; matplotlib's stubs type add_axes as plain Axes
            ax = cast("Axes3D", fig.add_axes((i / n_panels, bottom, 1 / n_panels, height), projection="3d"))
            ax.set_axis_off()
            label = f"{title}: instances" if kind == "ins" else str(title)
            if row_lab is None:
                label = f"{title}: no instances"
            fig.text((i + 0.5) / n_panels, (top - 0.5 * title_px) / total_h, label, ha="center", va="center", fontsize=11)
            if row_lab is None:
                continue
            ids = np.asarray(row_lab).astype(np.int64)[idx]
            cols = instance_colours(ids).astype(np.float64) / 255.0 if kind == "ins" else palette[ids + 1]
            ax.scatter(p[:, 0], p[:, 1], p[:, 2], c=cols, s=point_size, marker="o", linewidths=0, depthshade=False)
            ax.set_xlim(centre[0] - half, centre[0] + half)
            ax.set_ylim(centre[1] - half, centre[1] + half)
            ax.set_zlim(centre[2] - half, centre[2] + half)
            ax.set_box_aspect((1, 1, 1), zoom=1.25)
            ax.view_init(elev=elev, azim=azim)
    handles = [
        Line2D([], [], linestyle="", marker="o", markersize=8, markerfacecolor=palette[k + 1], markeredgecolor="none", label=str(nm))
        for k, nm in enumerate(part_names)
    ]
    handles.append(Line2D([], [], linestyle="", marker="o", markersize=8, markerfacecolor=palette[0], markeredgecolor="none", label="none"))
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=min(len(handles), 3 * n_panels),
        frameon=False,
        fontsize=9,
        handletextpad=0.2,
        columnspacing=1.0,
    )
    return _render(fig)


def plot_curves(curves: Mapping[str, Sequence[Mapping[str, float]]], width_px: int = 900, height_px: int = 340) -> np.ndarray:
    """Training loss and validation mIoU against epoch, one line per category (two panels),
    all in PartSTAD's method colour."""
    dpi = 100
    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    fig.patch.set_facecolor("white")
    ax_loss, ax_val = fig.subplots(1, 2)
    # PartSTAD's colour in every figure (pipeline.report_style); categories differ by
    # line style, marker and shade, so the method colours never mean "category" here
    base = np.array(to_rgb(method_colour("partstad")))
    styles, marks = ("-", "--", "-.", ":"), ("o", "s", "^", "D", "v", "x")
    for k, (cat, rows) in enumerate(curves.items()):
        shade = base * (1 - 0.45 * (k % 3) / 2) + 0.45 * (k % 3) / 2  # towards white, 3 shades
        for ax, key in ((ax_loss, "loss"), (ax_val, "val_miou")):
            xy = [(float(r["epoch"]), float(r[key])) for r in rows if r.get(key) is not None and np.isfinite(float(r[key]))]
            if xy:
                e, v = np.array(xy).T
                ax.plot(
                    e,
                    v,
                    color=shade,
                    lw=1.5,
                    ls=styles[k % len(styles)],
                    marker=marks[k % len(marks)],
                    markevery=max(1, len(e) // 8),
                    ms=4,
                    label=str(cat),
                )
    ax_loss.set(title="training loss", xlabel="epoch", ylabel="loss")
    ax_val.set(title="validation mIoU", xlabel="epoch", ylabel="mIoU (0-1)")
    for ax in (ax_loss, ax_val):
        ax.grid(True, alpha=0.3)
    if ax_val.get_legend_handles_labels()[0]:
        ax_val.legend(fontsize=8, loc="best", ncol=1 if len(curves) <= 8 else 2)
    else:
        ax_loss.text(0.5, 0.5, "no curves", ha="center", va="center", transform=ax_loss.transAxes)
    fig.tight_layout()
    return _render(fig)


def contact_sheet(views: np.ndarray, cols: int = 5, thumb_px: int = 160, gap: int = 4) -> np.ndarray:
    """(V,H,W,3) uint8 rendered views -> one small grid image (white gaps), for the report."""
    v = np.asarray(views)
    if v.ndim != 4 or v.shape[-1] != 3:
        raise ValueError(f"views must be (V,H,W,3), got shape {v.shape}")
    n, h, w, _ = v.shape
    if n == 0:
        raise ValueError("no views")
    scale = thumb_px / max(h, w)
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    # nearest-pixel-centre sampling: cheap, exact for integer factors, no extra dependency
    rows = np.minimum(((np.arange(th) + 0.5) * h / th).astype(np.int64), h - 1)
    cols_i = np.minimum(((np.arange(tw) + 0.5) * w / tw).astype(np.int64), w - 1)
    thumbs = v[:, rows][:, :, cols_i].astype(np.uint8)
    ncol = min(cols, n)
    nrow = int(np.ceil(n / ncol))
    sheet = np.full((nrow * th + (nrow - 1) * gap, ncol * tw + (ncol - 1) * gap, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, ncol)
        sheet[r * (th + gap) : r * (th + gap) + th, c * (tw + gap) : c * (tw + gap) + tw] = thumbs[i]
    return sheet


def png_bytes(image: np.ndarray) -> bytes:
    """Encode an (h,w,3) uint8 image as PNG bytes (Pillow, a matplotlib dependency)."""
    from PIL import Image

    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image must be (h,w,3) uint8, got {img.shape} {img.dtype}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG")
    return buf.getvalue()


def save_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write a PNG via a temporary file + rename (never rewrite a file DVC may have linked)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(png_bytes(image))
    os.replace(tmp, path)
    return path
