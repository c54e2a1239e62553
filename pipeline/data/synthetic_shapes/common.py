"""Materials (colour, noise, wood grain) and the part record shared by every shape builder."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from pipeline import portable as pm
from pipeline.data import _shapes as S


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
        return Material("wood", tuple(np.clip(base, 0, 255)), 5.0, rng.uniform(0.04, 0.1), rng.uniform(25, 70), tuple(d / pm.norm(d)))
    if kind == "metal":
        sub = rng.choice(["steel", "dark", "brass", "black", "chrome"], p=[0.35, 0.2, 0.1, 0.2, 0.15])
        rgb = {
            "steel": _hsv(0.6, rng.uniform(0, 0.08), rng.uniform(0.62, 0.82)),
            "dark": _hsv(0.6, rng.uniform(0, 0.1), rng.uniform(0.22, 0.35)),
            "brass": _hsv(rng.uniform(0.1, 0.13), rng.uniform(0.45, 0.6), rng.uniform(0.6, 0.8)),
            "black": _hsv(0, 0, rng.uniform(0.08, 0.17)),
            "chrome": _hsv(0.6, rng.uniform(0, 0.05), rng.uniform(0.8, 0.92)),
        }[str(sub)]
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
        return Material(
            "paper",
            _hsv(rng.uniform(0.05, 0.15) if rng.random() < 0.6 else rng.random(), rng.uniform(0.0, 0.35), rng.uniform(0.78, 0.98)),
            4.0,
        )
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
        return Material("wood", tuple(np.clip(base, 0, 255)), m.noise, rng.uniform(0.04, 0.1), rng.uniform(25, 70), tuple(d / pm.norm(d)))
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
