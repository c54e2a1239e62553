"""Embedded default dataset: procedurally built, part-labelled, coloured shapes.

Why: the pipeline must run end to end with no download. Each shape is a set of simple meshes,
one per part instance, using the exact PartNetE part names (SPEC §1.2) and leaving structural
pieces unlabelled (-1) as real data does (cabinet bodies, bottle bodies, chair columns...).
Shapes are +Y up with the front facing +Z (the azimuth-0 camera looks from +Z, SPEC §2.2).
Colours come from materials (wood, metal, fabric...) with random tints, a fixed baked light
and per-point noise, so that a part is not identifiable by colour alone; separately made
pieces of one material (a drawer front and its carcass, a kettle lid and its body) often
differ slightly in tone, and sometimes not at all.

Only surfaces that a scan could see are built, as PartNetE's clouds are fused from RGB-D
renderings (SPEC §1.1): faces where a part rests against another (a leg's top under the
tabletop, a pedestal under the desk top, the back of a drawer front, a bottle neck inside
its cap) are left out; sampled, they would lie on a neighbour's surface with its normal.

Everything is a deterministic function of (category, index, seed). The style of a shape
cycles with `index` so that any few consecutive indices cover every part name.
"""
from __future__ import annotations

import colorsys
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipeline.data import _shapes as S
from pipeline.data.cloud import LabelledCloud, make_cloud
from pipeline.data.sampling import sample_triangles
from pipeline.meta import SMALL_PARTS, part_names

SYNTHETIC_CATEGORIES: tuple[str, ...] = ("Bottle", "Chair", "Kettle", "Lamp", "StorageFurniture", "Table")

#: Small parts get this many times their area share of points, and every labelled part
#: instance gets at least about MIN_INSTANCE_POINTS, so that a knob on a tall wardrobe is
#: still drawn by a few dozen points in a 20k-point cloud.
SMALL_PART_DENSITY = 2.5
MIN_INSTANCE_POINTS = 40
_LIGHT = np.array([0.35, 0.8, 0.5]) / np.linalg.norm([0.35, 0.8, 0.5])


# ----------------------------------------------------------------------------- materials
@dataclass(frozen=True)
class Material:
    kind: str  # wood | metal | fabric | plastic | glass | ceramic | paper | painted | bulb
    rgb: tuple[float, float, float]
    noise: float  # std of per-point colour noise (0..255 units)
    grain: float = 0.0  # amplitude of wood-grain stripes
    grain_freq: float = 0.0
    grain_dir: tuple[float, float, float] = (1.0, 0.0, 0.0)


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1)))
    return (r * 255, g * 255, b * 255)


_WOODS = ((150, 100, 60), (190, 140, 90), (120, 78, 48), (212, 172, 122), (92, 60, 40), (228, 200, 160), (170, 110, 70))


def _material(rng: np.random.Generator, kind: str) -> Material:
    if kind == "wood":
        base = np.array(_WOODS[rng.integers(len(_WOODS))], float) * rng.uniform(0.88, 1.1) + rng.uniform(-12, 12, 3)
        d = rng.normal(size=3)
        d[1] *= 0.3
        return Material("wood", tuple(np.clip(base, 0, 255)), 5.0, rng.uniform(0.04, 0.1),
                        rng.uniform(25, 70), tuple(d / np.linalg.norm(d)))
    if kind == "metal":
        sub = rng.choice(["steel", "dark", "brass", "black", "chrome"], p=[0.35, 0.2, 0.1, 0.2, 0.15])
        rgb = {"steel": _hsv(0.6, rng.uniform(0, 0.08), rng.uniform(0.62, 0.82)),
               "dark": _hsv(0.6, rng.uniform(0, 0.1), rng.uniform(0.22, 0.35)),
               "brass": _hsv(rng.uniform(0.1, 0.13), rng.uniform(0.45, 0.6), rng.uniform(0.6, 0.8)),
               "black": _hsv(0, 0, rng.uniform(0.08, 0.17)),
               "chrome": _hsv(0.6, rng.uniform(0, 0.05), rng.uniform(0.8, 0.92))}[str(sub)]
        return Material("metal", rgb, 4.0)
    if kind == "fabric":
        return Material("fabric", _hsv(rng.random(), rng.uniform(0.15, 0.75), rng.uniform(0.2, 0.85)), 8.0)
    if kind == "plastic":
        u = rng.random()
        if u < 0.15:
            rgb = _hsv(0, 0, rng.uniform(0.86, 0.96))
        elif u < 0.35:
            rgb = _hsv(0, 0, rng.uniform(0.08, 0.2))
        else:
            rgb = _hsv(rng.random(), rng.uniform(0.35, 0.95), rng.uniform(0.35, 0.95))
        return Material("plastic", rgb, 3.0)
    if kind == "glass":
        rgb = [(190, 215, 222), (70, 130, 82), (150, 85, 35), (95, 135, 190), (225, 230, 232)][rng.integers(5)]
        return Material("glass", tuple(np.clip(np.array(rgb, float) + rng.uniform(-12, 12, 3), 0, 255)), 4.0)
    if kind == "ceramic":
        return Material("ceramic", _hsv(rng.random(), rng.uniform(0, 0.35), rng.uniform(0.72, 0.97)), 3.0)
    if kind == "paper":
        return Material("paper", _hsv(rng.uniform(0.05, 0.15) if rng.random() < 0.6 else rng.random(),
                                      rng.uniform(0.0, 0.35), rng.uniform(0.78, 0.98)), 4.0)
    if kind == "painted":
        return Material("painted", _hsv(rng.random(), rng.uniform(0, 0.5), rng.uniform(0.3, 0.95)), 3.0)
    if kind == "bulb":
        return Material("bulb", _hsv(rng.uniform(0.1, 0.16), rng.uniform(0.02, 0.15), rng.uniform(0.95, 1.0)), 2.0)
    raise ValueError(kind)


