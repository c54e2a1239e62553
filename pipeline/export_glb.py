"""Part-coloured GLB files of predicted labels (one node per part, named after it).

Meshes: every face takes the majority label of the points sampled on it (ties: the lower
label id); faces no sample fell on take the label of the nearest sampled point (face
centroid to point). Vertices are unshared per face so each face keeps its part's flat
colour. Point clouds: one coloured point node per part. Part ``-1`` is the node
``unlabelled`` in the palette's grey.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def face_majority_labels(
    face_of_point: np.ndarray, labels: np.ndarray, vertices: np.ndarray, faces: np.ndarray, points: np.ndarray
) -> np.ndarray:
    """(F,) label per face: majority of its samples, else the nearest sample's label."""
    from scipy.spatial import cKDTree

    F = len(faces)
    lab = np.asarray(labels, np.int64) + 1  # 0 = unlabelled
    n_lab = int(lab.max()) + 1 if lab.size else 1
    counts = np.zeros((F, n_lab), np.int64)
    np.add.at(counts, (np.asarray(face_of_point, np.int64), lab), 1)
    out = counts.argmax(axis=1) - 1
    empty = counts.sum(axis=1) == 0
    if empty.any() and len(points):
        centroids = np.asarray(vertices, np.float64)[np.asarray(faces)[empty]].mean(axis=1)
        _, nn = cKDTree(np.asarray(points, np.float64)).query(centroids)
        out[empty] = lab[nn] - 1
    return out.astype(np.int64)


def _node_name(label: int, part_names: Sequence[str]) -> str:
    return "unlabelled" if label < 0 else str(part_names[label])


def mesh_glb(vertices: np.ndarray, faces: np.ndarray, face_labels: np.ndarray, part_names: Sequence[str], palette: np.ndarray) -> bytes:
    """GLB bytes: one mesh node per present part with its palette colour (palette row 0 = -1)."""
    import trimesh

    scene = trimesh.Scene()
    V, Fc = np.asarray(vertices, np.float64), np.asarray(faces, np.int64)
    for k in np.unique(face_labels):
        sel = Fc[face_labels == k]
        tri = V[sel].reshape(-1, 3)
        colour = np.append(palette[int(k) + 1], 255).astype(np.uint8)
        m = trimesh.Trimesh(tri, np.arange(len(tri)).reshape(-1, 3), process=False, vertex_colors=np.tile(colour, (len(tri), 1)))
        name = _node_name(int(k), part_names)
        scene.add_geometry(m, node_name=name, geom_name=name)
    return scene.export(file_type="glb")


def points_glb(xyz: np.ndarray, labels: np.ndarray, part_names: Sequence[str], palette: np.ndarray) -> bytes:
    """GLB bytes: one coloured point-cloud node per present part."""
    import trimesh

    scene = trimesh.Scene()
    for k in np.unique(labels):
        pts = np.asarray(xyz, np.float64)[labels == k]
        colour = np.append(palette[int(k) + 1], 255).astype(np.uint8)
        name = _node_name(int(k), part_names)
        scene.add_geometry(trimesh.PointCloud(pts, colors=np.tile(colour, (len(pts), 1))), node_name=name, geom_name=name)
    return scene.export(file_type="glb")
