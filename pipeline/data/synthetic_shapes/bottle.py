"""Bottle: glass or plastic bottles with a lid (screw, sport, dome or pump), sometimes a label sleeve."""

from __future__ import annotations

import numpy as np

from pipeline import portable as pm
from pipeline.data import _shapes as S
from pipeline.data.synthetic_shapes.common import _material, _Part, _pick, _u


# ----------------------------------------------------------------------------- Bottle
def build(rng: np.random.Generator, index: int) -> list[_Part]:
    s = _u(rng, 0.8, 1.3)
    R, Hb = _u(rng, 0.028, 0.05) * s, _u(rng, 0.12, 0.24) * s
    wine = rng.random() < 0.3
    rn = R * (_u(rng, 0.22, 0.35) if wine else _u(rng, 0.3, 0.6))
    sh = R * _u(rng, 0.3, 1.0)
    neck = (_u(rng, 0.05, 0.1) if wine else _u(rng, 0.008, 0.05)) * s
    waist = _u(rng, 0.0, 0.15) if rng.random() < 0.4 else 0.0
    prof = [(0.0, 0.0), (R * 0.92, 0.0), (R, R * 0.08), (R * (1 - waist), Hb * 0.5), (R, Hb * 0.85), (R, Hb)]
    for t in np.linspace(0, 1, 6)[1:]:
        prof.append((rn + (R - rn) * pm.cos(t * np.pi / 2), Hb + sh * pm.sin(t * np.pi / 2)))
    ytop = Hb + sh + neck
    body_m = _material(rng, _pick(rng, {"glass": 0.5, "plastic": 0.5}))
    lid_m = body_m if rng.random() < 0.15 else _material(rng, _pick(rng, {"plastic": 0.7, "metal": 0.3}))
    parts: list[_Part] = []
    if rng.random() < 0.4:  # a paper/plastic label sleeve, still unlabelled body
        y0 = Hb * _u(rng, 0.2, 0.35)
        y1 = Hb * _u(rng, 0.6, 0.8)
        sleeve = S.lathe([(R * 1.004, y0), (R * 1.004, y1)], 24, False, False)
        parts.append(_Part(sleeve, None, _material(rng, _pick(rng, {"paper": 1, "plastic": 1}))))
    style = _pick(rng, {"screw": 0.45, "sport": 0.2, "dome": 0.2, "pump": 0.15})
    lr, lh = rn * _u(rng, 1.08, 1.3), _u(rng, 0.015, 0.035) * s
    yl = ytop - lh * 0.6
    # the neck ends where it enters the lid (the part inside is hidden); the lid's underside
    # is the ring around the neck
    parts.insert(0, _Part(S.lathe(prof + [(rn, yl)], 24, True, False), None, body_m))
    lid = [S.lathe([(rn, yl), (lr, yl), (lr, yl + lh)], 20, False, True)]
    if style == "sport":
        lid.append(S.cylinder(lr * 0.45, (0, yl + lh, 0), (0, yl + lh + lh * 0.8, 0), 14))
    elif style == "dome":
        lid.append(S.sphere(lr, (0, yl + lh, 0), 6, 20, scale=(1.0, _u(rng, 0.3, 0.8), 1.0)))
    elif style == "pump":
        th = _u(rng, 0.02, 0.05) * s
        lid.append(S.cylinder(lr * 0.3, (0, yl + lh, 0), (0, yl + lh + th, 0), 10))
        hw = lr * _u(rng, 1.2, 1.8)
        lid.append(S.box((hw, lh * 0.8, hw), (0, yl + lh + th + lh * 0.4, 0)))
        lid.append(S.cylinder(lr * 0.15, (0, yl + lh + th + lh * 0.4, 0), (0, yl + lh + th + lh * 0.4, hw * 1.2), 8))
    parts.append(_Part(S.concat(*lid), "lid", lid_m))
    return parts
