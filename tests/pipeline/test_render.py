"""Rendering: numpy splat footprints and z-test, render_views outputs, backend agreement."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.cameras import ZNEAR, make_cameras, project
from pipeline.render import render_views
from pipeline.render.render import colours_from_pix2pt, default_radius_px
from pipeline.render.splat_numpy import splat_view
from pipeline.visibility import visible_points
from pipeline.viz_geometry import contact_sheet, render_superpoint_sheet, save_png, superpoint_colours


def _object(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points on a box + a rod (two colours), normalised (centroid 0, max radius 1)."""
    rng = np.random.default_rng(seed)
    m = n * 3 // 4
    face = rng.integers(0, 3, m)
    sign = rng.choice([-1.0, 1.0], m)
    box = rng.uniform(-1, 1, (m, 3)) * np.array([0.5, 0.3, 0.4])
    box[np.arange(m), face] = sign * np.array([0.5, 0.3, 0.4])[face]
    t = rng.uniform(0, 2 * np.pi, n - m)
    rod = np.stack([0.08 * np.cos(t), rng.uniform(0.3, 0.9, n - m), 0.08 * np.sin(t)], axis=1)
    xyz = np.concatenate([box, rod])
    xyz -= xyz.mean(0)
    xyz /= np.linalg.norm(xyz, axis=1).max()
    rgb = np.concatenate([np.tile([200, 40, 40], (m, 1)), np.tile([40, 40, 200], (n - m, 1))])
    rgb = np.clip(rgb + rng.integers(-10, 10, rgb.shape), 0, 255).astype(np.uint8)
    return xyz.astype(np.float32), rgb


def _brute_force(uv, z, size, radius, footprint):
    """Loop oracle: pixel (r,c) belongs to the nearest point whose footprint covers it."""
    h, w = size
    best = np.full((h, w), np.inf)
    out = np.full((h, w), -1, np.int32)
    for i in range(len(z)):
        if not (z[i] > ZNEAR) or not np.isfinite(uv[i]).all():
            continue
        u, v = float(uv[i, 0]), float(uv[i, 1])
        for r in range(h):
            for c in range(w):
                if footprint == "disc":
                    inside = ((c + 0.5 - u) ** 2 + (r + 0.5 - v) ** 2 <= radius**2) or (c == np.floor(u) and r == np.floor(v))
                else:
                    rr = int(np.floor(radius + 0.5))
                    cu = np.ceil(np.round(u * 256) / 256) - 1
                    cv = np.floor(np.round(v * 256) / 256)
                    inside = abs(c - cu) <= rr and abs(r - cv) <= rr
                if inside and z[i] < best[r, c]:
                    best[r, c] = z[i]
                    out[r, c] = i
    return out


@pytest.mark.parametrize("footprint", ["disc", "square"])
@pytest.mark.parametrize("radius", [0.3, 1.0, 2.0])
def test_numpy_splat_matches_brute_force(footprint, radius):
    rng = np.random.default_rng(3)
    uv = rng.uniform(-2, 26, (40, 2)).astype(np.float32)
    z = rng.uniform(0.5, 3.0, 40).astype(np.float32)
    z[5] = -1.0  # behind the camera: culled
    got = splat_view(uv, z, (24, 24), radius, footprint)
    assert got.dtype == np.int32 and got.shape == (24, 24)
    np.testing.assert_array_equal(got, _brute_force(uv, z, (24, 24), radius, footprint))
    assert 5 not in got


def test_disc_and_square_footprint_sizes():
    uv = np.array([[10.5, 10.5]], np.float32)  # exactly on a pixel centre
    z = np.array([1.0], np.float32)
    assert (splat_view(uv, z, (21, 21), 2.0, "disc") == 0).sum() == 13  # dx²+dy² <= 4
    assert (splat_view(uv, z, (21, 21), 2.0, "square") == 0).sum() == 25
    assert (splat_view(uv, z, (21, 21), 0.3, "disc") == 0).sum() == 1  # own pixel always


def test_default_radius_is_two_pixels_at_800():
    assert default_radius_px((800, 800)) == pytest.approx(2.0)
    assert default_radius_px((128, 128)) == pytest.approx(0.32)


