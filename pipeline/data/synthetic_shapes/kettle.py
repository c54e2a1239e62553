"""Kettle: a lathed body with a lid, a side or top handle and a spout."""

from __future__ import annotations

import numpy as np

from pipeline import portable as pm
from pipeline.data import _shapes as S
from pipeline.data.synthetic_shapes.common import _material, _Part, _pick, _piece, _u


# ----------------------------------------------------------------------------- Kettle
def _smooth(path: np.ndarray, it: int = 2) -> np.ndarray:
    """Chaikin corner cutting, keeping the end points."""
    p = np.asarray(path, float)
    for _ in range(it):
        q = 0.75 * p[:-1] + 0.25 * p[1:]
        r = 0.25 * p[:-1] + 0.75 * p[1:]
        mid = np.empty((2 * len(q), 3))
        mid[0::2], mid[1::2] = q, r
        p = np.vstack([p[:1], mid, p[-1:]])
    return p


def build(rng: np.random.Generator, index: int) -> list[_Part]:
    R, Hk = _u(rng, 0.07, 0.11), _u(rng, 0.13, 0.22)
    shape = _pick(rng, {"bulb": 1, "cyl": 1, "cone": 1})
    ys = np.linspace(0, 1, 11)
    if shape == "bulb":
        top = _u(rng, 0.45, 0.7)
        rr = 0.88 + 0.12 * pm.sin(np.clip(ys / 0.35, 0, 1) * np.pi / 2)
        rr = np.where(ys > 0.35, 1 - (1 - top) * pm.power(np.clip(ys - 0.35, 0, None) / 0.65, 1.6), rr)
    elif shape == "cyl":
        rr = 1 - (1 - _u(rng, 0.8, 0.95)) * ys
    else:
        rr = 1 - (1 - _u(rng, 0.45, 0.6)) * pm.power(ys, 0.9)
    base_h = _u(rng, 0.015, 0.025) if rng.random() < 0.35 else 0.0
    prof = [(0.0, base_h)] + [(R * r, base_h + Hk * y) for r, y in zip(rr, ys)]
    Rt = R * rr[-1]
    body_m = _material(rng, _pick(rng, {"metal": 0.45, "plastic": 0.3, "ceramic": 0.25}))
    ytop = base_h + Hk
    hr = _u(rng, 0.007, 0.013)
    top_handle = Rt >= 0.05 and rng.random() < 0.4
    # the lid closes an opening in a shoulder ring; a top handle's feet stand on that ring
    if top_handle:
        hr *= 0.7
        zr = Rt - hr - _u(rng, 0.0, 0.004)
    lip, rim_h = _u(rng, 0.002, 0.005), _u(rng, 0.004, 0.01)
    rl = Rt * _u(rng, 0.55, 0.9)
    if top_handle:
        rl = min(rl, zr - hr - lip - 0.003)
    rise = (Rt - rl) * _u(rng, 0.1, 0.5)
    y0 = ytop + rise
    body_prof = prof + [(rl, y0)] if Rt - rl > 1e-3 else prof
    parts = [_Part(S.lathe(body_prof, 28, True, False), None, body_m)]
    if base_h:
        parts.append(_Part(S.cylinder(R * 1.1, (0, 0, 0), (0, base_h, 0), 28), None, _material(rng, "plastic")))

    def radius_at(y: float) -> float:
        return float(np.interp((y - base_h) / Hk, ys, rr)) * R

    # lid: a rim standing a little proud of the opening (a visible seam), a low dome, a knob
    dome = _u(rng, 0.01, 0.04)
    t = np.linspace(0, 1, 6)
    lid_prof = [(rl + lip, y0), (rl + lip, y0 + rim_h)]
    lid_prof += [((rl + lip * 0.3) * pm.cos(a * np.pi / 2), y0 + rim_h + dome * pm.sin(a * np.pi / 2)) for a in t]
    kr = _u(rng, 0.01, 0.018)
    u = rng.random()  # the body's exact finish, a separately made piece of it, or another material
    lid_m = body_m if u < 0.25 else _piece(rng, body_m) if u < 0.45 else _material(rng, _pick(rng, {"metal": 1, "plastic": 1.5}))
    ylid = y0 + rim_h + dome
    lid = S.concat(S.lathe(lid_prof, 24, False, False), S.sphere(kr, (0, ylid + kr * 0.7, 0), 6, 10))
    parts.append(_Part(lid, "lid", lid_m))
    handle_m = body_m if rng.random() < 0.3 else _material(rng, _pick(rng, {"plastic": 0.6, "wood": 0.25, "metal": 0.15}))
    if not top_handle:  # side handle on -X
        y1, y2 = base_h + Hk * _u(rng, 0.75, 0.92), base_h + Hk * _u(rng, 0.15, 0.35)
        out = _u(rng, 0.04, 0.07)
        xo = -(R + out)
        ctrl = np.array(
            [
                [-radius_at(y1) + 0.004, y1, 0],
                [xo + 0.01, y1 + 0.01, 0],
                [xo, (y1 + y2) / 2, 0],
                [xo + 0.015, y2, 0],
                [-radius_at(y2) + 0.004, y2, 0],
            ]
        )
        handle = S.tube(_smooth(ctrl, 3), hr, 10)
    else:  # top handle arching front to back over the lid, feet on the shoulder ring
        yf = ytop + rise * (Rt - zr) / max(Rt - rl, 1e-6) - 0.003
        ah = ylid - yf + 2 * kr + _u(rng, 0.05, 0.11)
        a = np.linspace(0, np.pi, 16)
        path = np.stack([np.zeros_like(a), yf + ah * pm.sin(a), zr * pm.cos(a)], 1)
        handle = S.tube(path, hr, 10)
    parts.append(_Part(handle, "handle", handle_m))
    # spout on +X, rising forward
    y_s = base_h + Hk * _u(rng, 0.2, 0.45)
    L, up = _u(rng, 0.06, 0.12), _u(rng, 0.06, 0.14)
    up = min(up, ytop + 0.02 - y_s)
    x0 = min(radius_at(y_s - 0.02), radius_at(y_s + 0.02)) - 0.004  # the spout starts at the wall
    ctrl = np.array([[x0, y_s, 0], [x0 + 0.45 * L, y_s + 0.1 * up, 0], [x0 + 0.8 * L, y_s + 0.5 * up, 0], [x0 + L, y_s + up, 0]])
    path = _smooth(ctrl, 2)
    rs0 = _u(rng, 0.013, 0.022)
    rad = np.linspace(rs0, rs0 * _u(rng, 0.45, 0.7), len(path))
    spout_m = body_m if rng.random() < 0.85 else _material(rng, "metal")
    parts.append(_Part(S.tube(path, rad, 12, caps=False), "spout", spout_m))
    return parts