def _piece(rng: np.random.Generator, m: Material) -> Material:
    """Another piece of the same material: a different board of the same wood (tone and grain
    differ), or a panel of the same paint/plastic/metal whose finish differs slightly."""
    if m.kind == "wood":
        base = np.asarray(m.rgb) * rng.uniform(0.86, 1.14) + rng.uniform(-10, 10, 3)
        d = rng.normal(size=3)
        d[1] *= 0.3
        return Material("wood", tuple(np.clip(base, 0, 255)), m.noise, rng.uniform(0.04, 0.1), rng.uniform(25, 70),
                        tuple(d / np.linalg.norm(d)))
    base = np.asarray(m.rgb) * rng.uniform(0.93, 1.07) + rng.uniform(-4, 4, 3)
    return Material(m.kind, tuple(np.clip(base, 0, 255)), m.noise, m.grain, m.grain_freq, m.grain_dir)


def _pick(rng: np.random.Generator, kinds: dict[str, float]) -> str:
    names = list(kinds)
    p = np.array([kinds[k] for k in names], float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


# ----------------------------------------------------------------------------- parts
@dataclass
class _Part:
    geom: S.Geom
    name: str | None  # PartNetE part name or None (unlabelled)
    mat: Material


def _u(rng: np.random.Generator, a: float, b: float) -> float:
    return float(rng.uniform(a, b))


def _handle(rng: np.random.Generator, style: str, centre, z: float, orient: str, length: float,
            size: dict[str, float]) -> S.Geom:
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
    return {"protrude": _u(rng, 0.025, 0.045), "knob_r": _u(rng, 0.015, 0.025), "bar_r": _u(rng, 0.006, 0.01),
            "overhang": _u(rng, 0.0, 0.12), "pull_w": _u(rng, 0.018, 0.03)}


# ----------------------------------------------------------------------------- Chair
def _chair(rng: np.random.Generator, index: int) -> list[_Part]:
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
        parts.append(_Part(S.beam((0, sh - st, -D / 2 + 0.08), (0, sh + gap + 0.05, -D / 2 - 0.01), 0.06, 0.02,
                                  drop_ends=(True, False)), None, leg_m))

    if arms:
        ah, aw, at, al = _u(rng, 0.17, 0.26), _u(rng, 0.04, 0.07), _u(rng, 0.025, 0.04), D * _u(rng, 0.65, 0.9)
        out = _u(rng, 0.0, 0.02)
        zf = -D / 2 + al + _u(rng, 0.0, 0.03)
        for sx in (-1, 1):
            x = sx * (W / 2 + aw / 2 + out)
            rest = S.box((aw, at, al), (x, sh + ah, zf - al / 2))
            post_w = aw * _u(rng, 0.5, 0.8)
            if swivel:
                post = S.beam((x - sx * (aw / 2 + out + 0.06), sh - st * 0.5, -0.02), (x, sh + ah, -0.02), post_w, post_w,
                              drop_ends=(True, True))
            else:
                post = S.beam((x, sh - st, zf - 0.05), (x, sh + ah, zf - 0.05), post_w, post_w, drop_ends=(False, True))
            geoms = [rest, post]
            if rng.random() < 0.4 and not swivel:
                geoms.append(S.beam((x, sh - st, -D / 2 + 0.05), (x, sh + ah, -D / 2 + 0.05), post_w, post_w,
                                    drop_ends=(False, True)))
            parts.append(_Part(S.concat(*geoms), "arm", arm_m))

    if not swivel:
        lt, inset, splay = _u(rng, 0.025, 0.045), _u(rng, 0.015, 0.05), _u(rng, 0.0, 0.035)
        round_leg = rng.random() < 0.4
        ytop = sh - st
        tops, bots = [], []
        for sx, sz in ((-1, 1), (1, 1), (-1, -1), (1, -1)):
            top = np.array([sx * (W / 2 - inset - lt / 2), ytop, sz * (D / 2 - inset - lt / 2)])
            bot = top + np.array([sx * splay, -ytop, sz * splay])
            g = (S.cylinder(lt / 2, bot, top, 10, caps=(True, False)) if round_leg
                 else S.beam(bot, top, lt, lt, (0, 0, 1), drop_ends=(False, True)))
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
            d = np.array([np.cos(a), 0.0, np.sin(a)])
            perp = np.array([-d[2], 0.0, d[0]])
            r0 = np.sqrt(max(hub_r ** 2 - (lw / 2) ** 2, 1e-6)) - 0.002  # the inner end is just inside the hub
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
    d = (b - a) / np.linalg.norm(b - a)
    return S.beam(a + d * lt / 2, b - d * lt / 2, lt * 0.6, lt * 0.6, drop_ends=(True, True))


# ----------------------------------------------------------------------------- fronts
def _fronts(rng: np.random.Generator, cells: list[tuple[str, float, float, float, float, str]], z: float,
            front_m: Material, handle_m: Material, hstyle: str, hsize: dict[str, float]) -> list[_Part]:
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


def _column_cells(rng: np.random.Generator, mode: str, x0: float, x1: float, y0: float, y1: float
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


def _overlay(cells: list[tuple[str, float, float, float, float, str]], x0: float, x1: float, y0: float, y1: float,
             ov: float) -> list[tuple[str, float, float, float, float, str]]:
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


# ----------------------------------------------------------------------------- StorageFurniture
def _storage(rng: np.random.Generator, index: int) -> list[_Part]:
    mode = ("drawers", "doors", "mixed")[index % 3]
    W, D = _u(rng, 0.45, 1.4), _u(rng, 0.35, 0.6)
    H = _u(rng, 0.5, 1.3) if mode == "drawers" else _u(rng, 0.6, 1.9)
    body_m = _material(rng, _pick(rng, {"wood": 0.55, "painted": 0.45}))
    finish = rng.random()  # fronts: the carcass's exact finish, another piece of it, or another material
    front_m = body_m if finish < 0.3 else _piece(rng, body_m) if finish < 0.5 else \
        _material(rng, _pick(rng, {"wood": 0.5, "painted": 0.5}))
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
        feet = [S.cylinder(fr, (sx * (W / 2 - 0.04), 0, sz * (D / 2 - 0.04)), (sx * (W / 2 - 0.04), hp, sz * (D / 2 - 0.04)), 10,
                           caps=(True, False))
                for sx in (-1, 1) for sz in (-1, 1)]
        parts.append(_Part(S.concat(*feet), None, handle_m if rng.random() < 0.5 else body_m))
    parts.append(_Part(S.box((W, H, D), (0, hp + H / 2, 0), drop_sides=("+z",)), None, body_m))
    b = _u(rng, 0.015, 0.03)
    ov = b * _u(rng, 0.3, 0.45)  # partial overlay: fronts cover this much of the face frame
    zf = D / 2
    def member(size, centre) -> S.Geom:  # face-frame board; its back is inside the carcass
        return S.box(size, centre, drop_sides=("-z",))

    frame = [member((W, b, 0.018), (0, hp + b / 2, zf - 0.009)), member((W, b, 0.018), (0, hp + H - b / 2, zf - 0.009)),
             member((b, H, 0.018), (-W / 2 + b / 2, hp + H / 2, zf - 0.009)),
             member((b, H, 0.018), (W / 2 - b / 2, hp + H / 2, zf - 0.009))]
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


# ----------------------------------------------------------------------------- Table
def _table(rng: np.random.Generator, index: int) -> list[_Part]:
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
            ped = S.concat(S.cylinder(cr, (0, 0.03, 0), (0, H - tt, 0), 16, caps=False),
                           S.frustum(br, br * 0.7, (0, 0, 0), (0, 0.035, 0), 24))
            parts.append(_Part(ped, "leg", leg_m))
        else:
            n = int(rng.integers(3, 5))
            lt, r_top, r_bot = _u(rng, 0.03, 0.05), R * _u(rng, 0.35, 0.6), R * _u(rng, 0.6, 0.85)
            ph = _u(rng, 0, 360)
            for k in range(n):
                a = np.radians(ph + 360 * k / n)
                d = np.array([np.cos(a), 0, np.sin(a)])
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
        g = (S.cylinder(lt / 2, (x, yb, z), (x, ytop, z), 12, caps=(True, False)) if round_leg
             else S.box((lt, ytop - yb, lt), (x, (yb + ytop) / 2, z), drop_sides=("+y",)))
        parts.append(_Part(g, "leg", leg_m))
        if rw:
            ww = _u(rng, 0.02, 0.03)
            wheel = S.concat(S.cylinder(rw, (x - ww / 2, rw, z), (x + ww / 2, rw, z), 14),
                             S.box((ww * 1.4, yb - rw, lt * 0.8), (x, rw + (yb - rw) / 2, z), drop_sides=("+y",)))
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
        apron = S.concat(_apron(-ax, ax, y0, ytop, za, at, holes),
                         _apron(-ax, ax, y0, ytop, za, at, [], back=True),
                         S.transform(side_board, shift=(-xs + at / 2, ytop - apron_h / 2, 0)),
                         S.transform(side_board, shift=(xs - at / 2, ytop - apron_h / 2, 0)))
        parts.append(_Part(apron, None, apron_m))
    return parts


#: How far table aprons sit back from the legs' outer faces.
_APRON_SETBACK = 0.008


def _apron(x0: float, x1: float, y0: float, y1: float, z: float, t: float, holes: list[tuple[float, float]],
           back: bool = False) -> S.Geom:
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


# ----------------------------------------------------------------------------- Bottle
def _bottle(rng: np.random.Generator, index: int) -> list[_Part]:
    s = _u(rng, 0.8, 1.3)
    R, Hb = _u(rng, 0.028, 0.05) * s, _u(rng, 0.12, 0.24) * s
    wine = rng.random() < 0.3
    rn = R * (_u(rng, 0.22, 0.35) if wine else _u(rng, 0.3, 0.6))
    sh = R * _u(rng, 0.3, 1.0)
    neck = (_u(rng, 0.05, 0.1) if wine else _u(rng, 0.008, 0.05)) * s
    waist = _u(rng, 0.0, 0.15) if rng.random() < 0.4 else 0.0
    prof = [(0.0, 0.0), (R * 0.92, 0.0), (R, R * 0.08), (R * (1 - waist), Hb * 0.5), (R, Hb * 0.85), (R, Hb)]
    for t in np.linspace(0, 1, 6)[1:]:
        prof.append((rn + (R - rn) * np.cos(t * np.pi / 2), Hb + sh * np.sin(t * np.pi / 2)))
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


def _kettle(rng: np.random.Generator, index: int) -> list[_Part]:
    R, Hk = _u(rng, 0.07, 0.11), _u(rng, 0.13, 0.22)
    shape = _pick(rng, {"bulb": 1, "cyl": 1, "cone": 1})
    ys = np.linspace(0, 1, 11)
    if shape == "bulb":
        top = _u(rng, 0.45, 0.7)
        rr = 0.88 + 0.12 * np.sin(np.clip(ys / 0.35, 0, 1) * np.pi / 2)
        rr = np.where(ys > 0.35, 1 - (1 - top) * (np.clip(ys - 0.35, 0, None) / 0.65) ** 1.6, rr)
    elif shape == "cyl":
        rr = 1 - (1 - _u(rng, 0.8, 0.95)) * ys
    else:
        rr = 1 - (1 - _u(rng, 0.45, 0.6)) * ys ** 0.9
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
    lid_prof += [((rl + lip * 0.3) * np.cos(a * np.pi / 2), y0 + rim_h + dome * np.sin(a * np.pi / 2)) for a in t]
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
        ctrl = np.array([[-radius_at(y1) + 0.004, y1, 0], [xo + 0.01, y1 + 0.01, 0], [xo, (y1 + y2) / 2, 0],
                         [xo + 0.015, y2, 0], [-radius_at(y2) + 0.004, y2, 0]])
        handle = S.tube(_smooth(ctrl, 3), hr, 10)
    else:  # top handle arching front to back over the lid, feet on the shoulder ring
        yf = ytop + rise * (Rt - zr) / max(Rt - rl, 1e-6) - 0.003
        ah = ylid - yf + 2 * kr + _u(rng, 0.05, 0.11)
        a = np.linspace(0, np.pi, 16)
        path = np.stack([np.zeros_like(a), yf + ah * np.sin(a), zr * np.cos(a)], 1)
        handle = S.tube(path, hr, 10)
    parts.append(_Part(handle, "handle", handle_m))
    # spout on +X, rising forward
    y_s = base_h + Hk * _u(rng, 0.2, 0.45)
    L, up = _u(rng, 0.06, 0.12), _u(rng, 0.06, 0.14)
    up = min(up, ytop + 0.02 - y_s)
    x0 = min(radius_at(y_s - 0.02), radius_at(y_s + 0.02)) - 0.004  # the spout starts at the wall
    ctrl = np.array([[x0, y_s, 0], [x0 + 0.45 * L, y_s + 0.1 * up, 0], [x0 + 0.8 * L, y_s + 0.5 * up, 0],
                     [x0 + L, y_s + up, 0]])
    path = _smooth(ctrl, 2)
    rs0 = _u(rng, 0.013, 0.022)
    rad = np.linspace(rs0, rs0 * _u(rng, 0.45, 0.7), len(path))
    spout_m = body_m if rng.random() < 0.85 else _material(rng, "metal")
    parts.append(_Part(S.tube(path, rad, 12, caps=False), "spout", spout_m))
    return parts


# ----------------------------------------------------------------------------- Lamp
def _shell(r0: float, r1: float, y0: float, y1: float, t: float = 0.004, sections: int = 28) -> S.Geom:
    """Open lamp shade with a small wall thickness (outer + inner + rims)."""
    prof = [(r0, y0), (r1, y1), (r1 - t, y1), (r0 - t, y0), (r0, y0)]
    return S.lathe(prof, sections, False, False)


def _lamp(rng: np.random.Generator, index: int) -> list[_Part]:
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
        j1 = j0 + l1 * np.array([np.cos(a1), np.sin(a1), 0])
        j2 = j1 + l2 * np.array([np.cos(a2), np.sin(a2), 0])
        body = S.concat(S.cylinder(pr, j0, j1, 10, caps=False), S.cylinder(pr, j1, j2, 10, caps=(False, True)),
                        S.sphere(pr * 1.8, j1, 6, 10), S.cylinder(pr * 1.6, j0, j0 + (0, 0.02, 0), 10, caps=(False, True)))
        parts.append(_Part(body, "body", body_m))
        sh = _u(rng, 0.08, 0.14)
        rt, rb = _u(rng, 0.02, 0.035), _u(rng, 0.06, 0.1)
        tilt = _u(rng, -15, 15)
        shade = S.transform(_shell(rb, rt, -sh, 0.0, 0.003), S.rot_z(tilt), j2)
        parts.append(_Part(shade, "shade", _material(rng, _pick(rng, {"metal": 0.6, "plastic": 0.4}))))
        axis = S.rot_z(tilt) @ np.array([0.0, -1.0, 0.0])
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
        vprof = [(vr * (0.55 + 0.45 * np.sin(np.pi * (0.15 + 0.8 * x))), bh + vh * x) for x in t] + [(pr, bh + vh)]
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


_BUILDERS: dict[str, Callable[[np.random.Generator, int], list[_Part]]] = {
    "Bottle": _bottle, "Chair": _chair, "Kettle": _kettle, "Lamp": _lamp,
    "StorageFurniture": _storage, "Table": _table,
}


# ----------------------------------------------------------------------------- API
def _nonneg(x: int) -> int:
    x = int(x)
    return 2 * x if x >= 0 else -2 * x - 1


def _rngs(category: str, index: int, seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent generators for the shape and for point sampling (so n_points never
    changes the geometry)."""
    ss = np.random.SeedSequence([_nonneg(seed), zlib.crc32(category.encode()), _nonneg(index)])
    a, b = ss.spawn(2)
    return np.random.default_rng(a), np.random.default_rng(b)


def _check_category(category: str) -> None:
    if category not in _BUILDERS:
        raise ValueError(f"no synthetic generator for {category!r}; available: {', '.join(SYNTHETIC_CATEGORIES)}")


def _parts(category: str, index: int, seed: int) -> tuple[list[_Part], np.random.Generator]:
    _check_category(category)
    shape_rng, sample_rng = _rngs(category, index, seed)
    parts = [p for p in _BUILDERS[category](shape_rng, int(index)) if len(p.geom[1])]
    return parts, sample_rng


def _labels(category: str, parts: list[_Part]) -> tuple[list[int], list[int]]:
    names = part_names(category)
    lab, ins, k = [], [], 0
    for p in parts:
        if p.name is None:
            lab.append(-1)
            ins.append(-1)
        else:
            lab.append(names.index(p.name))
            ins.append(k)
            k += 1
    return lab, ins


def generate_meshes(category: str, index: int, seed: int = 0) -> list[tuple[object, int, int, np.ndarray]]:
    """One trimesh per part instance: (mesh, part label or -1, instance id or -1, base rgb uint8)."""
    parts, _ = _parts(category, index, seed)
    lab, ins = _labels(category, parts)
    return [(S.to_trimesh(p.geom), lb, ib, np.clip(np.rint(p.mat.rgb), 0, 255).astype(np.uint8))
            for p, lb, ib in zip(parts, lab, ins)]


def _densities(parts: list[_Part], tris: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    """Per-part sampling density multipliers (see SMALL_PART_DENSITY, MIN_INSTANCE_POINTS)."""
    from pipeline.data.sampling import triangle_areas

    area = np.bincount(owner, weights=triangle_areas(tris), minlength=len(parts))
    dens = np.array([SMALL_PART_DENSITY if p.name in SMALL_PARTS else 1.0 for p in parts])
    labelled = np.array([p.name is not None for p in parts])
    total = float((area * dens).sum())
    if total > 0 and n > 0:
        expected = n * area * dens / total
        low = labelled & (expected < MIN_INSTANCE_POINTS) & (area > 0)
        # at most a quarter of the points go to this boost, so tiny clouds stay area-weighted
        if low.any() and low.sum() * MIN_INSTANCE_POINTS <= n / 4:
            dens[low] *= MIN_INSTANCE_POINTS / expected[low]
    return dens


def generate_shape(category: str, index: int, n_points: int = 20000, seed: int = 0) -> LabelledCloud:
    """Sample `n_points` coloured, labelled points from synthetic shape `index` of `category`."""
    parts, rng = _parts(category, index, seed)
    lab, ins = _labels(category, parts)
    tris = np.concatenate([p.geom[0][p.geom[1]] for p in parts])
    nf = [len(p.geom[1]) for p in parts]
    owner = np.repeat(np.arange(len(parts)), nf)
    dens = _densities(parts, tris, owner, int(n_points))
    pts, face, _ = sample_triangles(tris, int(n_points), rng, weights=dens[owner])
    po = owner[face]
    # baked lighting from the face normal (two-sided: thin shells have no outside)
    e = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    nrm = e / (np.linalg.norm(e, axis=1, keepdims=True) + 1e-12)
    shade = 0.6 + 0.4 * np.abs(nrm[face] @ _LIGHT)
    base = np.array([p.mat.rgb for p in parts])[po]
    col = base * shade[:, None]
    grain_amp = np.array([p.mat.grain for p in parts])[po]
    if grain_amp.any():
        gdir = np.array([p.mat.grain_dir for p in parts])[po]
        gfreq = np.array([p.mat.grain_freq for p in parts])[po]
        phase = np.sum(pts * gdir, axis=1) * gfreq * 2 * np.pi
        col *= (1 + grain_amp * np.sin(phase + 0.8 * np.sin(phase * 0.37)))[:, None]
    noise = np.array([p.mat.noise for p in parts])[po]
    col += rng.normal(size=col.shape) * noise[:, None]
    rgb = np.clip(np.rint(col), 0, 255).astype(np.uint8)
    sem = np.asarray(lab, np.int16)[po]
    inst = np.asarray(ins, np.int32)[po]
    return make_cloud(pts, rgb, sem, inst, object_id=f"{category}/{int(index):04d}", category=category,
                      source="synthetic", n_parts=len(part_names(category)))


def synthetic_split(n_fewshot: int = 8, n_val: int = 4, n_test: int = 8) -> list[tuple[int, str]]:
    """Indices 0.. in order: the first n_fewshot are "fewshot", then "val", then "test"."""
    out = [(i, "fewshot") for i in range(n_fewshot)]
    out += [(n_fewshot + i, "val") for i in range(n_val)]
    out += [(n_fewshot + n_val + i, "test") for i in range(n_test)]
    return out
