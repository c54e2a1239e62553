"""Drawer and door fronts with their handles, shared by tables and storage furniture."""

from __future__ import annotations

import numpy as np

from pipeline.data import _shapes as S
from pipeline.data.synthetic_shapes.common import Material, _Part, _u


# ----------------------------------------------------------------------------- handles
def _handle(rng: np.random.Generator, style: str, centre, z: float, orient: str, length: float, size: dict[str, float]) -> S.Geom:
    """A handle on a front face at depth z, sticking out along +Z."""
    cx, cy = float(centre[0]), float(centre[1])
    p = size["protrude"]
    if style == "knob":
        r = size["knob_r"]
        stem = S.cylinder(r * 0.4, (cx, cy, z), (cx, cy, z + p * 0.7), 8, caps=False)
        head = S.sphere(r, (cx, cy, z + p - r * 0.6), 6, 10, scale=(1.0, 1.0, 0.7))
        return S.concat(stem, head)
    ax = np.array([1.0, 0.0, 0.0]) if orient == "h" else np.array([0.0, 1.0, 0.0])
    c = np.array([cx, cy, z])
    if style == "bar":
        r = size["bar_r"]
        a, b = c - ax * length / 2, c + ax * length / 2
        legs = [S.cylinder(r * 0.8, q, q + (0, 0, p), 8, caps=False) for q in (a + ax * r, b - ax * r)]
        over = size["overhang"] * length
        bar = S.cylinder(r, a - ax * over + (0, 0, p), b + ax * over + (0, 0, p), 10)
        return S.concat(*legs, bar)
    # "pull": a solid block handle
    w = size["pull_w"]
    ext = (length, w, p) if orient == "h" else (w, length, p)
    return S.box(ext, (cx, cy, z + p / 2), drop_sides=("-z",))


def _handle_size(rng: np.random.Generator) -> dict[str, float]:
    return {
        "protrude": _u(rng, 0.025, 0.045),
        "knob_r": _u(rng, 0.015, 0.025),
        "bar_r": _u(rng, 0.006, 0.01),
        "overhang": _u(rng, 0.0, 0.12),
        "pull_w": _u(rng, 0.018, 0.03),
    }


# ----------------------------------------------------------------------------- fronts
def _fronts(
    rng: np.random.Generator,
    cells: list[tuple[str, float, float, float, float, str]],
    z: float,
    front_m: Material,
    handle_m: Material,
    hstyle: str,
    hsize: dict[str, float],
) -> list[_Part]:
    """Drawer/door fronts (+ handles) on a face at depth z.

    cells: (kind "drawer"|"door", x0, x1, y0, y1, hinge "l"|"r"|"") in object coordinates.
    """
    parts: list[_Part] = []
    gap, ft = 0.004, _u(rng, 0.016, 0.024)
    for kind, x0, x1, y0, y1, hinge in cells:
        x0, x1, y0, y1 = x0 + gap / 2, x1 - gap / 2, y0 + gap / 2, y1 - gap / 2
        w, h = x1 - x0, y1 - y0
        # the back of a closed front faces the inside of the furniture: never seen
        parts.append(_Part(S.box((w, h, ft), ((x0 + x1) / 2, (y0 + y1) / 2, z + ft / 2), drop_sides=("-z",)), kind, front_m))
        zf = z + ft
        if kind == "drawer":
            y = y0 + h * _u(rng, 0.5, 0.68)
            length = min(w * 0.6, _u(rng, 0.08, 0.2))
            if hstyle == "knob" and w > 0.55:
                for x in (x0 + w / 4, x1 - w / 4):
                    parts.append(_Part(_handle(rng, hstyle, (x, y), zf, "h", length, hsize), "handle", handle_m))
            else:
                parts.append(_Part(_handle(rng, hstyle, ((x0 + x1) / 2, y), zf, "h", length, hsize), "handle", handle_m))
        else:
            edge = 0.035 + hsize["knob_r"]
            x = x1 - edge if hinge == "l" else x0 + edge
            y = y0 + h * (_u(rng, 0.45, 0.6) if h > 0.9 else _u(rng, 0.6, 0.85))
            length = min(h * 0.5, _u(rng, 0.1, 0.3))
            parts.append(_Part(_handle(rng, hstyle, (x, y), zf, "v", length, hsize), "handle", handle_m))
    return parts


def _column_cells(
    rng: np.random.Generator, mode: str, x0: float, x1: float, y0: float, y1: float
) -> list[tuple[str, float, float, float, float, str]]:
    """Split one column of a cabinet front into drawers and/or doors."""
    cells = []
    hgt = y1 - y0
    w = x1 - x0

    def doors(ya: float, yb: float) -> None:
        if w > 0.5:
            xm = (x0 + x1) / 2
            cells.append(("door", x0, xm, ya, yb, "r"))
            cells.append(("door", xm, x1, ya, yb, "l"))
        else:
            cells.append(("door", x0, x1, ya, yb, "l" if rng.random() < 0.5 else "r"))

    if mode == "drawers":
        n = int(np.clip(round(hgt / _u(rng, 0.14, 0.3)), 1, 6))
        edges = np.linspace(y1, y0, n + 1)
        cells += [("drawer", x0, x1, float(b), float(a), "") for a, b in zip(edges[:-1], edges[1:])]
    elif mode == "doors":
        if hgt > 1.3 and rng.random() < 0.5:
            ym = y0 + hgt * _u(rng, 0.45, 0.6)
            doors(ym, y1)
            doors(y0, ym)
        else:
            doors(y0, y1)
    else:  # mixed: drawers on top, doors below
        n = int(rng.integers(1, 3))
        dh = min(_u(rng, 0.12, 0.22), hgt * 0.4 / n)
        for i in range(n):
            cells.append(("drawer", x0, x1, y1 - (i + 1) * dh, y1 - i * dh, ""))
        doors(y0, y1 - n * dh)
    return cells


def _overlay(
    cells: list[tuple[str, float, float, float, float, str]], x0: float, x1: float, y0: float, y1: float, ov: float
) -> list[tuple[str, float, float, float, float, str]]:
    """Fronts of an opening [x0,x1]x[y0,y1] extended by ov over the surrounding frame (edges
    between two fronts stay where they are)."""
    out = []
    for kind, a, b, c, d, hinge in cells:
        a = a - ov if np.isclose(a, x0) else a
        b = b + ov if np.isclose(b, x1) else b
        c = c - ov if np.isclose(c, y0) else c
        d = d + ov if np.isclose(d, y1) else d
        out.append((kind, a, b, c, d, hinge))
    return out