def test_render_views_outputs_nearest_colour_and_depth():
    cams = make_cameras(image_size=64)
    # two points on view 0's optical axis; point 1 is 0.3 closer to the camera
    xyz = (cams.directions[0] * np.array([[0.0], [-0.3]])).astype(np.float32)
    rgb = np.array([[10, 20, 30], [200, 100, 50]], np.uint8)
    res = render_views(xyz, rgb, cams, radius_px=1.0, backend="numpy")
    assert res.rgb.shape == (10, 64, 64, 3) and res.rgb.dtype == np.uint8
    assert res.pix2pt.shape == (10, 64, 64) and res.pix2pt.dtype == np.int32
    assert res.depth.shape == (10, 64, 64) and res.depth.dtype == np.float32
    assert res.backend == "numpy" and res.footprint == "disc"
    # view 0 looks along directions[0]: point 1 (pulled back towards the camera) is nearer
    centre = res.pix2pt[0, 31:33, 31:33]
    assert (centre == 1).all()
    np.testing.assert_array_equal(res.rgb[0, 32, 32], rgb[1])
    assert res.depth[0, 32, 32] == pytest.approx(2.2 - 0.3, abs=1e-5)
    bg = res.pix2pt == -1
    assert (res.rgb[bg] == 255).all() and (res.depth[bg] == 0).all()


def test_single_point_empty_cloud_and_culled_points():
    cams = make_cameras(image_size=32)
    one = render_views(np.zeros((1, 3), np.float32), np.array([[1, 2, 3]], np.uint8), cams, backend="numpy")
    assert ((one.pix2pt == 0).sum(axis=(1, 2)) == 1).all()  # radius 0.08 px: own pixel only
    empty = render_views(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8), cams, backend="numpy")
    assert (empty.pix2pt == -1).all() and (empty.rgb == 255).all() and (empty.depth == 0).all()
    behind = (cams.centres[0] * 1.2).astype(np.float32)[None]
    res = render_views(behind, None, cams, backend="numpy")
    assert (res.pix2pt[0] == -1).all()
    assert (res.pix2pt[2] == 0).any()  # the opposite camera sees it
    assert (res.rgb[2][res.pix2pt[2] == 0] == 0).all()  # no colours given: black points


def test_every_point_of_the_unit_sphere_lands_inside_every_image():
    cams = make_cameras(image_size=64)
    d = np.random.default_rng(0).normal(size=(500, 3))
    uv, _ = project(cams, d / np.linalg.norm(d, axis=1, keepdims=True))
    assert (uv >= 0).all() and (uv < 64).all()


def test_colours_from_pix2pt():
    pix = np.array([[[-1, 0], [1, 1]]], np.int32)
    rgb = np.array([[1, 2, 3], [4, 5, 6]], np.uint8)
    out = colours_from_pix2pt(pix, rgb)
    np.testing.assert_array_equal(out[0, 0, 0], [255, 255, 255])
    np.testing.assert_array_equal(out[0, 0, 1], [1, 2, 3])
    np.testing.assert_array_equal(out[0, 1, 1], [4, 5, 6])


def test_bad_arguments_raise():
    cams = make_cameras(image_size=16)
    xyz = np.zeros((3, 3), np.float32)
    with pytest.raises(ValueError):
        render_views(xyz, np.zeros((2, 3), np.uint8), cams, backend="numpy")
    with pytest.raises(ValueError):
        render_views(xyz, np.zeros((3, 3), np.float32), cams, backend="numpy")
    with pytest.raises(ValueError):
        render_views(xyz, None, cams, backend="opengl")
    with pytest.raises(ValueError):
        render_views(xyz, None, cams, backend="pyrender", footprint="disc")
    assert render_views(xyz, None, cams, backend="auto", footprint="disc").backend == "numpy"


# --------------------------------------------------------------------------- pyrender


def _gl_or_skip():
    from pipeline.render.gl_setup import gl_available, gl_error

    if not gl_available():
        pytest.skip(f"no offscreen OpenGL context here ({gl_error()}); pyrender backend untested")


