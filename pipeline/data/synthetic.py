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

import zlib
from collections.abc import Callable

import numpy as np

from pipeline import portable as pm
from pipeline.data import _shapes as S
from pipeline.data.cloud import LabelledCloud, make_cloud
from pipeline.data.sampling import sample_triangles
from pipeline.data.synthetic_shapes import bottle, chair, kettle, lamp, storage_furniture, table
from pipeline.data.synthetic_shapes.common import _Part
from pipeline.meta import SMALL_PARTS, part_names

SYNTHETIC_CATEGORIES: tuple[str, ...] = ("Bottle", "Chair", "Kettle", "Lamp", "StorageFurniture", "Table")

#: Small parts get this many times their area share of points, and every labelled part
#: instance gets at least about MIN_INSTANCE_POINTS, so that a knob on a tall wardrobe is
#: still drawn by a few dozen points in a 20k-point cloud.
SMALL_PART_DENSITY = 2.5
MIN_INSTANCE_POINTS = 40
_LIGHT = np.array([0.35, 0.8, 0.5]) / pm.norm(np.array([0.35, 0.8, 0.5]))


# one builder per category, each in its own module of pipeline.data.synthetic_shapes
_BUILDERS: dict[str, Callable[[np.random.Generator, int], list[_Part]]] = {
    "Bottle": bottle.build,
    "Chair": chair.build,
    "Kettle": kettle.build,
    "Lamp": lamp.build,
    "StorageFurniture": storage_furniture.build,
    "Table": table.build,
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
    return [(S.to_trimesh(p.geom), lb, ib, np.clip(np.rint(p.mat.rgb), 0, 255).astype(np.uint8)) for p, lb, ib in zip(parts, lab, ins)]


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
    nrm = e / (pm.norm(e, axis=1, keepdims=True) + 1e-12)
    shade = 0.6 + 0.4 * np.abs(pm.rowdot(nrm[face], _LIGHT))
    base = np.array([p.mat.rgb for p in parts])[po]
    col = base * shade[:, None]
    grain_amp = np.array([p.mat.grain for p in parts])[po]
    if grain_amp.any():
        gdir = np.array([p.mat.grain_dir for p in parts])[po]
        gfreq = np.array([p.mat.grain_freq for p in parts])[po]
        phase = np.sum(pts * gdir, axis=1) * gfreq * 2 * np.pi
        col *= (1 + grain_amp * pm.sin(phase + 0.8 * pm.sin(phase * 0.37)))[:, None]
    noise = np.array([p.mat.noise for p in parts])[po]
    col += rng.normal(size=col.shape) * noise[:, None]
    rgb = np.clip(np.rint(col), 0, 255).astype(np.uint8)
    sem = np.asarray(lab, np.int16)[po]
    inst = np.asarray(ins, np.int32)[po]
    return make_cloud(
        pts,
        rgb,
        sem,
        inst,
        object_id=f"{category}/{int(index):04d}",
        category=category,
        source="synthetic",
        n_parts=len(part_names(category)),
    )


def synthetic_split(n_fewshot: int = 8, n_val: int = 4, n_test: int = 8) -> list[tuple[int, str]]:
    """Indices 0.. in order: the first n_fewshot are "fewshot", then "val", then "test"."""
    out = [(i, "fewshot") for i in range(n_fewshot)]
    out += [(n_fewshot + i, "val") for i in range(n_val)]
    out += [(n_fewshot + n_val + i, "test") for i in range(n_test)]
    return out
