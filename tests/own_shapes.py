"""Tiny shape files for the own-shapes tests, built with trimesh + PIL (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def textured_box_obj(folder: Path, stem: str = "crate") -> Path:
    """An .obj box (12 faces) with UVs, an .mtl and a 4x4 PNG texture: red left half, blue right half."""
    import trimesh
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    box = trimesh.creation.box(extents=(2.0, 1.0, 1.0))
    box.apply_translation((10.0, -3.0, 5.0))  # far from the origin: exports must go back here
    tex = np.zeros((4, 4, 3), np.uint8)
    tex[:, :2] = (220, 20, 20)
    tex[:, 2:] = (20, 20, 220)
    uv = np.clip((box.vertices[:, :2] - box.vertices[:, :2].min(0)) / np.ptp(box.vertices[:, :2], axis=0), 0.05, 0.95)
    box.visual = trimesh.visual.TextureVisuals(uv=uv, image=Image.fromarray(tex))
    path = folder / f"{stem}.obj"
    box.export(path)
    return path


def coloured_ply_points(folder: Path, stem: str = "scan", n: int = 1500, seed: int = 0) -> Path:
    """A binary .ply point cloud (no faces) with per-point colours: a noisy cylinder."""
    import trimesh

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t, z = rng.uniform(0, 2 * np.pi, n), rng.uniform(-1, 1, n)
    xyz = np.stack([np.cos(t), np.sin(t), z], 1)
    rgb = np.where(z[:, None] > 0, [30, 200, 30], [200, 200, 30]).astype(np.uint8)
    path = folder / f"{stem}.ply"
    trimesh.PointCloud(xyz, colors=np.concatenate([rgb, np.full((n, 1), 255, np.uint8)], 1)).export(path)
    return path


def part_glb(folder: Path, stem: str = "stool", names: tuple[str, ...] = ("back", "seat", "leg_1", "leg_2")) -> Path:
    """A .glb scene of named boxes (part groups) with vertex colours."""
    import trimesh

    folder.mkdir(parents=True, exist_ok=True)
    scene = trimesh.Scene()
    for i, name in enumerate(names):
        m = trimesh.creation.box(extents=(0.4 + 0.2 * i, 0.3, 0.6))
        m.apply_translation((i * 0.8, 0.1 * i, 0.0))
        m.visual.vertex_colors = np.tile([40 * i + 40, 100, 200 - 30 * i, 255], (len(m.vertices), 1)).astype(np.uint8)
        scene.add_geometry(m, node_name=name, geom_name=name)
    path = folder / f"{stem}.glb"
    scene.export(path)
    return path
