"""Your own shapes: point clouds and meshes (.ply, .obj, .glb/.gltf, .off, .stl) via trimesh.

A point cloud (a .ply without faces) is taken as is (subsampled, seeded, to ``n_points`` when it
has more). A mesh is sampled by area to ``n_points`` coloured points: texture colour at the
interpolated UV (times the material colour), else vertex/face colours, else the material
colour, else neutral grey (reported, so the caller can log it). Points are normalised like
every other source (:func:`pipeline.data.cloud.make_cloud`, SPEC §2.1); the centre and scale
kept in the cloud map them back to the file's coordinates for export.

Labels are optional (an unlabelled shape can still be predicted):

- ``<stem>.labels.npy`` next to the file: integer part ids (``-1`` = no part), one per point
  for a point cloud, one per **face** for a mesh (faces in file order, the order of
  :func:`load_mesh`); ``<stem>.instances.npy`` (same length) optionally gives instance ids,
  otherwise each part id is one instance.
- part groups: a mesh made of several named pieces (GLB/glTF nodes, OBJ ``o``/``g`` groups)
  whose names are part names (case-insensitive; a trailing number such as ``leg_2`` or
  ``leg.001`` is ignored) is labelled by them, one instance per piece. Pieces with other
  names are ``-1``.

Label files are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.cloud import LabelledCloud, make_cloud
from pipeline.data.input_file import exists
from pipeline.data.ply import GREY, check_ply
from pipeline.data.safe_pickle import load_npy_restricted
from pipeline.data.sampling import sample_triangles
from pipeline.errors import BadInputError

POINT_SUFFIXES: tuple[str, ...] = (".ply",)
MESH_SUFFIXES: tuple[str, ...] = (".obj", ".glb", ".gltf", ".off", ".stl")
SHAPE_SUFFIXES: tuple[str, ...] = POINT_SUFFIXES + MESH_SUFFIXES
LABELS_SUFFIX = ".labels.npy"
INSTANCES_SUFFIX = ".instances.npy"


@dataclass
class LoadedMesh:
    """A shape file as one triangle mesh in file coordinates (pieces concatenated in file order)."""

    vertices: np.ndarray  # (V,3) float64
    faces: np.ndarray  # (F,3) int64
    piece: np.ndarray  # (F,) int piece index of each face
    piece_names: list[str]
    pieces: list[Any]  # trimesh.Trimesh per piece (transformed into the scene frame), for colours


@dataclass
class ShapeInfo:
    """What ingest records about a shape besides the cloud."""

    kind: str  # "points" | "mesh"
    has_colour: bool
    labels_from: str | None  # "labels.npy" | "part groups" | None
    face: np.ndarray | None  # (N,) int32 face of each sample (meshes), for exports
    n_faces: int


def is_shape_file(path: Path) -> bool:
    """A supported shape file (label side files ``*.labels.npy`` are not shapes)."""
    return path.is_file() and path.suffix.lower() in SHAPE_SUFFIXES


def _fail(reason: str, object_id: str | None, path: Path) -> None:
    raise BadInputError(reason, object_id=object_id, path=path)


def _load_scene(path: Path, object_id: str | None):
    import trimesh

    if path.suffix.lower() == ".ply":  # trimesh reads a header's lying counts as truth
        try:
            check_ply(path)
        except BadInputError as e:
            _fail(e.reason, object_id, path)
    try:
        return trimesh.load(str(path), force="scene", process=False)
    except Exception as exc:  # noqa: BLE001 - any parser failure means an unreadable file
        _fail(f"cannot read shape file ({type(exc).__name__}: {exc})", object_id, path)


def _geometries(scene: Any) -> list[tuple[str, Any]]:
    """(name, geometry in the scene frame) for every node holding geometry, in graph order."""
    out = []
    for node in scene.graph.nodes_geometry:
        transform, geom_name = scene.graph[node]
        geom = scene.geometry[geom_name].copy()
        if not np.allclose(transform, np.eye(4)):
            geom.apply_transform(transform)
        out.append((str(node if node != geom_name and node else geom_name), geom))
    return out


def load_mesh(path: str | Path, object_id: str | None = None) -> LoadedMesh | None:
    """The file's triangles (None for a point cloud); BadInputError for unreadable files and
    mesh formats without faces."""
    path = Path(path)
    scene = _load_scene(path, object_id)
    meshes = [(n, g) for n, g in _geometries(scene) if getattr(g, "faces", None) is not None and len(g.faces) > 0]
    if not meshes:
        if path.suffix.lower() in MESH_SUFFIXES:
            _fail(f"mesh has no faces ({path.suffix} needs triangles; give bare points as a .ply point cloud)", object_id, path)
        return None
    verts, faces, piece, offset = [], [], [], 0
    for i, (_, m) in enumerate(meshes):
        verts.append(np.asarray(m.vertices, np.float64))
        faces.append(np.asarray(m.faces, np.int64) + offset)
        piece.append(np.full(len(m.faces), i, np.int64))
        offset += len(m.vertices)
    return LoadedMesh(np.concatenate(verts), np.concatenate(faces), np.concatenate(piece), [n for n, _ in meshes], [m for _, m in meshes])


def _points(path: Path, object_id: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    scene = _load_scene(path, object_id)
    xyz: list[np.ndarray] = []
    rgb: list[np.ndarray | None] = []
    for _, g in _geometries(scene):
        v = np.asarray(getattr(g, "vertices", np.zeros((0, 3))), np.float64)
        xyz.append(v)
        cols = np.asarray(getattr(g, "colors", np.zeros((0, 4))))
        rgb.append(cols[:, :3].astype(np.uint8) if cols.ndim == 2 and len(cols) == len(v) else None)
    if not xyz or sum(len(v) for v in xyz) == 0:
        _fail("point cloud has zero points", object_id, path)
    coloured = [c for c in rgb if c is not None]
    colour = np.concatenate(coloured) if len(coloured) == len(rgb) else None  # all pieces or none
    return np.concatenate(xyz), colour


def part_of_name(name: str, part_names: tuple[str, ...] | list[str]) -> int:
    """Part id of a piece name ('Leg_2', 'leg.001', 'lid' -> id), -1 when it is no part name."""
    base = re.sub(r"[\s_.\-]*\d+$", "", name.strip()).lower()
    lower = [p.lower() for p in part_names]
    return lower.index(base) if base in lower else -1


def _side_labels(path: Path, n: int, what: str, object_id: str | None) -> tuple[np.ndarray, np.ndarray] | None:
    lab_path = path.with_name(path.stem + LABELS_SUFFIX)
    if not exists(lab_path):  # not is_file(): a FIFO or symlink loop is an error, not "unlabelled"
        return None
    try:
        sem = load_npy_restricted(lab_path)  # regular file; header shape checked against the data
    except BadInputError as exc:
        _fail(exc.reason, object_id, lab_path)
    except Exception as exc:  # noqa: BLE001
        _fail(f"cannot read labels ({type(exc).__name__}: {exc})", object_id, lab_path)
    if sem.ndim != 1 or len(sem) != n or not np.issubdtype(sem.dtype, np.integer):
        _fail(f"labels must be {n} integers (one per {what}), got shape {sem.shape} dtype {sem.dtype}", object_id, lab_path)
    ins_path = path.with_name(path.stem + INSTANCES_SUFFIX)
    if exists(ins_path):
        try:
            ins = load_npy_restricted(ins_path)
        except BadInputError as exc:
            _fail(exc.reason, object_id, ins_path)
        except Exception as exc:  # noqa: BLE001
            _fail(f"cannot read instances ({type(exc).__name__}: {exc})", object_id, ins_path)
        if ins.shape != sem.shape or not np.issubdtype(ins.dtype, np.integer):
            _fail(f"instances must be {n} integers like the labels, got shape {ins.shape}", object_id, ins_path)
    else:
        ins = np.where(sem >= 0, sem, -1)
    return sem.astype(np.int64), ins.astype(np.int64)


def read_shape(
    path: str | Path,
    *,
    category: str,
    object_id: str,
    part_names: tuple[str, ...] | list[str],
    n_points: int,
    seed: int = 0,
) -> tuple[LabelledCloud, ShapeInfo]:
    """One shape file -> a normalised LabelledCloud (labelled when labels are given) + info."""
    from pipeline.data.mobility import visual_colours

    path = Path(path)
    K = len(part_names)
    rng = np.random.default_rng(seed)
    mesh = load_mesh(path, object_id)
    sem = ins = None
    labels_from = None
    face_of_point = None
    if mesh is None:
        xyz, rgb = _points(path, object_id)
        has_colour = rgb is not None
        labels = _side_labels(path, len(xyz), "point", object_id)
        if labels is not None:
            sem, ins = labels
            labels_from = "labels.npy"
        if len(xyz) > n_points:  # seeded subsample to the configured size
            keep = np.sort(rng.choice(len(xyz), n_points, replace=False))
            xyz, rgb = xyz[keep], (None if rgb is None else rgb[keep])
            sem, ins = (None, None) if sem is None or ins is None else (sem[keep], ins[keep])
        rgb = rgb if rgb is not None else np.full((len(xyz), 3), GREY, np.uint8)
        kind, n_faces = "points", 0
    else:
        tris = mesh.vertices[mesh.faces]
        try:
            xyz, face, bary = sample_triangles(tris, n_points, rng)
        except ValueError as exc:
            _fail(f"{exc} (all faces are degenerate)", object_id, path)
        rgb = np.empty((n_points, 3), np.uint8)
        first = np.concatenate([[0], np.cumsum([len(m.faces) for m in mesh.pieces])])
        has_colour = any(getattr(m.visual, "kind", None) is not None for m in mesh.pieces)
        piece = mesh.piece[face]
        for i in np.unique(piece):
            sel = piece == i
            rgb[sel] = visual_colours(mesh.pieces[i], face[sel] - first[i], bary[sel])
        labels = _side_labels(path, len(mesh.faces), "face", object_id)
        if labels is not None:
            sem, ins = labels[0][face], labels[1][face]
            labels_from = "labels.npy"
        else:
            piece_part = np.array([part_of_name(n, part_names) for n in mesh.piece_names])
            if len(mesh.piece_names) > 1 and (piece_part >= 0).any():
                sem = piece_part[piece]
                ins = np.where(sem >= 0, piece, -1)
                labels_from = "part groups"
        face_of_point = face.astype(np.int32)
        kind, n_faces = "mesh", int(len(mesh.faces))
    cloud = make_cloud(xyz, rgb, sem, ins, object_id=object_id, category=category, source="files", n_parts=K, path=path)
    return cloud, ShapeInfo(kind=kind, has_colour=bool(has_colour), labels_from=labels_from, face=face_of_point, n_faces=n_faces)
