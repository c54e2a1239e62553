"""Table: drawer, desk (with a pedestal of drawers/doors), round and wheeled tables."""

from __future__ import annotations

import numpy as np

from pipeline import portable as pm
from pipeline.data import _shapes as S
from pipeline.data.synthetic_shapes.common import Material, _hsv, _material, _Part, _pick, _piece, _u
from pipeline.data.synthetic_shapes.fronts import _column_cells, _fronts, _handle_size


# ----------------------------------------------------------------------------- Table
def build(rng: np.random.Generator, index: int) -> list[_Part]:
    style = ("drawer", "desk", "round", "wheels")[index % 4]
    H, tt = _u(rng, 0.68, 0.78), _u(rng, 0.025, 0.06)
    top_m = _material(rng, _pick(rng, {"wood": 0.6, "painted": 0.2, "glass": 0.1, "plastic": 0.1}))
    u = rng.random()  # legs: the top's exact finish, another piece of it, or another material
    leg_m = top_m if u < 0.25 else _piece(rng, top_m) if u < 0.45 else _material(rng, _pick(rng, {"wood": 0.4, "metal": 0.6}))
    handle_m = _material(rng, _pick(rng, {"metal": 0.8, "plastic": 0.1, "wood": 0.1}))
    hstyle = _pick(rng, {"bar": 0.45, "knob": 0.3, "pull": 0.25})
    hsize = _handle_size(rng)
    parts: list[_Part] = []
    if style == "round":
        R = _u(rng, 0.38, 0.6)
        parts.append(_Part(S.cylinder(R, (0, H - tt, 0), (0, H, 0), 32), "tabletop", top_m))
        if rng.random() < 0.5:
            cr, br = _u(rng, 0.03, 0.07), _u(rng, 0.18, 0.3)
            ped = S.concat(
                S.cylinder(cr, (0, 0.03, 0), (0, H - tt, 0), 16, caps=False), S.frustum(br, br * 0.7, (0, 0, 0), (0, 0.035, 0), 24)
            )
            parts.append(_Part(ped, "leg", leg_m))
        else:
            n = int(rng.integers(3, 5))
            lt, r_top, r_bot = _u(rng, 0.03, 0.05), R * _u(rng, 0.35, 0.6), R * _u(rng, 0.6, 0.85)
            ph = _u(rng, 0, 360)
            for k in range(n):
                a = np.radians(ph + 360 * k / n)
                d = np.array([pm.cos(a), 0, pm.sin(a)])
                leg = S.cylinder(lt / 2, d * r_bot, d * r_top + (0, H - tt, 0), 10, caps=(True, False))
                parts.append(_Part(leg, "leg", leg_m))
        return parts

    W, D = (_u(rng, 1.0, 1.6), _u(rng, 0.55, 0.8)) if style == "desk" else (_u(rng, 0.8, 1.5), _u(rng, 0.5, 0.9))
    parts.append(_Part(S.box((W, tt, D), (0, H - tt / 2, 0)), "tabletop", top_m))
    lt, inset = _u(rng, 0.04, 0.07), _u(rng, 0.02, 0.07)
    round_leg = rng.random() < 0.35
    rw = _u(rng, 0.025, 0.04) if style == "wheels" else 0.0
    yb = 2 * rw + 0.01 if rw else 0.0
    ytop = H - tt
    side = 1 if rng.random() < 0.5 else -1
    corners = [(sx, sz) for sx in (-1, 1) for sz in (-1, 1)]
    if style == "desk":
        corners = [(-side, sz) for sz in (-1, 1)]
    wheel_m = Material("plastic", _hsv(0, 0, _u(rng, 0.08, 0.25)), 3.0)
    for sx, sz in corners:
        x, z = sx * (W / 2 - inset - lt / 2), sz * (D / 2 - inset - lt / 2)
        g = (
            S.cylinder(lt / 2, (x, yb, z), (x, ytop, z), 12, caps=(True, False))
            if round_leg
            else S.box((lt, ytop - yb, lt), (x, (yb + ytop) / 2, z), drop_sides=("+y",))
        )
        parts.append(_Part(g, "leg", leg_m))
        if rw:
            ww = _u(rng, 0.02, 0.03)
            wheel = S.concat(
                S.cylinder(rw, (x - ww / 2, rw, z), (x + ww / 2, rw, z), 14),
                S.box((ww * 1.4, yb - rw, lt * 0.8), (x, rw + (yb - rw) / 2, z), drop_sides=("+y",)),
            )
            parts.append(_Part(wheel, "wheel", wheel_m))
    zf = D / 2 - inset - lt / 2 + 0.01
    apron_h = _u(rng, 0.08, 0.13)
    if style == "desk":
        cw = _u(rng, 0.35, 0.48)
        xa, xb = (W / 2 - inset - cw, W / 2 - inset) if side == 1 else (-W / 2 + inset, -W / 2 + inset + cw)
        cd = D - 2 * inset
        body = S.box((cw, ytop, cd), ((xa + xb) / 2, ytop / 2, 0), drop_sides=("+z", "+y"))  # top: under the tabletop
        body_m = leg_m if rng.random() < 0.5 else top_m
        parts.append(_Part(body, None, _piece(rng, body_m) if rng.random() < 0.5 else body_m))
        zc = cd / 2
        mode = _pick(rng, {"drawers": 1, "mixed": 1.5, "doors": 0.5})
        if index % 8 == 1:
            mode = "mixed"  # the first desks of every split show both a door and drawers
        cells = _column_cells(rng, mode, xa + 0.01, xb - 0.01, 0.04, ytop - 0.01)
        parts += _fronts(rng, cells, zc, top_m if rng.random() < 0.6 else leg_m, handle_m, hstyle, hsize)
        # apron across the free part, maybe with a drawer
        fx0, fx1 = (-W / 2 + inset + lt, xa) if side == 1 else (xb, W / 2 - inset - lt)
        holes: list[tuple[float, float]] = []
        if rng.random() < 0.5:
            m, half = (fx0 + fx1) / 2, min(0.25, (fx1 - fx0) / 2 - 0.03)
            cells = [("drawer", m - half, m + half, ytop - apron_h, ytop, "")]
            parts += _fronts(rng, cells, zf, top_m, handle_m, hstyle, hsize)
            holes.append((m - half, m + half))
        apron = _apron(fx0, fx1, ytop - apron_h, ytop, zf, 0.02, holes)
        parts.append(_Part(apron, None, top_m))
        return parts
    has_apron = style == "drawer" or rng.random() < 0.6
    if has_apron:
        # boards between the legs' inner faces (x = ±ax, z = ±az), set back from the legs' outer faces
        ax, az = W / 2 - inset - lt, D / 2 - inset - lt
        at, za = 0.02, D / 2 - inset - _APRON_SETBACK
        xs = W / 2 - inset - _APRON_SETBACK
        y0 = ytop - apron_h
        apron_m = leg_m if rng.random() < 0.5 else top_m
        apron_m = _piece(rng, apron_m) if rng.random() < 0.5 else apron_m  # a board of its own
        holes = []
        if style == "drawer" or rng.random() < 0.2:
            nd = 1 if W < 1.0 else int(rng.integers(1, 3))
            dw = min(_u(rng, 0.3, 0.5), 2 * ax / nd - 0.04)
            cx = np.linspace(-ax, ax, nd + 2)[1:-1] if nd > 1 else np.array([0.0])
            cells = [("drawer", float(c - dw / 2), float(c + dw / 2), y0 + 0.005, ytop - 0.005, "") for c in cx]
            holes = [(x0, x1) for _, x0, x1, *_ in cells]
            parts += _fronts(rng, cells, za, top_m if rng.random() < 0.7 else leg_m, handle_m, hstyle, hsize)
        side_board = S.box((at, apron_h, 2 * az), (0, 0, 0), drop_sides=("+y", "-z", "+z"))
        apron = S.concat(
            _apron(-ax, ax, y0, ytop, za, at, holes),
            _apron(-ax, ax, y0, ytop, za, at, [], back=True),
            S.transform(side_board, shift=(-xs + at / 2, ytop - apron_h / 2, 0)),
            S.transform(side_board, shift=(xs - at / 2, ytop - apron_h / 2, 0)),
        )
        parts.append(_Part(apron, None, apron_m))
    return parts


#: How far table aprons sit back from the legs' outer faces.
_APRON_SETBACK = 0.008


def _apron(x0: float, x1: float, y0: float, y1: float, z: float, t: float, holes: list[tuple[float, float]], back: bool = False) -> S.Geom:
    """A board along x under a top (hidden top face, ends butting against legs), front face at
    depth z (or at -z for the back board), with openings [(xa, xb), ...] left for drawers."""
    edges = [x0] + [e for h in sorted(holes) for e in h] + [x1]
    zc = -(z - t / 2) if back else z - t / 2
    boards = []
    for xa, xb in zip(edges[0::2], edges[1::2]):
        if xb - xa > 1e-3:
            ends = tuple(s for s, e in (("-x", xa == x0), ("+x", xb == x1)) if e)
            boards.append(S.box((xb - xa, y1 - y0, t), ((xa + xb) / 2, (y0 + y1) / 2, zc), drop_sides=("+y",) + ends))
    return S.concat(*boards)
