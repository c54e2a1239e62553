"""Lamp: table, desk (jointed arm) and floor lamps (shade or torchiere) with a bulb."""

from __future__ import annotations

import numpy as np

from pipeline import portable as pm
from pipeline.data import _shapes as S
from pipeline.data.synthetic_shapes.common import _material, _Part, _pick, _u


# ----------------------------------------------------------------------------- Lamp
def _shell(r0: float, r1: float, y0: float, y1: float, t: float = 0.004, sections: int = 28) -> S.Geom:
    """Open lamp shade with a small wall thickness (outer + inner + rims)."""
    prof = [(r0, y0), (r1, y1), (r1 - t, y1), (r0 - t, y0), (r0, y0)]
    return S.lathe(prof, sections, False, False)


def build(rng: np.random.Generator, index: int) -> list[_Part]:
    style = ("table", "desk", "floor")[index % 3]
    base_m = _material(rng, _pick(rng, {"metal": 0.45, "wood": 0.2, "ceramic": 0.2, "plastic": 0.15}))
    body_m = base_m if rng.random() < 0.6 else _material(rng, _pick(rng, {"metal": 0.7, "ceramic": 0.3}))
    bulb_m = _material(rng, "bulb")
    parts: list[_Part] = []
    br = _u(rng, 0.07, 0.13) if style != "floor" else _u(rng, 0.12, 0.2)
    bh = _u(rng, 0.015, 0.04)
    if rng.random() < 0.25 and style != "floor":
        base = S.box((2 * br, bh, 2 * br * _u(rng, 0.7, 1.0)), (0, bh / 2, 0))
    else:
        base = S.frustum(br, br * _u(rng, 0.75, 1.0), (0, 0, 0), (0, bh, 0), 28)
    parts.append(_Part(base, "base", base_m))
    bulb_r = _u(rng, 0.022, 0.04)
    if style == "desk":
        pr = _u(rng, 0.007, 0.012)
        l1, l2 = _u(rng, 0.25, 0.4), _u(rng, 0.22, 0.38)
        a1, a2 = np.radians(_u(rng, 70, 85)), np.radians(_u(rng, -25, 15))
        j0 = np.array([-br * 0.4, bh, 0.0])
        j1 = j0 + l1 * np.array([pm.cos(a1), pm.sin(a1), 0])
        j2 = j1 + l2 * np.array([pm.cos(a2), pm.sin(a2), 0])
        body = S.concat(
            S.cylinder(pr, j0, j1, 10, caps=False),
            S.cylinder(pr, j1, j2, 10, caps=(False, True)),
            S.sphere(pr * 1.8, j1, 6, 10),
            S.cylinder(pr * 1.6, j0, j0 + (0, 0.02, 0), 10, caps=(False, True)),
        )
        parts.append(_Part(body, "body", body_m))
        sh = _u(rng, 0.08, 0.14)
        rt, rb = _u(rng, 0.02, 0.035), _u(rng, 0.06, 0.1)
        tilt = _u(rng, -15, 15)
        shade = S.transform(_shell(rb, rt, -sh, 0.0, 0.003), S.rot_z(tilt), j2)
        parts.append(_Part(shade, "shade", _material(rng, _pick(rng, {"metal": 0.6, "plastic": 0.4}))))
        axis = pm.rotate(np.array([0.0, -1.0, 0.0]), S.rot_z(tilt))
        c = j2 + axis * (sh - bulb_r * _u(rng, 0.3, 1.0))
        parts.append(_Part(S.sphere(bulb_r, c, 8, 12), "bulb", bulb_m))
        return parts
    tall = style == "floor"
    yb = _u(rng, 1.2, 1.6) if tall else _u(rng, 0.25, 0.45)
    pr = _u(rng, 0.008, 0.016)
    if not tall and rng.random() < 0.45:  # a vase-like body with a short neck
        vr, vh = _u(rng, 0.05, 0.09), (yb - bh) * _u(rng, 0.6, 0.85)
        t = np.linspace(0, 1, 8)
        # no bottom disc (it stands on the base) and an open top (the neck continues it)
        vprof = [(vr * (0.55 + 0.45 * pm.sin(np.pi * (0.15 + 0.8 * x))), bh + vh * x) for x in t] + [(pr, bh + vh)]
        body = S.concat(S.lathe(vprof, 24, False, False), S.cylinder(pr, (0, bh + vh, 0), (0, yb, 0), 10, caps=False))
    else:  # a pole standing on the base, its top inside the bulb holder
        body = S.cylinder(pr, (0, bh, 0), (0, yb, 0), 12, caps=False)
    parts.append(_Part(body, "body", body_m))
    c = np.array([0.0, yb + bulb_r * 0.9, 0.0])
    bulb = S.concat(S.sphere(bulb_r, c, 8, 12), S.cylinder(bulb_r * 0.5, (0, yb - 0.005, 0), (0, yb + 0.4 * bulb_r, 0), 10))
    parts.append(_Part(bulb, "bulb", bulb_m))
    shade_m = _material(rng, _pick(rng, {"paper": 0.6, "fabric": 0.3, "plastic": 0.1}))
    if tall and rng.random() < 0.4:  # torchiere: a bowl opening upwards around the bulb
        r0, r1, h = _u(rng, 0.04, 0.07), _u(rng, 0.15, 0.25), _u(rng, 0.1, 0.18)
        y0 = c[1] - bulb_r * 1.2
        parts.append(_Part(_shell(r0, r1, y0, y0 + h), "shade", shade_m))
        return parts
    rb = _u(rng, 0.12, 0.2) * (1.3 if tall else 1.0)
    rt, hs = rb * _u(rng, 0.5, 0.9), _u(rng, 0.15, 0.25) * (1.2 if tall else 1.0)
    y0 = c[1] - bulb_r * _u(rng, 0.3, 2.0)  # sometimes the bulb hangs below the rim
    y0 = min(y0, c[1] + bulb_r * 0.2)
    parts.append(_Part(_shell(rb, rt, y0, y0 + hs), "shade", shade_m))
    return parts
