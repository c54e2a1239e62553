import numpy as np
import pytest

from pipeline.data.cloud import make_cloud, normalise, validate_cloud
from pipeline.errors import BadInputError


def test_normalise_centroid_and_max_norm():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(500, 3)) * [3.0, 1.0, 0.5] + [100.0, -20.0, 7.0]
    xyz, centre, scale = normalise(raw)
    assert xyz.dtype == np.float32 and xyz.shape == (500, 3)
    np.testing.assert_allclose(centre, raw.mean(axis=0))
    np.testing.assert_allclose(xyz.mean(axis=0), 0, atol=1e-6)
    assert np.linalg.norm(xyz, axis=1).max() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(xyz.astype(np.float64) * scale + centre, raw, atol=1e-4)


def _ok():
    xyz = np.array([[0, 0, 0], [1, 0, 0], [0, 2, 0]], float)
    rgb = np.zeros((3, 3), np.uint8)
    return xyz, rgb


@pytest.mark.parametrize(
    "case, match",
    [
        ("empty", "zero points"),
        ("nan", "NaN"),
        ("identical", "identical"),
        ("sem_len", "semantic labels have shape"),
        ("ins_len", "instance labels have shape"),
        ("sem_range", "out of range"),
        ("sem_below", "< -1"),
        ("rgb_len", "colours have shape"),
    ],
)
def test_validate_cloud_rejects(case, match):
    xyz, rgb = _ok()
    sem, ins = np.array([0, 1, -1]), np.array([0, 1, -1])
    if case == "empty":
        xyz, rgb, sem, ins = np.zeros((0, 3)), np.zeros((0, 3), np.uint8), None, None
    elif case == "nan":
        xyz[1, 2] = np.nan
    elif case == "identical":
        xyz[:] = 5.0
    elif case == "sem_len":
        sem = np.array([0, 1])
    elif case == "ins_len":
        ins = np.array([0, 1, 2, 3])
    elif case == "sem_range":
        sem = np.array([0, 2, -1])
    elif case == "sem_below":
        sem = np.array([0, -2, -1])
    elif case == "rgb_len":
        rgb = rgb[:2]
    with pytest.raises(BadInputError, match=match) as ei:
        validate_cloud(xyz, rgb, sem, ins, n_parts=2, object_id="Chair/7", path="/x/pc.ply")
    assert "Chair/7" in str(ei.value) and "/x/pc.ply" in str(ei.value)


def test_make_cloud_casts_types():
    xyz, rgb = _ok()
    c = make_cloud(
        xyz, rgb, np.array([0, 1, -1], np.int64), np.array([3, 4, -1]), object_id="Chair/1", category="Chair", source="files", n_parts=5
    )
    assert c.xyz.dtype == np.float32 and c.rgb.dtype == np.uint8
    assert c.sem.dtype == np.int16 and c.ins.dtype == np.int32
    assert c.n_points == 3 and c.source == "files"
    np.testing.assert_allclose(c.raw_xyz(), xyz, atol=1e-6)
