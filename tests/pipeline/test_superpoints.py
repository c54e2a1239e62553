"""Superpoints: valid partition, deterministic, pure on part-labelled shapes, robust."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from pipeline.superpoints import compute_superpoints, greedy_l0_partition, merge_small_components, normal_embedding, relabel_by_first_point


def purity(sp: np.ndarray, labels: np.ndarray) -> float:
    """Share of points whose superpoint's majority label is their own label."""
    lab = np.unique(labels, return_inverse=True)[1]
    m = np.zeros((sp.max() + 1, lab.max() + 1), np.int64)
    np.add.at(m, (sp, lab), 1)
    return float(m.max(axis=1).sum() / len(sp))


# --------------------------------------------------------------------------- fixtures


def _convex_parts(kind: str):
    """Labelled convex primitives (trimesh) of a few furniture-like objects."""
    import trimesh

    def box(size, centre):
        m = trimesh.creation.box(size)
        m.apply_translation(centre)
        return m

    def cyl(r, p0, p1, sections=32):
        return trimesh.creation.cylinder(radius=r, segment=np.array([p0, p1], float), sections=sections)

    if kind == "chair":
        parts = [box((0.8, 0.1, 0.8), (0, 0, 0)), box((0.8, 0.8, 0.1), (0, 0.45, -0.35))]
        parts += [cyl(0.04, (x, -0.75, z), (x, -0.05, z)) for x in (-0.33, 0.33) for z in (-0.33, 0.33)]
        return parts, [0, 1, 2, 2, 2, 2]
    if kind == "table":
        parts = [box((1.4, 0.08, 0.8), (0, 0.3, 0))]
        parts += [box((0.08, 0.7, 0.08), (x, -0.09, z)) for x in (-0.6, 0.6) for z in (-0.3, 0.3)]
        return parts, [0, 1, 1, 1, 1]
    if kind == "kettle":
        parts = [
            cyl(0.4, (0, -0.35, 0), (0, 0.35, 0), 48),
            cyl(0.22, (0, 0.35, 0), (0, 0.43, 0), 48),
            box((0.08, 0.08, 0.5), (0, 0.6, 0)),
            box((0.08, 0.3, 0.08), (0, 0.48, 0.21)),
            box((0.08, 0.3, 0.08), (0, 0.48, -0.21)),
            cyl(0.06, (0.3, 0.0, 0), (0.7, 0.35, 0), 24),
        ]
        return parts, [0, 1, 2, 2, 2, 3]
    parts = [box((1.0, 1.2, 0.6), (0, 0, 0))]  # cabinet: body, 4 doors, 4 handles
    parts += [box((0.44, 0.5, 0.04), (x, y, 0.32)) for x in (-0.24, 0.24) for y in (-0.28, 0.28)]
    parts += [box((0.2, 0.04, 0.06), (x, y + 0.15, 0.37)) for x in (-0.24, 0.24) for y in (-0.28, 0.28)]
    return parts, [0, 1, 1, 1, 1, 2, 2, 2, 2]


def primitive_object(kind: str, n: int = 10000, seed: int = 0, colour: bool = True):
    """Surface samples of the visible surface of the union of labelled convex parts (points
    inside or on another part are dropped), one noisy colour per label, normalised."""
    import trimesh

    parts, labels = _convex_parts(kind)
    rng = np.random.default_rng(seed)
    palette = np.array([[200, 60, 60], [60, 160, 60], [60, 60, 200], [200, 200, 60]])
    area = np.array([p.area for p in parts])
    xs, ls = [], []
    for i, p in enumerate(parts):
        pts, _ = trimesh.sample.sample_surface(p, int(np.ceil(area[i] / area.sum() * n * 1.6)), seed=seed * 97 + i)
        keep = np.ones(len(pts), bool)
        for j, q in enumerate(parts):
            if j != i:  # convex q: inside or on it iff on the inner side of every face plane
                side = pts @ q.face_normals.T - np.einsum("ij,ij->i", q.face_normals, q.triangles[:, 0])
                keep &= ~(side <= 1e-4).all(axis=1)
        xs.append(pts[keep])
        ls.append(np.full(keep.sum(), labels[i]))
    xyz, lab = np.concatenate(xs), np.concatenate(ls)
    sel = np.sort(rng.choice(len(xyz), n, replace=False))
    xyz, lab = xyz[sel], lab[sel]
    base = palette[lab] if colour else np.full((n, 3), 128)
    rgb = np.clip(base + rng.normal(0, 6, (n, 3)), 0, 255).astype(np.uint8)
    xyz = xyz - xyz.mean(0)
    return (xyz / np.linalg.norm(xyz, axis=1).max()).astype(np.float32), rgb, lab


