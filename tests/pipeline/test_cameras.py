"""Cameras reproduce SPEC §2.2 (PyTorch3D look_at + FoV camera) as OpenCV arrays."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.cameras import PAPER_VIEWS, make_cameras, project, resize_cameras, to_camera, to_opengl_pose

# SPEC §2.2 table: camera centre per view
SPEC_CENTRES = np.array(
    [
        [0.0000, 0.3820, 2.1666],
        [2.1666, 0.3820, 0.0000],
        [0.0000, 0.3820, -2.1666],
        [-2.1666, 0.3820, 0.0000],
        [0.0000, 1.4141, 1.6853],
        [1.4595, 1.4141, -0.8426],
        [-1.4595, 1.4141, -0.8426],
        [1.7904, -0.7524, 1.0337],
        [0.0000, -0.7524, -2.0673],
        [-1.7904, -0.7524, 1.0337],
    ]
)


def _pytorch3d_screen(p: np.ndarray, centre: np.ndarray, size: int = 800) -> tuple[float, float, float]:
    """Independent transcription of SPEC §2.2 (look_at_rotation, FoV NDC, screen)."""
    z_axis = -centre / np.linalg.norm(centre)
    x_axis = np.cross([0.0, 1.0, 0.0], z_axis)
    x_axis /= np.linalg.norm(x_axis)
    y_axis = np.cross(z_axis, x_axis)
    d = p - centre
    xv, yv, zv = d @ x_axis, d @ y_axis, d @ z_axis
    s = 1.0 / np.tan(np.deg2rad(30.0))
    half = size / 2.0
    return half * (1 - s * xv / zv), half * (1 - s * yv / zv), zv


def test_paper_views_and_centres_match_spec_table():
    cams = make_cameras()
    assert cams.views == PAPER_VIEWS
    assert len(PAPER_VIEWS) == 10
    np.testing.assert_allclose(cams.centres, SPEC_CENTRES, atol=1e-4)


def test_intrinsics_and_shapes():
    cams = make_cameras()
    assert cams.K.dtype == np.float64 and cams.world_to_cam.shape == (10, 4, 4)
    np.testing.assert_allclose(cams.K, [[400 * np.sqrt(3), 0, 400], [0, 400 * np.sqrt(3), 400], [0, 0, 1]])
    assert cams.image_size == (800, 800)
    rot = cams.world_to_cam[:, :3, :3]
    np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (10, 3, 3)), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-12)


def test_directions_are_unit_optical_axes_towards_origin():
    cams = make_cameras()
    np.testing.assert_allclose(np.linalg.norm(cams.directions, axis=1), 1.0)
    np.testing.assert_allclose(cams.directions, -cams.centres / 2.2, atol=1e-12)
    np.testing.assert_allclose(cams.world_to_cam[:, 2, :3], cams.directions, atol=1e-12)
    assert not np.allclose(cams.directions[2], cams.directions[3])  # SPEC §11.4 bug fixed


def test_origin_projects_to_image_centre_at_camera_distance():
    cams = make_cameras(image_size=800)
    uv, z = project(cams, np.zeros((1, 3), np.float32))
    assert uv.shape == (10, 1, 2) and uv.dtype == np.float32 and z.dtype == np.float32
    np.testing.assert_allclose(uv[:, 0], 400.0, atol=1e-4)
    np.testing.assert_allclose(z[:, 0], 2.2, atol=1e-6)


@pytest.mark.parametrize("view", range(10))
def test_off_axis_points_match_pytorch3d_formulas(view):
    cams = make_cameras()
    pts = np.array([[0.3, -0.2, 0.5], [-0.6, 0.4, -0.1], [0.0, 0.9, 0.2]])
    uv, z = project(cams, pts)
    for i, p in enumerate(pts):
        u, v, zv = _pytorch3d_screen(p, cams.centres[view])
        assert uv[view, i, 0] == pytest.approx(u, abs=1e-3)
        assert uv[view, i, 1] == pytest.approx(v, abs=1e-3)
        assert z[view, i] == pytest.approx(zv, abs=1e-5)


def test_front_view_orientation_is_upright_and_unmirrored():
    """View (0,0) sits on +z: world +x appears to the right, world +y appears up."""
    cams = make_cameras(views=[(0.0, 0.0)], image_size=800)
    uv, _ = project(cams, np.array([[0.1, 0.0, 0.0], [0.0, 0.1, 0.0]]))
    s = np.sqrt(3.0)
    assert uv[0, 0, 0] == pytest.approx(400 + 400 * s * 0.1 / 2.2, abs=1e-3)
    assert uv[0, 0, 1] == pytest.approx(400.0, abs=1e-4)
    assert uv[0, 1, 1] == pytest.approx(400 - 400 * s * 0.1 / 2.2, abs=1e-3)


def test_points_behind_camera_get_nan_uv_and_negative_depth():
    cams = make_cameras()
    behind = cams.centres[0] * 1.5  # beyond camera 0, seen from the origin side
    uv, z = project(cams, behind[None])
    assert z[0, 0] < 0
    assert np.isnan(uv[0, 0]).all()
    assert z[2, 0] > 0 and np.isfinite(uv[2, 0]).all()  # the opposite camera sees it


def test_opengl_pose_is_inverse_extrinsics_with_flipped_axes():
    cams = make_cameras()
    pose = to_opengl_pose(cams)
    np.testing.assert_allclose(pose[:, :3, 3], cams.centres, atol=1e-12)
    np.testing.assert_allclose(-pose[:, :3, 2], cams.directions, atol=1e-12)  # GL looks down -z
    # a GL camera-frame point (x right, y up, -z forward) of a world point
    p = np.array([0.2, 0.1, -0.3, 1.0])
    gl = np.linalg.inv(pose) @ p
    cv = np.einsum("vij,j->vi", cams.world_to_cam, p)
    np.testing.assert_allclose(gl[:, 0], cv[:, 0], atol=1e-12)
    np.testing.assert_allclose(gl[:, 1], -cv[:, 1], atol=1e-12)
    np.testing.assert_allclose(gl[:, 2], -cv[:, 2], atol=1e-12)


def test_to_camera_matches_homogeneous_product():
    cams = make_cameras()
    p = np.random.default_rng(0).normal(size=(7, 3))
    ref = np.einsum("vij,nj->vni", cams.world_to_cam[:, :3, :3], p) + cams.world_to_cam[:, None, :3, 3]
    np.testing.assert_allclose(to_camera(cams, p), ref, atol=1e-12)


def test_non_square_and_resized_cameras():
    cams = make_cameras(views=[(10, 0)], image_size=(120, 200))
    assert cams.image_size == (120, 200)
    assert cams.K[0, 2] == 100 and cams.K[1, 2] == 60
    assert cams.K[0, 0] == pytest.approx(60 * np.sqrt(3))
    big = make_cameras(image_size=800)
    small = resize_cameras(big, 200)
    pts = np.random.default_rng(1).uniform(-0.5, 0.5, (20, 3))
    np.testing.assert_allclose(project(small, pts)[0] * 4, project(big, pts)[0], rtol=1e-5)


def test_invalid_arguments_raise():
    with pytest.raises(ValueError):
        make_cameras(views=[])
    with pytest.raises(ValueError):
        make_cameras(image_size=0)
    with pytest.raises(ValueError):
        make_cameras(distance=0.0)
