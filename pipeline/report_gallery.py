"""Where the methods fail: worst test objects and per-part confusion matrices.

Category means hide the objects and parts a method gets wrong; these pure functions pick
the worst objects from per-object mIoU and count which part each ground-truth point was
predicted as (``none`` = label -1 on either side), for the report's failure gallery.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

import numpy as np

CRITERIA: tuple[tuple[str, str], ...] = (
    ("delta", "PartSTAD − PartSLIP mIoU (most negative first)"),
    ("partstad", "PartSTAD mIoU (lowest first)"),
)
"""Gallery criteria: key and what the ranking means."""


def _finite(v: object) -> bool:
    return isinstance(v, (int, float, np.floating)) and math.isfinite(float(v))


def worst_objects(scores: Mapping[str, Mapping[str, float]], n: int) -> dict[str, list[str]]:
    """The ``n`` worst objects per criterion of :data:`CRITERIA`.

    ``scores[object] = {"partslip": mIoU, "partstad": mIoU}``; an object without a finite
    value for a criterion is left out of that ranking. Ties keep the objects' order (stable).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    delta = {
        o: float(s["partstad"]) - float(s["partslip"])
        for o, s in scores.items()
        if _finite(s.get("partstad")) and _finite(s.get("partslip"))
    }
    own = {o: float(s["partstad"]) for o, s in scores.items() if _finite(s.get("partstad"))}
    return {key: sorted(vals, key=vals.__getitem__)[:n] for key, vals in (("delta", delta), ("partstad", own))}


def confusion_counts(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], n_parts: int) -> np.ndarray:
    """(K+1, K+1) int64 point counts, row = ground truth, column = prediction; index 0 is
    ``none`` (label -1), index k+1 is part k. Summed over the objects (all their points)."""
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions for {len(gts)} ground truths")
    k1 = n_parts + 1
    out = np.zeros((k1, k1), np.int64)
    for p, g in zip(preds, gts):
        p, g = np.asarray(p, np.int64), np.asarray(g, np.int64)
        if p.shape != g.shape or p.ndim != 1:
            raise ValueError(f"prediction shape {p.shape} != ground truth shape {g.shape}")
        for name, a in (("prediction", p), ("ground truth", g)):
            if a.size and (a.min() < -1 or a.max() >= n_parts):
                raise ValueError(f"{name} labels must lie in [-1, {n_parts - 1}], got [{a.min()}, {a.max()}]")
        out += np.bincount((g + 1) * k1 + (p + 1), minlength=k1 * k1).reshape(k1, k1)
    return out


def row_normalised(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (the share of a GT part's points per prediction); a row
    without points is NaN (the part is absent from the objects, not 0 % right)."""
    c = np.asarray(counts, np.float64)
    tot = c.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, c / np.where(tot > 0, tot, 1), np.nan)


def confusion_html(counts: np.ndarray, part_names: Sequence[str], caption: str) -> str:
    """A row-normalised confusion matrix as an HTML table: percentages printed, shaded by
    value, point counts in each cell's ``title`` (hover) and in the row total column."""
    names = ["none", *map(str, part_names)]
    c = np.asarray(counts, np.int64)
    if c.shape != (len(names), len(names)):
        raise ValueError(f"counts shape {c.shape} does not match {len(names)} labels (none + parts)")
    frac = row_normalised(c)
    head = '<tr><th class="name">GT \\ predicted</th>' + "".join(f"<th>{html.escape(n)}</th>" for n in names) + "<th>points</th></tr>"
    rows = []
    for i, gt in enumerate(names):
        cells = [f'<td class="name">{html.escape(gt)}</td>']
        for j, pr in enumerate(names):
            tip = html.escape(f"GT {gt} → predicted {pr}: {c[i, j]} of {c[i].sum()} points")
            if np.isnan(frac[i, j]):
                cells.append(f'<td title="{tip}">&ndash;</td>')
                continue
            shade = int(round(255 - 160 * frac[i, j]))
            style = f"background:rgb({shade},{shade},255)" + (";font-weight:700" if i == j else "")
            cells.append(f'<td title="{tip}" style="{style}">{100 * frac[i, j]:.0f}</td>')
        cells.append(f"<td>{int(c[i].sum())}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="confusion"><caption>{html.escape(caption)}</caption>{head}{"".join(rows)}</table>'
