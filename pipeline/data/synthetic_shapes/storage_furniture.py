"""StorageFurniture: cabinets and chests with a face frame, drawers, doors and open shelves."""

from __future__ import annotations

import numpy as np

from pipeline.data import _shapes as S
from pipeline.data.synthetic_shapes.common import _material, _Part, _pick, _piece, _u
from pipeline.data.synthetic_shapes.fronts import _column_cells, _fronts, _handle_size, _overlay


# ----------------------------------------------------------------------------- StorageFurniture
def build(rng: np.random.Generator, index: int) -> list[_Part]:
    mode = ("drawers", "doors", "mixed")[index % 3]
    W, D = _u(rng, 0.45, 1.4), _u(rng, 0.35, 0.6)
    H = _u(rng, 0.5, 1.3) if mode == "drawers" else _u(rng, 0.6, 1.9)
    body_m = _material(rng, _pick(rng, {"wood": 0.55, "painted": 0.45}))
    finish = rng.random()  # fronts: the carcass's exact finish, another piece of it, or another material
    front_m = body_m if finish < 0.3 else _piece(rng, body_m) if finish < 0.5 else _material(rng, _pick(rng, {"wood": 0.5, "painted": 0.5}))
    handle_m = _material(rng, _pick(rng, {"metal": 0.8, "plastic": 0.1, "wood": 0.1}))
    hstyle = _pick(rng, {"bar": 0.45, "knob": 0.3, "pull": 0.25})
    hsize = _handle_size(rng)
    parts: list[_Part] = []
    hp = 0.0
    u = rng.random()
    if u < 0.3:
        hp = _u(rng, 0.04, 0.1)
        parts.append(_Part(S.box((W - 0.04, hp, D - 0.06), (0, hp / 2, -0.01), drop_sides=("+y",)), None, body_m))
    elif u < 0.55:
        hp = _u(rng, 0.05, 0.15)
        fr = _u(rng, 0.015, 0.03)
        feet = [
            S.cylinder(
                fr, (sx * (W / 2 - 0.04), 0, sz * (D / 2 - 0.04)), (sx * (W / 2 - 0.04), hp, sz * (D / 2 - 0.04)), 10, caps=(True, False)
            )
            for sx in (-1, 1)
            for sz in (-1, 1)
        ]
        parts.append(_Part(S.concat(*feet), None, handle_m if rng.random() < 0.5 else body_m))
    parts.append(_Part(S.box((W, H, D), (0, hp + H / 2, 0), drop_sides=("+z",)), None, body_m))
    b = _u(rng, 0.015, 0.03)
    ov = b * _u(rng, 0.3, 0.45)  # partial overlay: fronts cover this much of the face frame
    zf = D / 2

    def member(size, centre) -> S.Geom:  # face-frame board; its back is inside the carcass
        return S.box(size, centre, drop_sides=("-z",))

    frame = [
        member((W, b, 0.018), (0, hp + b / 2, zf - 0.009)),
        member((W, b, 0.018), (0, hp + H - b / 2, zf - 0.009)),
        member((b, H, 0.018), (-W / 2 + b / 2, hp + H / 2, zf - 0.009)),
        member((b, H, 0.018), (W / 2 - b / 2, hp + H / 2, zf - 0.009)),
    ]
    if rng.random() < 0.3:
        frame.append(S.box((W + 0.03, 0.025, D + 0.02), (0, hp + H + 0.0125, 0.005)))
    ncol = 1 if W < 0.6 else int(rng.integers(1, 3 if W < 1.0 else 4))
    xs = np.linspace(-W / 2 + b, W / 2 - b, ncol + 1)
    y0, y1 = hp + b, hp + H - b
    cells = []
    open_col = ncol > 1 and rng.random() < 0.3
    for c in range(ncol):
        xa, xb = float(xs[c]), float(xs[c + 1])
        if c > 0:
            frame.append(member((b, H - 2 * b, 0.018), (xa, hp + H / 2, zf - 0.009)))
            xa += b / 2
        if c < ncol - 1:
            xb -= b / 2
        if open_col and c == ncol - 1:  # an open shelf column: visible unlabelled shelves
            n = int(rng.integers(1, 4))
            for y in np.linspace(y0, y1, n + 2)[1:-1]:
                frame.append(S.box((xb - xa, 0.02, D - 0.04), ((xa + xb) / 2, float(y), 0)))
            continue
        cm = mode
        if mode == "mixed" and ncol > 1 and c > 0 and rng.random() < 0.5:
            cm = _pick(rng, {"drawers": 1, "doors": 1})
        cells += _overlay(_column_cells(rng, cm, xa, xb, y0, y1), xa, xb, y0, y1, ov)
    parts.append(_Part(S.concat(*frame), None, body_m))
    parts += _fronts(rng, cells, zf, front_m, handle_m, hstyle, hsize)
    return parts
