"""pyrender (OpenGL) point rendering: the fast backend when an offscreen context exists.

Points are drawn as ``GL_POINTS`` of odd ``point_size = 2R+1`` (R = round(radius_px)),
i.e. (2R+1)×(2R+1) pixel squares centred on the pixel holding the projection; the GL
depth test keeps the nearest point. That is the ``"square"`` footprint of
:mod:`pipeline.render.splat_numpy`, which is therefore the oracle for this backend.

Two passes share one geometry and one camera per view (both FLAT: no lighting, vertex
colour only, MSAA off, see :mod:`gl_setup`):

* the ID pass: point id + 1 packed into 24-bit RGB on a black background, decoded into
  ``pix2pt``. This is the pass that defines the image;
* the colour pass (optional, ``color_pass=True``): the point colours on white. With FLAT
  shading and exact uint8 → float → uint8 round trips its pixels equal the colours of
  the ID pass winners, so by default the RGB image is taken from ``pix2pt`` instead and the
  second pass (half the GL time) is skipped. A test checks that both give the same image.

Depth comes from the winners' exact camera depths, not from the 24-bit GL depth buffer.
"""

from __future__ import annotations

import numpy as np

from pipeline.cameras import ZFAR, ZNEAR, Cameras, to_camera, to_opengl_pose
from pipeline.render.gl_setup import _import_pyrender, color_only, get_renderer, render_lock
from pipeline.render.splat_numpy import square_half_size

MAX_GL_POINTS = (1 << 24) - 1  # ids + 1 must fit in 24-bit RGB


def encode_ids(ids: np.ndarray) -> np.ndarray:
    """Point ids → (N,3) uint8 colours holding id + 1 (0 is the background)."""
    v = np.asarray(ids, dtype=np.int64) + 1
    return np.stack([v & 255, (v >> 8) & 255, (v >> 16) & 255], axis=-1).astype(np.uint8)


def decode_ids(rgb: np.ndarray) -> np.ndarray:
    """(…,3) uint8 colours from :func:`encode_ids` → int32 ids, -1 for black."""
    c = np.asarray(rgb).astype(np.int32)
    return c[..., 0] + (c[..., 1] << 8) + (c[..., 2] << 16) - 1


def gl_point_size(radius_px: float) -> int:
    """Odd GL point size whose square footprint matches a disc of ``radius_px``."""
    return 2 * square_half_size(radius_px) + 1


def _depth_range(cameras: Cameras, xyz: np.ndarray, z: np.ndarray | None = None) -> tuple[float, float]:
    """Tight GL near/far planes around the cloud: best depth-buffer precision."""
    z = to_camera(cameras, xyz)[..., 2] if z is None else np.asarray(z)
    z = z[(z > ZNEAR) & (z <= ZFAR)]
    if z.size == 0:
        return ZNEAR, ZFAR
    znear = max(ZNEAR, float(z.min()) * 0.5)
    zfar = min(ZFAR, float(z.max()) * 2.0 + 1e-3)
    return znear, max(zfar, znear * 2.0)


def render_ids_gl(
    xyz: np.ndarray,
    cameras: Cameras,
    radius_px: float,
    rgb: np.ndarray | None = None,
    color_pass: bool = False,
    z: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Render all views with pyrender.

    Returns ``pix2pt`` (V,H,W) int32 (-1 background) and, when ``color_pass`` is set, the
    colour pass images (V,H,W,3) uint8 on white (else None). Points behind the near plane
    (ZNEAR) are clipped by GL itself. ``z`` (V,N), the camera depths if already known,
    only sets tight near/far planes.
    """
    pyrender = _import_pyrender()
    xyz = np.asarray(xyz, dtype=np.float32).reshape(-1, 3)
    n = xyz.shape[0]
    h, w = cameras.image_size
    nv = cameras.n_views
    pix2pt = np.full((nv, h, w), -1, dtype=np.int32)
    colour = np.full((nv, h, w, 3), 255, dtype=np.uint8) if color_pass else None
    if n == 0:
        return pix2pt, colour
    if n > MAX_GL_POINTS:
        raise ValueError(f"pyrender backend packs ids in 24 bits: at most {MAX_GL_POINTS} points")

    znear, zfar = _depth_range(cameras, xyz, z)
    K = cameras.K
    cam = pyrender.IntrinsicsCamera(fx=K[0, 0], fy=K[1, 1], cx=K[0, 2], cy=K[1, 2], znear=znear, zfar=zfar)
    poses = to_opengl_pose(cameras)
    id_mesh = pyrender.Mesh.from_points(xyz, colors=encode_ids(np.arange(n)))
    id_scene = pyrender.Scene(bg_color=[0.0, 0.0, 0.0, 0.0], ambient_light=[0.0, 0.0, 0.0])
    id_scene.add(id_mesh)
    id_cam = id_scene.add(cam, pose=poses[0])
    col_scene = col_cam = None
    if color_pass:
        cols = np.zeros((n, 3), np.uint8) if rgb is None else np.asarray(rgb, np.uint8).reshape(n, 3)
        col_scene = pyrender.Scene(bg_color=[1.0, 1.0, 1.0, 1.0], ambient_light=[0.0, 0.0, 0.0])
        col_scene.add(pyrender.Mesh.from_points(xyz, colors=cols))
        col_cam = col_scene.add(cam, pose=poses[0])

    flags = pyrender.RenderFlags.FLAT
    with render_lock(), color_only():
        r = get_renderer(w, h, gl_point_size(radius_px))
        for v in range(nv):
            id_scene.set_pose(id_cam, poses[v])
            img, _ = r.render(id_scene, flags=flags)
            pix2pt[v] = decode_ids(img)
            if col_scene is not None and colour is not None:  # set together iff color_pass
                col_scene.set_pose(col_cam, poses[v])
                cimg, _ = r.render(col_scene, flags=flags)
                colour[v] = cimg
        # Drop this cloud's GL buffers now: render an empty scene so pyrender's context
        # bookkeeping deletes the vertex buffers of the meshes it no longer sees.
        empty = pyrender.Scene()
        empty.add(cam, pose=poses[0])
        r.render(empty, flags=flags)
    if pix2pt.max() >= n:  # blended or dithered id colours (MSAA/sRGB left on?) decode to junk
        raise RuntimeError("pyrender returned point ids out of range: the ID pass is not exact here")
    return pix2pt, colour
