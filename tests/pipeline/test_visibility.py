"""Visibility = owns at least one pixel of pix2pt (SPEC §2.3), without SPEC §11.16's bug."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.cameras import make_cameras, project
from pipeline.render import render_views
from pipeline.visibility import point_pixels, visible_points


def test_visible_iff_point_appears_in_pix2pt():
    rng = np.random.default_rng(0)
    n = 50
    pix = rng.integers(-1, n, size=(4, 16, 16)).astype(np.int32)
    pix[2] = -1  # an empty view
    vis = visible_points(pix, n)
    assert vis.shape == (4, n) and vis.dtype == bool
    for v in range(4):
        expected = np.zeros(n, bool)
        ids = np.unique(pix[v])
        expected[ids[ids >= 0]] = True
        np.testing.assert_array_equal(vis[v], expected)
    assert not vis[2].any()


def test_view_without_background_keeps_point_zero():
    """The official np.unique(...)[1:] drops point 0 when no pixel is background."""
    pix = np.zeros((2, 4, 4), np.int32)
    pix[0, 0, 0] = 1  # view 0: points 0 and 1, no background at all
    pix[1] = 1  # view 1: only point 1
    vis = visible_points(pix, 3)
    np.testing.assert_array_equal(vis, [[True, True, False], [False, True, False]])


def test_point_hidden_directly_behind_another_is_not_visible():
    cams = make_cameras(views=[(10, 0), (-10, 180)], image_size=64)  # antipodal cameras
    d = cams.directions[0].astype(np.float32)
    # same optical ray as the origin for view 0; point 1 lies behind point 0
    xyz = np.stack([np.zeros(3, np.float32), 0.5 * d])
    res = render_views(xyz, None, cams, radius_px=1.5, backend="numpy")
    vis = visible_points(res.pix2pt, 2)
    assert vis[0, 0] and not vis[0, 1]
    assert vis[1, 1] and not vis[1, 0]  # the opposite camera sees it the other way round
    uv = point_pixels(cams, xyz)
    np.testing.assert_allclose(uv[0, 0], uv[0, 1], atol=1e-3)


def test_rendered_visibility_matches_pix2pt_content():
    rng = np.random.default_rng(1)
    xyz = rng.normal(size=(800, 3)).astype(np.float32)
    xyz /= np.linalg.norm(xyz, axis=1, keepdims=True)
    res = render_views(xyz, None, make_cameras(image_size=48), backend="numpy")
    vis = visible_points(res.pix2pt, len(xyz))
    for v in range(10):
        assert set(np.flatnonzero(vis[v])) == set(np.unique(res.pix2pt[v])) - {-1}
    assert 0 < vis.sum(1).min() and vis.sum(1).max() < len(xyz)  # a sphere hides its back


def test_point_pixels_is_projection_uv():
    cams = make_cameras(image_size=100)
    xyz = np.random.default_rng(2).uniform(-0.5, 0.5, (30, 3))
    uv = point_pixels(cams, xyz)
    assert uv.shape == (10, 30, 2) and uv.dtype == np.float32
    np.testing.assert_array_equal(uv, project(cams, xyz)[0])


def test_bad_ids_and_empty_cases():
    with pytest.raises(ValueError):
        visible_points(np.full((1, 2, 2), 5, np.int32), 3)
    with pytest.raises(ValueError):
        visible_points(np.full((1, 2, 2), -2, np.int32), 3)
    with pytest.raises(ValueError):
        visible_points(np.zeros((2, 2), np.int32), 3)
    assert visible_points(np.full((3, 2, 2), -1, np.int32), 0).shape == (3, 0)
    assert not visible_points(np.full((3, 2, 2), -1, np.int32), 4).any()
