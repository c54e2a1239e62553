"""Chair: four-legged (plain, slatted back, stretchers) and swivel office chairs (star base, wheels)."""

from __future__ import annotations

import numpy as np

from pipeline import portable as pm
from pipeline.data import _shapes as S
from pipeline.data.synthetic_shapes.common import Material, _hsv, _material, _Part, _pick, _piece, _u


# ----------------------------------------------------------------------------- Chair
def build(rng: np.random.Generator, index: int) -> list[_Part]:
    swivel = index % 4 in (1, 3)
    arms = index % 4 in (1, 2) or rng.random() < 0.15
    W, D, st = _u(rng, 0.42, 0.58), _u(rng, 0.4, 0.52), _u(rng, 0.035, 0.09)
    sh = _u(rng, 0.44, 0.52) if swivel else _u(rng, 0.4, 0.47)
    scheme = _pick(rng, {"office": 0.75, "mixed": 0.25}) if swivel else _pick(rng, {"mono": 0.6, "mixed": 0.4})
    if scheme == "mono":
        m = _material(rng, _pick(rng, {"wood": 0.6, "painted": 0.2, "plastic": 0.2}))
        seat_m = _material(rng, "fabric") if rng.random() < 0.35 else m
        back_m = seat_m if rng.random() < 0.5 else m
        leg_m = arm_m = _piece(rng, m) if rng.random() < 0.5 else m
    elif scheme == "office":
        seat_m = _material(rng, _pick(rng, {"fabric": 0.7, "plastic": 0.3}))
        back_m = seat_m if rng.random() < 0.7 else _material(rng, "fabric")
        leg_m = _material(rng, _pick(rng, {"metal": 0.6, "plastic": 0.4}))
        arm_m = leg_m if rng.random() < 0.5 else _material(rng, "plastic")
    else:
        kinds = {"wood": 1, "metal": 1, "plastic": 1, "fabric": 1, "painted": 0.5}
        seat_m, back_m, leg_m, arm_m = (_material(rng, _pick(rng, kinds)) for _ in range(4))
    parts: list[_Part] = []
    cushion = S.box((W, st, D), (0, sh - st / 2, 0))
    parts.append(_Part(cushion, "seat", seat_m))

    # back: a solid panel or a frame with slats, tilted backwards
    bh, bt, bw, tilt = _u(rng, 0.32, 0.6), _u(rng, 0.025, 0.07), W * _u(rng, 0.78, 1.0), _u(rng, 2, 14)
    solid = rng.random() < 0.6 or scheme == "office"
    gap = _u(rng, 0.0, 0.05) if scheme == "office" else 0.0
    foot = ("-y",) if gap <= 0.01 else ()  # the back's bottom face rests on the seat: hidden
    if solid:
        back = S.box((bw, bh, bt), (0, bh / 2, 0), drop_sides=foot)
    else:
        pw, rail = _u(rng, 0.025, 0.04), _u(rng, 0.05, 0.1)
        pieces = [S.box((pw, bh, bt), (sx * (bw / 2 - pw / 2), bh / 2, 0), drop_sides=foot) for sx in (-1, 1)]
        pieces.append(S.box((bw, rail, bt), (0, bh - rail / 2, 0)))
        n_sl = int(rng.integers(2, 6))
        if rng.random() < 0.5:
            xs = np.linspace(-bw / 2 + pw, bw / 2 - pw, n_sl + 2)[1:-1]
            pieces += [S.box((_u(rng, 0.02, 0.05), bh - rail, bt * 0.6), (x, (bh - rail) / 2, 0)) for x in xs]
        else:
            ys = np.linspace(0.03, bh - rail, n_sl + 1)[:-1]
            pieces += [S.box((bw - 2 * pw, _u(rng, 0.03, 0.06), bt * 0.6), (0, y + 0.02, 0)) for y in ys]
        back = S.concat(*pieces)
    back = S.transform(back, S.rot_x(-tilt), (0, sh + gap, -D / 2 + bt / 2))
    parts.append(_Part(back, "back", back_m))
    if gap > 0.01:  # a connector from under the seat to the back
        parts.append(
            _Part(
                S.beam((0, sh - st, -D / 2 + 0.08), (0, sh + gap + 0.05, -D / 2 - 0.01), 0.06, 0.02, drop_ends=(True, False)), None, leg_m
            )
        )

    if arms:
        ah, aw, at, al = _u(rng, 0.17, 0.26), _u(rng, 0.04, 0.07), _u(rng, 0.025, 0.04), D * _u(rng, 0.65, 0.9)
        out = _u(rng, 0.0, 0.02)
        zf = -D / 2 + al + _u(rng, 0.0, 0.03)
        for sx in (-1, 1):
            x = sx * (W / 2 + aw / 2 + out)
            rest = S.box((aw, at, al), (x, sh + ah, zf - al / 2))
            post_w = aw * _u(rng, 0.5, 0.8)
            if swivel:
                post = S.beam(
                    (x - sx * (aw / 2 + out + 0.06), sh - st * 0.5, -0.02), (x, sh + ah, -0.02), post_w, post_w, drop_ends=(True, True)
                )
            else:
                post = S.beam((x, sh - st, zf - 0.05), (x, sh + ah, zf - 0.05), post_w, post_w, drop_ends=(False, True))
            geoms = [rest, post]
            if rng.random() < 0.4 and not swivel:
                geoms.append(S.beam((x, sh - st, -D / 2 + 0.05), (x, sh + ah, -D / 2 + 0.05), post_w, post_w, drop_ends=(False, True)))
            parts.append(_Part(S.concat(*geoms), "arm", arm_m))

    if not swivel:
        lt, inset, splay = _u(rng, 0.025, 0.045), _u(rng, 0.015, 0.05), _u(rng, 0.0, 0.035)
        round_leg = rng.random() < 0.4
        ytop = sh - st
        tops, bots = [], []
        for sx, sz in ((-1, 1), (1, 1), (-1, -1), (1, -1)):
            top = np.array([sx * (W / 2 - inset - lt / 2), ytop, sz * (D / 2 - inset - lt / 2)])
            bot = top + np.array([sx * splay, -ytop, sz * splay])
            g = (
                S.cylinder(lt / 2, bot, top, 10, caps=(True, False))
                if round_leg
                else S.beam(bot, top, lt, lt, (0, 0, 1), drop_ends=(False, True))
            )
            parts.append(_Part(g, "leg", leg_m))
            tops.append(top)
            bots.append(bot)
        if rng.random() < 0.45:
            t = _u(rng, 0.2, 0.4)
            pts = [b + (tp - b) * t for tp, b in zip(tops, bots)]
            bars = [_stretcher(pts[0], pts[2], lt), _stretcher(pts[1], pts[3], lt)]
            if rng.random() < 0.5:
                bars.append(_stretcher(pts[0], pts[1], lt))
            parts.append(_Part(S.concat(*bars), None, leg_m))
    else:
        rw, ww = _u(rng, 0.022, 0.032), _u(rng, 0.018, 0.028)
        n_legs = 5 if rng.random() < 0.85 else 4
        L, lw, lh = _u(rng, 0.25, 0.32), _u(rng, 0.035, 0.05), _u(rng, 0.025, 0.04)
        tip_y = 2 * rw + 0.02
        hub_y = tip_y + _u(rng, 0.03, 0.06)
        phase = _u(rng, 0, 360 / n_legs)
        hub_r = _u(rng, 0.04, 0.055)
        col_r = _u(rng, 0.02, 0.03)
        wheel_m = _material(rng, "plastic") if rng.random() < 0.3 else Material("plastic", _hsv(0, 0, _u(rng, 0.08, 0.2)), 3.0)
        for k in range(n_legs):
            a = np.radians(phase + k * 360 / n_legs)
            d = np.array([pm.cos(a), 0.0, pm.sin(a)])
            perp = np.array([-d[2], 0.0, d[0]])
            r0 = np.sqrt(max(hub_r**2 - (lw / 2) ** 2, 1e-6)) - 0.002  # the inner end is just inside the hub
            leg = S.beam(d * r0 + (0, hub_y, 0), d * L + (0, tip_y + lh / 2, 0), lw, lh, drop_ends=(True, False))
            parts.append(_Part(leg, "leg", leg_m))
            c = d * (L - 0.02) + (0, rw, 0) - d * _u(rng, 0.0, 0.02)
            wheel = S.concat(
                S.cylinder(rw, c - perp * ww / 2, c + perp * ww / 2, 14),
                S.cylinder(0.007, (c[0], rw * 1.6, c[2]), (c[0], tip_y + 0.005, c[2]), 8, caps=False),
                S.box((ww * 1.3, 0.012, rw * 1.2), (c[0], 2 * rw + 0.004, c[2]), S.rot_y(-np.degrees(a))),
            )
            parts.append(_Part(wheel, "wheel", wheel_m))
        support = S.concat(
            S.cylinder(hub_r, (0, hub_y - 0.025, 0), (0, hub_y + lh + 0.01, 0), 16),
            S.cylinder(col_r, (0, hub_y + lh + 0.01, 0), (0, sh - st - 0.03, 0), 14, caps=False),
            S.box((0.18, 0.03, 0.2), (0, sh - st - 0.015, 0), drop_sides=("+y",)),  # top: under the seat
        )
        parts.append(_Part(support, None, leg_m))
    return parts


def _stretcher(a: np.ndarray, b: np.ndarray, lt: float) -> S.Geom:
    """A bar between two legs of width lt, from surface to surface (ends hidden)."""
    d = (b - a) / pm.norm(b - a)
    return S.beam(a + d * lt / 2, b - d * lt / 2, lt * 0.6, lt * 0.6, drop_ends=(True, True))