def _check_partition(sp: np.ndarray, n: int) -> int:
    assert sp.shape == (n,) and sp.dtype == np.int32
    s = int(sp.max()) + 1
    assert sp.min() == 0 and np.array_equal(np.unique(sp), np.arange(s))
    first = np.unique(sp, return_index=True)[1]
    assert np.all(np.diff(first) > 0)  # numbered in order of first point
    return s


# --------------------------------------------------------------------------- features


def test_normal_embedding_is_sign_invariant_sine_distance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 3))
    b = rng.normal(size=(50, 3))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    ea, eb = normal_embedding(a), normal_embedding(b)
    np.testing.assert_allclose(ea, normal_embedding(-a))
    sin = np.sqrt(1 - np.einsum("ij,ij->i", a, b) ** 2)
    np.testing.assert_allclose(np.linalg.norm(ea - eb, axis=1), sin, atol=1e-12)


def test_normals_of_a_plane_and_a_sphere():
    rng = np.random.default_rng(1)
    plane = np.c_[rng.uniform(-1, 1, (2000, 2)), np.zeros(2000)][:, [0, 2, 1]]  # y = 0
    res = compute_superpoints(plane + [0, 0.3, 0], None)
    assert res.normals.shape == (2000, 3) and res.normals.dtype == np.float32
    np.testing.assert_allclose(np.abs(res.normals[:, 1]), 1.0, atol=1e-5)
    sphere = rng.normal(size=(3000, 3))
    sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
    cos = np.einsum("ij,ij->i", compute_superpoints(sphere, None).normals, sphere)
    assert (cos > 0).all()  # oriented outwards
    assert (cos > 0.95).mean() > 0.99  # (a few isolated samples have < 5 neighbours within 0.1)


# --------------------------------------------------------------------------- partition


def test_partition_covers_all_points_contiguous_and_deterministic():
    xyz, rgb, lab = primitive_object("chair", n=4000)
    a = compute_superpoints(xyz, rgb)
    b = compute_superpoints(xyz.copy(), rgb.copy())
    s = _check_partition(a.sp, len(xyz))
    np.testing.assert_array_equal(a.sp, b.sp)
    np.testing.assert_array_equal(a.normals, b.normals)
    assert a.n_superpoints == s > 3
    assert np.bincount(a.sp).min() > 10  # SPEC §5.6 minimum size


def test_two_separate_uniform_patches_give_two_superpoints():
    rng = np.random.default_rng(2)
    p = rng.uniform(-0.3, 0.3, (400, 3)) * [1, 0, 1]
    xyz = np.concatenate([p + [-0.5, 0, 0], p + [0.5, 0, 0]])
    rgb = np.repeat(np.array([[250, 0, 0], [0, 0, 250]], np.uint8), 400, axis=0)
    res = compute_superpoints(xyz, rgb)
    assert res.n_superpoints == 2
    assert purity(res.sp, np.repeat([0, 1], 400)) == 1.0


def test_colour_boundary_on_a_plane_is_kept():
    rng = np.random.default_rng(3)
    xyz = np.c_[rng.uniform(-1, 1, 3000), np.zeros(3000), rng.uniform(-1, 1, 3000)]
    lab = (xyz[:, 0] > 0).astype(int)
    rgb = np.where(lab[:, None] == 1, [230, 230, 40], [40, 40, 230]).astype(np.uint8)
    res = compute_superpoints(xyz, rgb)
    assert purity(res.sp, lab) > 0.99
    assert res.n_superpoints <= 10


@pytest.mark.parametrize("kind", ["chair", "table", "kettle", "cabinet"])
def test_purity_and_size_on_primitive_objects(kind):
    xyz, rgb, lab = primitive_object(kind, n=10000)
    res = compute_superpoints(xyz, rgb)
    _check_partition(res.sp, len(xyz))
    # measured: chair .985 table .994 kettle .988 cabinet .947 (tiny handles); <= 1.0 sp/100 pts
    assert purity(res.sp, lab) >= {"cabinet": 0.93}.get(kind, 0.975)
    assert res.n_superpoints <= 0.011 * len(xyz)


def test_purity_bar_on_primitive_objects_on_average():
    pur, cnt = [], []
    for kind in ("chair", "table", "kettle", "cabinet"):
        xyz, rgb, lab = primitive_object(kind, n=10000, seed=1)
        res = compute_superpoints(xyz, rgb)
        pur.append(purity(res.sp, lab))
        cnt.append(res.n_superpoints / len(xyz))
    assert np.mean(pur) >= 0.97
    assert np.mean(cnt) <= 0.01


