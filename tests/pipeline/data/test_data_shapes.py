"""Reading your own shape files (pipeline/data/shapes.py) and part-coloured GLB export (pipeline/export_glb.py)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from own_shapes import coloured_ply_points, part_glb, textured_box_obj  # noqa: E402

from pipeline.data.shapes import load_mesh, part_of_name, read_shape  # noqa: E402
from pipeline.errors import BadInputError  # noqa: E402
from pipeline.export_glb import face_majority_labels, mesh_glb, points_glb  # noqa: E402
from pipeline.viz_labels import label_palette  # noqa: E402

PARTS = ("arm", "back", "leg", "seat", "wheel")


def test_textured_obj_is_sampled_with_texture_colours_and_normalised(tmp_path):
    obj = textured_box_obj(tmp_path)
    cloud, info = read_shape(obj, category="Chair", object_id="Chair/crate", part_names=PARTS, n_points=800, seed=3)
    assert cloud.xyz.shape == (800, 3) and info.kind == "mesh" and info.has_colour and cloud.sem is None
    assert np.allclose(cloud.centre, (10, -3, 5), atol=0.1) and np.isclose(np.linalg.norm(cloud.xyz, axis=1).max(), 1.0)
    raw = cloud.raw_xyz()
    assert raw[:, 0].min() >= 9.0 - 1e-6 and raw[:, 0].max() <= 11.0 + 1e-6
    red = cloud.rgb[:, 0] > 2 * cloud.rgb[:, 2]
    blue = cloud.rgb[:, 2] > 2 * cloud.rgb[:, 0]
    assert red.sum() > 100 and blue.sum() > 100 and (red | blue).all()
    again, _ = read_shape(obj, category="Chair", object_id="Chair/crate", part_names=PARTS, n_points=800, seed=3)
    np.testing.assert_array_equal(again.xyz, cloud.xyz)  # seeded
    assert info.face.shape == (800,) and info.face.max() < info.n_faces == 12


def test_part_groups_label_a_glb_and_labels_npy_wins(tmp_path):
    glb = part_glb(tmp_path, names=("back", "seat", "leg_1", "Leg.002", "handle"))
    cloud, info = read_shape(glb, category="Chair", object_id="Chair/stool", part_names=PARTS, n_points=2000)
    assert info.labels_from == "part groups" and set(np.unique(cloud.sem)) == {-1, 1, 2, 3}
    assert len(np.unique(cloud.ins[cloud.sem == 2])) == 2  # two legs, two instances
    n_faces = len(load_mesh(glb).faces)
    np.save(tmp_path / "stool.labels.npy", np.full(n_faces, 4, np.int64))
    cloud, info = read_shape(glb, category="Chair", object_id="Chair/stool", part_names=PARTS, n_points=500)
    assert info.labels_from == "labels.npy" and (cloud.sem == 4).all()
    np.save(tmp_path / "stool.labels.npy", np.zeros(n_faces + 1, np.int64))
    with pytest.raises(BadInputError, match=f"{n_faces} integers \\(one per face\\)"):
        read_shape(glb, category="Chair", object_id="Chair/stool", part_names=PARTS, n_points=500)
    assert part_of_name("Seat_12", PARTS) == 3 and part_of_name("chair", PARTS) == -1


def test_point_cloud_is_subsampled_and_bad_files_are_named(tmp_path):
    ply = coloured_ply_points(tmp_path, n=700)
    cloud, info = read_shape(ply, category="Chair", object_id="Chair/scan", part_names=PARTS, n_points=500)
    assert info.kind == "points" and cloud.xyz.shape == (500, 3) and info.face is None
    assert {tuple(c) for c in np.unique(cloud.rgb, axis=0)} == {(30, 200, 30), (200, 200, 30)}
    (tmp_path / "flat.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    with pytest.raises(BadInputError, match="mesh has no faces") as e:
        read_shape(tmp_path / "flat.obj", category="Chair", object_id="Chair/flat", part_names=PARTS, n_points=50)
    assert "flat.obj" in str(e.value)
    (tmp_path / "bad.stl").write_bytes(b"\x00" * 10)
    with pytest.raises(BadInputError, match="bad.stl"):
        read_shape(tmp_path / "bad.stl", category="Chair", object_id="Chair/bad", part_names=PARTS, n_points=50)


def test_uncoloured_mesh_is_grey(tmp_path):
    path = tmp_path / "plain.stl"
    trimesh.creation.icosphere(subdivisions=1).export(path)
    cloud, info = read_shape(path, category="Chair", object_id="Chair/plain", part_names=PARTS, n_points=300)
    assert not info.has_colour and (cloud.rgb == 128).all()


def test_face_majority_labels_and_glb_round_trip():
    box = trimesh.creation.box()
    pts = box.triangles_center[:10]
    face = np.array([0, 0, 0, 1, 1, 2, 3, 4, 5, 6])
    labels = np.array([2, 2, 0, -1, 1, 1, 0, 0, 0, 1])
    flab = face_majority_labels(face, labels, box.vertices, box.faces, pts)
    assert flab[:7].tolist() == [2, -1, 1, 0, 0, 0, 1]  # face 1: tie -1/1 -> the lower id
    assert (flab[7:] >= -1).all() and len(flab) == 12  # unsampled faces take the nearest sample's label
    pal = label_palette(3)
    scene = trimesh.load(io.BytesIO(mesh_glb(box.vertices, box.faces, flab, ("a", "b", "c"), pal)), file_type="glb", force="scene")
    got = {n: scene.geometry[scene.graph[n][1]] for n in scene.graph.nodes_geometry}
    assert sum(len(g.faces) for g in got.values()) == 12 and (got["c"].visual.vertex_colors[:, :3] == pal[3]).all()
    scene = trimesh.load(io.BytesIO(points_glb(pts, labels, ("a", "b", "c"), pal)), file_type="glb", force="scene")
    got = {n: scene.geometry[scene.graph[n][1]] for n in scene.graph.nodes_geometry}
    assert {n: len(g.vertices) for n, g in got.items()} == {"unlabelled": 1, "a": 4, "b": 3, "c": 2}
    assert (np.asarray(got["unlabelled"].colors)[:, :3] == pal[0]).all()
