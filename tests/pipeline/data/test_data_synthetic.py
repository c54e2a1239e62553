import numpy as np
import pytest
import trimesh

from pipeline.data.synthetic import SYNTHETIC_CATEGORIES, generate_meshes, generate_shape, synthetic_split
from pipeline.errors import BadInputError
from pipeline.meta import PARTNETE_PARTS, part_names

N = 4000  # enough for label coverage; keeps the suite fast


def test_categories_are_partnete_and_at_least_six():
    assert len(SYNTHETIC_CATEGORIES) >= 6
    assert set(SYNTHETIC_CATEGORIES) <= set(PARTNETE_PARTS)
    assert {"Chair", "Table", "StorageFurniture", "Bottle", "Kettle", "Lamp"} <= set(SYNTHETIC_CATEGORIES)


def test_split_layout():
    s = synthetic_split(n_fewshot=3, n_val=2, n_test=1)
    assert s == [(0, "fewshot"), (1, "fewshot"), (2, "fewshot"), (3, "val"), (4, "val"), (5, "test")]
    assert len(synthetic_split()) == 20


@pytest.mark.parametrize("category", SYNTHETIC_CATEGORIES)
def test_every_part_is_covered(category):
    k = len(part_names(category))
    split = synthetic_split()
    seen = {"all": set(), "fewshot": set()}
    for index, name in split:
        c = generate_shape(category, index, n_points=N)
        assert c.n_points == N
        assert c.sem.dtype == np.int16 and c.ins.dtype == np.int32 and c.rgb.dtype == np.uint8
        assert c.xyz.dtype == np.float32 and c.xyz.shape == (N, 3)
        assert c.sem.min() >= -1 and c.sem.max() < k
        # unlabelled points have no instance; each instance has one label
        assert ((c.sem < 0) == (c.ins < 0)).all()
        for i in np.unique(c.ins[c.ins >= 0]):
            assert len(np.unique(c.sem[c.ins == i])) == 1
        labels = set(np.unique(c.sem[c.sem >= 0]).tolist())
        seen["all"] |= labels
        if name == "fewshot":
            seen["fewshot"] |= labels
    assert seen["all"] == set(range(k))
    assert seen["fewshot"] == set(range(k))  # the training shapes alone show every part


@pytest.mark.parametrize("category", SYNTHETIC_CATEGORIES)
def test_normalised_and_deterministic(category):
    a = generate_shape(category, 3, n_points=N, seed=0)
    b = generate_shape(category, 3, n_points=N, seed=0)
    for f in ("xyz", "rgb", "sem", "ins"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert a.object_id == f"{category}/0003" and a.source == "synthetic" and a.category == category
    np.testing.assert_allclose(a.xyz.mean(axis=0), 0, atol=1e-5)
    assert np.linalg.norm(a.xyz, axis=1).max() == pytest.approx(1.0, abs=1e-5)
    assert not np.array_equal(a.xyz, generate_shape(category, 4, n_points=N).xyz)
    assert not np.array_equal(a.xyz, generate_shape(category, 3, n_points=N, seed=1).xyz)


def test_point_count_does_not_change_geometry():
    a = generate_meshes("Chair", 5)
    small = generate_shape("Chair", 5, n_points=500)
    big = generate_shape("Chair", 5, n_points=5000)
    assert small.scale == pytest.approx(big.scale, rel=0.05)
    assert [m.vertices.shape for m, *_ in a] == [m.vertices.shape for m, *_ in generate_meshes("Chair", 5)]


def test_colours_are_not_one_per_label():
    c = generate_shape("StorageFurniture", 0, n_points=N)
    for k in np.unique(c.sem):
        assert len(np.unique(c.rgb[c.sem == k], axis=0)) > 5  # per-point noise and shading
    # across shapes the same part gets different colours
    means = [generate_shape("Chair", i, n_points=N) for i in range(4)]
    seat = part_names("Chair").index("seat")
    m = np.array([x.rgb[x.sem == seat].mean(0) for x in means])
    assert np.ptp(m, axis=0).max() > 20


@pytest.mark.parametrize("category", SYNTHETIC_CATEGORIES)
def test_meshes_match_labels(category):
    meshes = generate_meshes(category, 2)
    c = generate_shape(category, 2, n_points=N)
    assert all(isinstance(m, trimesh.Trimesh) for m, *_ in meshes)
    assert all(rgb.dtype == np.uint8 and rgb.shape == (3,) for *_, rgb in meshes)
    pairs = {(lab, ins) for _, lab, ins, _ in meshes}
    assert {(int(s), int(i)) for s, i in zip(c.sem, c.ins)} <= pairs
    inst = [ins for _, lab, ins, _ in meshes if lab >= 0]
    assert sorted(inst) == list(range(len(inst)))
    assert all(ins == -1 for _, lab, ins, _ in meshes if lab < 0)


@pytest.mark.parametrize("index", [-7, 123, 10**12])
def test_any_index_works(index):
    for cat in SYNTHETIC_CATEGORIES:
        c = generate_shape(cat, index, n_points=300)
        assert c.n_points == 300 and np.isfinite(c.xyz).all()


def test_unknown_category():
    with pytest.raises(ValueError, match="Chair"):
        generate_shape("Spaceship", 0)


def test_geometry_is_plausible():
    names = part_names("StorageFurniture")
    for i in range(6):  # handles stick out in front (+Z) of the fronts they sit on
        c = generate_shape("StorageFurniture", i, n_points=N)
        fronts = np.isin(c.sem, [names.index("door"), names.index("drawer")])
        handle = c.sem == names.index("handle")
        assert c.xyz[handle, 2].max() > c.xyz[fronts, 2].max()
    wheel = part_names("Chair").index("wheel")
    for i in (1, 3):  # swivel chairs: wheels are the lowest part
        c = generate_shape("Chair", i, n_points=N)
        assert c.xyz[c.sem == wheel, 1].min() <= c.xyz[:, 1].min() + 1e-6
    top = part_names("Table").index("tabletop")
    c = generate_shape("Table", 0, n_points=N)
    assert c.xyz[c.sem == top, 1].max() >= c.xyz[:, 1].max() - 1e-6


def test_small_parts_get_points():
    names = part_names("StorageFurniture")
    for i in range(6):
        c = generate_shape("StorageFurniture", i, n_points=20000)
        for h in np.unique(c.ins[c.sem == names.index("handle")]):
            assert (c.ins == h).sum() >= 20


def test_label_mismatch_is_rejected():
    from pipeline.data.cloud import make_cloud

    c = generate_shape("Bottle", 0, n_points=100)
    with pytest.raises(BadInputError, match="labels"):
        make_cloud(c.xyz, c.rgb, c.sem[:-1], c.ins, object_id=c.object_id, category="Bottle", source="synthetic")
    with pytest.raises(BadInputError, match="out of range"):
        make_cloud(c.xyz, c.rgb, c.sem + 1, c.ins, object_id=c.object_id, category="Bottle", source="synthetic", n_parts=1)
