"""Small mesh primitives for the synthetic generator, as raw (vertices, faces) pairs.

Kept free of trimesh processing so that building a whole object costs a few milliseconds;
`to_trimesh` wraps the final per-part arrays. All shapes use +Y up.
"""

from __future__ import annotations

import numpy as np

from pipeline import portable as pm

Geom = tuple[np.ndarray, np.ndarray]  # (V,3) float64, (F,3) int64


def concat(*geoms: Geom) -> Geom:
    vs, fs, off = [], [], 0
    for v, f in geoms:
        vs.append(v)
        fs.append(f + off)
        off += len(v)
    if not vs:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    return np.concatenate(vs), np.concatenate(fs)


def transform(g: Geom, rot: np.ndarray | None = None, shift=(0.0, 0.0, 0.0)) -> Geom:
    v, f = g
    if rot is not None:
        v = pm.rotate(v, rot)
    return v + np.asarray(shift, np.float64), f


def rot_x(deg: float) -> np.ndarray:
    a = np.radians(deg)
    c, s = pm.cos(a), pm.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(deg: float) -> np.ndarray:
    a = np.radians(deg)
    c, s = pm.cos(a), pm.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(deg: float) -> np.ndarray:
    a = np.radians(deg)
    c, s = pm.cos(a), pm.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


_BOX_V = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
# faces per side: (-x, +x, -y, +y, -z, +z), two triangles each
_BOX_F = np.array(
    [
        [0, 1, 3],
        [0, 3, 2],
        [4, 6, 7],
        [4, 7, 5],
        [0, 4, 5],
        [0, 5, 1],
        [2, 3, 7],
        [2, 7, 6],
        [0, 2, 6],
        [0, 6, 4],
        [1, 5, 7],
        [1, 7, 3],
    ]
)