@pytest.mark.skipif(importlib.util.find_spec("pipeline.data.synthetic") is None, reason="pipeline.data.synthetic not available")
def test_purity_on_generated_synthetic_shapes():
    """The acceptance bar on the embedded data set: purity >= 0.97 with <= 1 superpoint per
    100 points on average, at the data stage's default 20k points per shape."""
    from pipeline.data.synthetic import generate_shape

    pur, cnt = [], []
    for cat in ("Chair", "Table", "StorageFurniture", "Bottle", "Kettle", "Lamp"):
        for index in (0, 1):
            c = generate_shape(cat, index, n_points=20000, seed=0)
            res = compute_superpoints(c.xyz, c.rgb)
            _check_partition(res.sp, len(c.xyz))
            pur.append(purity(res.sp, c.sem))
            cnt.append(res.n_superpoints / len(c.xyz))
    # Measured (indices 0-1, 20k points): mean purity 0.982 (lowest shape 0.958, a table
    # whose apron meets the top in a same-colour crease), 0.85 superpoints per 100 points.
    # Test indices 12-19: 0.981 at 0.81 per 100.
    assert np.mean(pur) >= 0.97
    assert min(pur) >= 0.95
    assert np.mean(cnt) <= 0.01


# --------------------------------------------------------------------------- degenerate


@pytest.mark.parametrize("n", [1, 2, 5, 11, 25])
def test_tiny_clouds(n):
    xyz = np.random.default_rng(n).normal(size=(n, 3)).astype(np.float32)
    res = compute_superpoints(xyz, np.full((n, 3), 7, np.uint8))
    s = _check_partition(res.sp, n)
    assert s == 1 if n <= 10 else s >= 1
    assert np.isfinite(res.normals).all()


def test_all_points_equal_and_duplicates_and_no_colour():
    same = compute_superpoints(np.ones((40, 3)), None)
    assert _check_partition(same.sp, 40) == 1
    np.testing.assert_allclose(np.linalg.norm(same.normals, axis=1), 1.0, atol=1e-6)
    xyz, rgb, _ = primitive_object("table", n=1500)
    dup = compute_superpoints(np.concatenate([xyz, xyz]), np.concatenate([rgb, rgb]))
    s = _check_partition(dup.sp, 3000)
    assert s >= 2
    np.testing.assert_array_equal(dup.sp[:1500], dup.sp[1500:])  # a point and its copy stay together
    grey = compute_superpoints(xyz, None)
    _check_partition(grey.sp, 1500)
    const = compute_superpoints(xyz, np.full_like(rgb, 90))
    np.testing.assert_array_equal(const.sp, grey.sp)  # constant colour = no colour


def test_empty_cloud_and_bad_input():
    res = compute_superpoints(np.zeros((0, 3)), None)
    assert res.sp.shape == (0,) and res.normals.shape == (0, 3) and res.n_superpoints == 0
    with pytest.raises(ValueError):
        compute_superpoints(np.array([[0, 0, np.nan]]), None)
    with pytest.raises(ValueError):
        compute_superpoints(np.zeros((4, 3)), np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError):
        compute_superpoints(np.zeros((4, 3)), None, backend="libcp")
    with pytest.raises(ValueError):
        compute_superpoints(np.zeros((4, 3)), None, reg=-1)


@pytest.mark.skipif(importlib.util.find_spec("pycut_pursuit") is not None, reason="pycut-pursuit installed")
def test_cutpursuit_backend_without_library_says_why():
    with pytest.raises(ImportError, match="pycut-pursuit"):
        compute_superpoints(np.random.default_rng(0).normal(size=(50, 3)), None, backend="cutpursuit")


# --------------------------------------------------------------------------- helpers


def test_merge_small_components_rules():
    xyz = np.array([[0, 0, 0], [0.1, 0, 0], [5, 0, 0], [5.1, 0, 0], [5.2, 0, 0], [0.2, 0, 0]], float)
    label = np.array([7, 7, 3, 3, 3, 9])  # 9 is small and nearest to component 7
    out = merge_small_components(xyz, label, min_size=1)
    assert out[5] == out[0] and out[2] == out[3] and out[0] != out[2]
    assert (merge_small_components(xyz, label, min_size=5) == 0).all()  # all small: one


def test_relabel_by_first_point():
    np.testing.assert_array_equal(relabel_by_first_point(np.array([9, 4, 9, 1, 4])), [0, 1, 0, 2, 1])


def test_greedy_l0_objective_tradeoff():
    """Two constant halves of a chain: low reg keeps the jump, high reg merges everything."""
    n = 40
    feat = np.r_[np.zeros(20), np.ones(20)][:, None] * 0.5
    src, dst = np.arange(n - 1), np.arange(1, n)
    w = np.ones(n - 1)
    low = greedy_l0_partition(feat, src, dst, w, reg=0.5)
    assert len(np.unique(low[:20])) == 1 and len(np.unique(low[20:])) == 1 and low[0] != low[-1]
    high = greedy_l0_partition(feat, src, dst, w, reg=10.0)  # 10 > 20·20/40·0.25 = 2.5
    assert len(np.unique(high)) == 1
