"""The 10 orbit cameras of PartSLIP/PartSTAD (SPEC §2.2), as plain OpenCV pinhole arrays.

The original code builds PyTorch3D ``FoVPerspectiveCameras`` from
``look_at_view_transform(dist=2.2, elev, azim)``. Here the same geometry is written as an
OpenCV camera (x right, y down, z forward) so that every backend (numpy splat, pyrender,
box/mask tests downstream) shares one set of arrays and no PyTorch3D is needed.

PyTorch3D look-at axes: ``z = normalize(0 - C)``, ``x = normalize(up × z)``, ``y = z × x``
with up = +Y; its view space has +X to the *left* and +Y *up*. The equivalent OpenCV
rotation has rows ``(-x, -y, z)``, and with ``fx = fy = (S/2)/tan(fov/2)``, ``cx = W/2``,
``cy = H/2`` (S = min(H, W), PyTorch3D's NDC convention for the shorter side) the pixel
coordinates equal PyTorch3D's ``transform_points_screen`` exactly (SPEC §2.2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline import portable as pm

#: (elevation°, azimuth°) of the 10 views, in view-id order (SPEC §2.2).
PAPER_VIEWS: tuple[tuple[float, float], ...] = (
    (10.0, 0.0),
    (10.0, 90.0),
    (10.0, 180.0),
    (10.0, 270.0),
    (40.0, 0.0),
    (40.0, 120.0),
    (40.0, 240.0),
    (-20.0, 60.0),
    (-20.0, 180.0),
    (-20.0, 300.0),
)

#: PyTorch3D FoVPerspectiveCameras defaults (SPEC §2.2); points nearer than ZNEAR are culled.
ZNEAR = 0.01
ZFAR = 100.0


@dataclass(frozen=True)
class Cameras:
    """V pinhole cameras sharing one intrinsic matrix.

    Attributes:
        K: (3,3) float64 OpenCV intrinsics (pixels; pixel (r,c) has centre (c+0.5, r+0.5)).
        world_to_cam: (V,4,4) float64 OpenCV extrinsics: x right, y down, z forward.
        image_size: (H, W) in pixels.
        views: V (elevation°, azimuth°) pairs.
        centres: (V,3) float64 camera positions C in the normalised object frame.
        directions: (V,3) float64 unit *viewing* directions, i.e. the optical axis pointing
            from the camera centre towards the origin: ``-C/|C|``. These are the true view
            directions used as the PartSTAD box feature (fixing SPEC §11.4, where the
            official ``get_view`` misuses the elevation and clamps negatives). The official
            code meant the camera position on the unit sphere, ``+C/|C|``; that is
            exactly ``-directions`` (a sign flip, irrelevant to a learned linear layer).
    """

    K: np.ndarray
    world_to_cam: np.ndarray
    image_size: tuple[int, int]
    views: tuple[tuple[float, float], ...]
    centres: np.ndarray
    directions: np.ndarray

    @property
    def n_views(self) -> int:
        return int(self.world_to_cam.shape[0])

    @property
    def height(self) -> int:
        return int(self.image_size[0])

    @property
    def width(self) -> int:
        return int(self.image_size[1])


def _image_hw(image_size: int | tuple[int, int]) -> tuple[int, int]:
    if np.isscalar(image_size):
        h = w = int(image_size)  # type: ignore[arg-type]
    else:
        h, w = (int(s) for s in image_size)  # type: ignore[union-attr]
    if h <= 0 or w <= 0:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return h, w


def camera_centres(views, distance: float = 2.2) -> np.ndarray:
    """C = d·(cos e·sin a, sin e, cos e·cos a) for each (elev, azim) in degrees (SPEC §2.2)."""
    va = np.asarray(views, dtype=np.float64).reshape(-1, 2)
    e, a = np.deg2rad(va[:, 0]), np.deg2rad(va[:, 1])
    return distance * np.stack([pm.cos(e) * pm.sin(a), pm.sin(e), pm.cos(e) * pm.cos(a)], axis=-1)


def make_cameras(
    views=PAPER_VIEWS,
    distance: float = 2.2,
    fov_deg: float = 60.0,
    image_size: int | tuple[int, int] = 800,
) -> Cameras:
    """Cameras looking at the origin with up = +Y, reproducing SPEC §2.2 in OpenCV form."""
    views_t = tuple((float(e), float(a)) for e, a in views)
    if not views_t:
        raise ValueError("at least one view is required")
    if distance <= 0:
        raise ValueError(f"distance must be positive, got {distance}")
    h, w = _image_hw(image_size)
    centres = camera_centres(views_t, distance)
    z_axis = -centres / pm.norm(centres, axis=1, keepdims=True)
    up = np.broadcast_to(np.array([0.0, 1.0, 0.0]), z_axis.shape)
    x_axis = np.cross(up, z_axis)
    nx = pm.norm(x_axis, axis=1, keepdims=True)
    # PyTorch3D replaces a degenerate x axis (camera straight above/below) by the one
    # computed with up = +Z-ish; mimic it with a fixed fallback so that poles still work.
    degenerate = nx[:, 0] < 1e-5
    if degenerate.any():
        alt = np.cross(np.broadcast_to(np.array([0.0, 0.0, 1.0]), z_axis.shape), z_axis)
        x_axis = np.where(degenerate[:, None], alt, x_axis)
        nx = pm.norm(x_axis, axis=1, keepdims=True)
    x_axis = x_axis / nx
    y_axis = np.cross(z_axis, x_axis)

    rot = np.stack([-x_axis, -y_axis, z_axis], axis=1)  # rows = OpenCV camera axes in world
    w2c = np.tile(np.eye(4), (len(views_t), 1, 1))
    w2c[:, :3, :3] = rot
    w2c[:, :3, 3] = -pm.rowdot(rot, centres[:, None, :])

    f = (min(h, w) / 2.0) / pm.tan(np.deg2rad(fov_deg) / 2.0)
    K = np.array([[f, 0.0, w / 2.0], [0.0, f, h / 2.0], [0.0, 0.0, 1.0]])
    return Cameras(K=K, world_to_cam=w2c, image_size=(h, w), views=views_t, centres=centres, directions=z_axis.copy())


def to_camera(cameras: Cameras, xyz: np.ndarray) -> np.ndarray:
    """(V,N,3) float64 OpenCV camera-frame coordinates of the (N,3) points."""
    p = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    w2c = cameras.world_to_cam
    out = np.empty((w2c.shape[0], p.shape[0], 3), dtype=np.float64)
    # explicit 3x3 products: BLAS matmul with a 3-long inner dimension is slower, and its
    # worker threads compete with llvmpipe's on small machines
    for i in range(3):
        out[..., i] = (
            w2c[:, i, 0, None] * p[None, :, 0]
            + w2c[:, i, 1, None] * p[None, :, 1]
            + w2c[:, i, 2, None] * p[None, :, 2]
            + w2c[:, i, 3, None]
        )
    return out


def project(cameras: Cameras, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project points into every view.

    Returns ``uv`` (V,N,2) float32 pixel coordinates (column x, row y; origin top-left,
    pixel centres at +0.5) for every point, occluded or not, and ``z`` (V,N) float32 depth
    along the optical axis. Points with z <= ZNEAR (behind or at the camera) get uv = NaN,
    so every "inside box/mask" comparison downstream is False for them.
    """
    pc = to_camera(cameras, xyz)
    z = pc[..., 2]
    fx, fy, cx, cy = cameras.K[0, 0], cameras.K[1, 1], cameras.K[0, 2], cameras.K[1, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = fx * pc[..., 0] / z + cx
        v = fy * pc[..., 1] / z + cy
    uv = np.stack([u, v], axis=-1)
    uv[z <= ZNEAR] = np.nan
    return uv.astype(np.float32), z.astype(np.float32)


def to_opengl_pose(cameras: Cameras) -> np.ndarray:
    """(V,4,4) camera-to-world poses in the OpenGL convention (x right, y up, looks down -z).

    That is what ``pyrender`` expects for a camera node; the OpenCV and OpenGL camera frames
    differ by a flip of the y and z axes.
    """
    c2w = np.linalg.inv(cameras.world_to_cam)
    return c2w @ np.diag([1.0, -1.0, -1.0, 1.0])


def resize_cameras(cameras: Cameras, image_size: int | tuple[int, int]) -> Cameras:
    """The same cameras (poses, field of view) rendering at another image size."""
    h, w = _image_hw(image_size)
    s = min(h, w) / min(cameras.height, cameras.width)
    f = cameras.K[0, 0] * s
    K = np.array([[f, 0.0, w / 2.0], [0.0, f, h / 2.0], [0.0, 0.0, 1.0]])
    return Cameras(
        K=K,
        world_to_cam=cameras.world_to_cam.copy(),
        image_size=(h, w),
        views=cameras.views,
        centres=cameras.centres.copy(),
        directions=cameras.directions.copy(),
    )