@pytest.mark.parametrize("radius", [None, 1.0, 2.0])
def test_pyrender_and_numpy_square_splat_agree(radius):
    _gl_or_skip()
    xyz, rgb = _object(3000)
    cams = make_cameras(image_size=128)
    a = render_views(xyz, rgb, cams, radius_px=radius, backend="numpy", footprint="square")
    b = render_views(xyz, rgb, cams, radius_px=radius, backend="pyrender")
    assert b.backend == "pyrender" and b.footprint == "square"
    both = (a.pix2pt >= 0) & (b.pix2pt >= 0)
    either = (a.pix2pt >= 0) | (b.pix2pt >= 0)
    assert both.sum() >= 0.99 * either.sum()
    assert (a.pix2pt[both] == b.pix2pt[both]).mean() >= 0.99
    va, vb = visible_points(a.pix2pt, len(xyz)), visible_points(b.pix2pt, len(xyz))
    assert (va != vb).sum() <= 0.01 * va.sum()
    np.testing.assert_array_equal(a.rgb[both], b.rgb[both])
    np.testing.assert_allclose(a.depth[both], b.depth[both])


def test_pyrender_colour_pass_equals_colours_looked_up_from_ids():
    _gl_or_skip()
    xyz, rgb = _object(2000, seed=1)
    cams = make_cameras(views=[(10, 0), (-20, 300)], image_size=96)
    derived = render_views(xyz, rgb, cams, radius_px=1.0, backend="pyrender")
    drawn = render_views(xyz, rgb, cams, radius_px=1.0, backend="pyrender", color_pass=True)
    np.testing.assert_array_equal(drawn.pix2pt, derived.pix2pt)
    np.testing.assert_array_equal(drawn.rgb, derived.rgb)


def test_pyrender_edge_cases_and_auto():
    _gl_or_skip()
    cams = make_cameras(image_size=32)
    empty = render_views(np.zeros((0, 3), np.float32), None, cams, backend="pyrender")
    assert (empty.pix2pt == -1).all() and (empty.rgb == 255).all()
    one = render_views(np.zeros((1, 3), np.float32), np.array([[9, 8, 7]], np.uint8), cams, backend="pyrender")
    assert ((one.pix2pt == 0).sum(axis=(1, 2)) == 1).all()
    behind = (cams.centres[0] * 1.2).astype(np.float32)[None]
    assert (render_views(behind, None, cams, backend="pyrender").pix2pt[0] == -1).all()
    assert render_views(np.zeros((1, 3), np.float32), None, cams).backend == "pyrender"


# --------------------------------------------------------------------------- viz


def test_contact_sheet_layout_and_png(tmp_path):
    imgs = np.zeros((10, 20, 30, 3), np.uint8)
    imgs[3] = 77
    sheet = contact_sheet(imgs, titles=[f"{i}" for i in range(10)], cols=5)
    assert sheet.dtype == np.uint8 and sheet.shape == (4 + 2 * (20 + 18 + 4), 4 + 5 * (30 + 4), 3)
    y0, x0 = 4 + 18, 4 + 3 * 34
    assert (sheet[y0 : y0 + 20, x0 : x0 + 30] == 77).all()
    path = save_png(tmp_path / "sheet.png", sheet)
    import matplotlib.image as mpimg

    back = mpimg.imread(path)
    assert back.shape[:2] == sheet.shape[:2]


def test_superpoint_colours_and_sheet():
    sp = np.array([0, 1, 1, 2, 0])
    c = superpoint_colours(sp, seed=0)
    assert c.shape == (5, 3) and c.dtype == np.uint8
    np.testing.assert_array_equal(c[0], c[4])
    assert not np.array_equal(c[0], c[1])
    np.testing.assert_array_equal(c, superpoint_colours(sp, seed=0))
    xyz, _ = _object(500)
    sheet = render_superpoint_sheet(xyz, np.arange(500) % 7, image_size=48)
    assert sheet.shape == (4 + 2 * (48 + 18 + 4), 4 + 5 * (48 + 4), 3)
    assert (sheet != 255).any()