def box(size, centre=(0.0, 0.0, 0.0), rot: np.ndarray | None = None, drop_sides: tuple[str, ...] = ()) -> Geom:
    """Axis-aligned box (optionally rotated about its centre); `drop_sides` in {"-x","+x",...}
    removes faces, e.g. the hidden front of a cabinet body."""
    v = _BOX_V * np.asarray(size, np.float64)
    f = _BOX_F
    if drop_sides:
        order = ["-x", "+x", "-y", "+y", "-z", "+z"]
        keep = [i for i in range(12) if order[i // 2] not in drop_sides]
        f = f[keep]
    if rot is not None:
        v = pm.rotate(v, rot)
    return v + np.asarray(centre, np.float64), f.copy()


def _frame(axis: np.ndarray, up_hint=(0.0, 1.0, 0.0)) -> np.ndarray:
    """Rotation whose third column is `axis` (unit)."""
    z = axis / pm.norm(axis)
    up = np.asarray(up_hint, np.float64)
    if abs(pm.rowdot(up, z)) > 0.95:
        up = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    x = np.cross(up, z)
    x /= pm.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


def beam(p0, p1, w: float, h: float, up_hint=(0.0, 1.0, 0.0), drop_ends: tuple[bool, bool] = (False, False)) -> Geom:
    """Box of cross-section w x h from p0 to p1; `drop_ends` removes the end face at p0 / p1
    (an end that butts against another part is hidden)."""
    p0, p1 = np.asarray(p0, np.float64), np.asarray(p1, np.float64)
    d = p1 - p0
    length = float(pm.norm(d))
    v, f = box((w, h, length), drop_sides=tuple(s for s, drop in zip(("-z", "+z"), drop_ends) if drop))
    return pm.rotate(v, _frame(d, up_hint)) + (p0 + p1) / 2, f


def lathe(profile, sections: int = 24, cap_start: bool = True, cap_end: bool = True) -> Geom:
    """Surface of revolution about +Y of a (radius, y) polyline."""
    prof = np.asarray(profile, np.float64)
    m, k = len(prof), int(sections)
    th = np.linspace(0, 2 * np.pi, k, endpoint=False)
    c, s = pm.cos(th), pm.sin(th)
    v = np.empty((m * k, 3))
    v[:, 0] = (prof[:, :1] * c).ravel()
    v[:, 1] = np.repeat(prof[:, 1], k)
    v[:, 2] = (prof[:, :1] * s).ravel()
    i, j = np.meshgrid(np.arange(m - 1), np.arange(k), indexing="ij")
    a = (i * k + j).ravel()
    b = (i * k + (j + 1) % k).ravel()
    cc = ((i + 1) * k + j).ravel()
    d = ((i + 1) * k + (j + 1) % k).ravel()
    faces = [np.stack([a, cc, b], 1), np.stack([b, cc, d], 1)]
    verts = [v]
    n = len(v)
    for cap, row in ((cap_start, 0), (cap_end, m - 1)):
        if cap and prof[row, 0] > 0:
            verts.append(np.array([[0.0, prof[row, 1], 0.0]]))
            jj = np.arange(k)
            faces.append(np.stack([np.full(k, n), row * k + jj, row * k + (jj + 1) % k], 1))
            n += 1
    return np.concatenate(verts), np.concatenate(faces).astype(np.int64)


def cylinder(r: float, p0, p1, sections: int = 16, caps: bool | tuple[bool, bool] = True) -> Geom:
    """Cylinder of radius r between points p0 and p1; `caps` for both ends or (at p0, at p1)."""
    p0, p1 = np.asarray(p0, np.float64), np.asarray(p1, np.float64)
    d = p1 - p0
    length = float(pm.norm(d))
    c0, c1 = (caps, caps) if isinstance(caps, bool) else caps
    v, f = lathe([(r, 0.0), (r, length)], sections, c0, c1)
    # lathe axis is +Y; map +Y to the segment direction
    rot = _frame(d)  # columns x, y, z with z = axis
    rot = rot[:, [0, 2, 1]]  # local y -> axis
    return pm.rotate(v, rot) + p0, f


def frustum(r0: float, r1: float, p0, p1, sections: int = 16, caps: bool = True) -> Geom:
    """Truncated cone from radius r0 at p0 to r1 at p1."""
    p0, p1 = np.asarray(p0, np.float64), np.asarray(p1, np.float64)
    d = p1 - p0
    v, f = lathe([(r0, 0.0), (r1, float(pm.norm(d)))], sections, caps, caps)
    rot = _frame(d)[:, [0, 2, 1]]
    return pm.rotate(v, rot) + p0, f


def sphere(r: float, centre=(0.0, 0.0, 0.0), rings: int = 8, sections: int = 12, scale=(1.0, 1.0, 1.0)) -> Geom:
    t = np.linspace(-np.pi / 2, np.pi / 2, rings + 1)
    v, f = lathe(np.stack([r * pm.cos(t), r * pm.sin(t)], 1), sections, False, False)
    return v * np.asarray(scale) + np.asarray(centre, np.float64), f


def tube(path, radius, sections: int = 10, caps: bool = True) -> Geom:
    """Tube along a 3D polyline; `radius` scalar or per path point (parallel-transport frames)."""
    p = np.asarray(path, np.float64)
    m, k = len(p), int(sections)
    r = np.broadcast_to(np.asarray(radius, np.float64), (m,))
    t = np.gradient(p, axis=0)
    t /= pm.norm(t, axis=1, keepdims=True) + 1e-12
    n = np.zeros_like(p)
    n0 = _frame(t[0])[:, 0]
    n[0] = n0
    for i in range(1, m):
        v = n[i - 1] - pm.rowdot(n[i - 1], t[i]) * t[i]
        nv = pm.norm(v)
        n[i] = v / nv if nv > 1e-9 else _frame(t[i])[:, 0]
    b = np.cross(t, n)
    th = np.linspace(0, 2 * np.pi, k, endpoint=False)
    ring = pm.cos(th)[None, :, None] * n[:, None] + pm.sin(th)[None, :, None] * b[:, None]
    v = (p[:, None] + r[:, None, None] * ring).reshape(-1, 3)
    gi, gj = np.meshgrid(np.arange(m - 1), np.arange(k), indexing="ij")
    a = (gi * k + gj).ravel()
    bb = (gi * k + (gj + 1) % k).ravel()
    c = ((gi + 1) * k + gj).ravel()
    d = ((gi + 1) * k + (gj + 1) % k).ravel()
    faces = [np.stack([a, c, bb], 1), np.stack([bb, c, d], 1)]
    verts = [v]
    cnt = len(v)
    if caps:
        for row in (0, m - 1):
            verts.append(p[row][None])
            jj = np.arange(k)
            faces.append(np.stack([np.full(k, cnt), row * k + jj, row * k + (jj + 1) % k], 1))
            cnt += 1
    return np.concatenate(verts), np.concatenate(faces).astype(np.int64)


def arc(centre, radius: float, a0: float, a1: float, plane: str = "xy", n: int = 12) -> np.ndarray:
    """Points on a circular arc (degrees) in the given axis plane around `centre`."""
    a = np.radians(np.linspace(a0, a1, n))
    c = np.asarray(centre, np.float64)
    u, v = radius * pm.cos(a), radius * pm.sin(a)
    out = np.tile(c, (n, 1))
    ax = {"xy": (0, 1), "zy": (2, 1), "xz": (0, 2)}[plane]
    out[:, ax[0]] += u
    out[:, ax[1]] += v
    return out


def to_trimesh(g: Geom):
    import trimesh

    return trimesh.Trimesh(vertices=g[0], faces=g[1], process=False)
