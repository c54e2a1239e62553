"""PLY headers are checked against the data: counts that lie, in any element, ascii or binary."""

import os
import struct
import tracemalloc

import numpy as np
import pytest
import trimesh
from plyfile import PlyData, PlyElement

from pipeline.data.ply import read_ply
from pipeline.errors import BadInputError

XYZ = [("float", "x"), ("float", "y"), ("float", "z")]
FACE = "element face {n}\nproperty list uchar int vertex_indices\n"


def _header(fmt, n_vertex, after="", before=""):
    lines = ["ply", f"format {fmt} 1.0", before + f"element vertex {n_vertex}"]
    lines += [f"property {t} {name}" for t, name in XYZ]
    return ("\n".join(lines) + "\n" + after + "end_header\n").encode()


def _rows(n):
    return "".join(f"{i} {2 * i} {i % 3}\n" for i in range(n)).encode()


def _verts(n, bo="<"):
    return np.arange(3 * n, dtype=bo + "f4").tobytes()


def _peak_and_error(path):
    tracemalloc.start()
    try:
        read_ply(path)
    except BadInputError as e:
        err = e
    else:
        err = None
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return err, peak


@pytest.mark.parametrize("fmt, body", [("ascii", _rows(10)), ("binary_little_endian", _verts(10))])
def test_header_declaring_a_billion_vertices_is_refused_before_allocating(tmp_path, fmt, body):
    p = tmp_path / "big.ply"
    p.write_bytes(_header(fmt, 10**9) + body)
    err, peak = _peak_and_error(p)
    assert err is not None and str(p) in str(err) and "truncated" in str(err) and "1000000000" in str(err)
    assert peak < 50e6  # the declared 12 GB were never allocated


def test_list_element_declaring_a_billion_faces_is_refused_before_allocating(tmp_path):
    p = tmp_path / "faces.ply"
    p.write_bytes(_header("binary_little_endian", 2, before=FACE.format(n=10**9)) + b"\0" * 50 + _verts(2))
    err, peak = _peak_and_error(p)
    assert err is not None and "truncated" in str(err) and "'face'" in str(err)
    assert peak < 50e6


CASES = {
    # name: (file bytes, words the message must contain)
    "ascii_10_declared_1000_present": (_header("ascii", 10) + _rows(1000), "990 lines beyond"),
    "ascii_extra_rows_hidden_by_a_face_element": (_header("ascii", 10, FACE.format(n=0)) + _rows(1000), "990 lines beyond"),
    "ascii_face_count_too_high": (_header("ascii", 3, FACE.format(n=3)) + _rows(3) + b"3 0 1 2\n3 1 2 0\n", "truncated"),
    "ascii_face_count_too_low": (_header("ascii", 3, FACE.format(n=1)) + _rows(3) + b"3 0 1 2\n3 1 2 0\n", "1 lines beyond"),
    "ascii_vertex_row_inside_face_block": (_header("ascii", 2, FACE.format(n=1)) + _rows(2) + b"1 2 3\n", "does not match its header"),
    "ascii_value_overflows_uchar": (
        b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\n"
        b"property float z\nproperty uchar red\nend_header\n0 0 0 300\n1 1 1 2\n",
        "does not match its header",
    ),
    "ascii_float_in_int_property": (
        b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\n"
        b"property float z\nproperty int lab\nend_header\n0 0 0 1.5\n1 1 1 2\n",
        "does not match its header",
    ),
    "ascii_non_ascii_bytes": (_header("ascii", 2) + b"0 0 0\n1 \xff 1\n", "does not match its header"),
    "binary_5_trailing_bytes": (_header("binary_little_endian", 10) + _verts(10) + b"abcde", "5 bytes after"),
    "binary_10_declared_1000_present": (_header("binary_little_endian", 10) + _verts(1000), "11880 bytes after"),
    "binary_faces_after_vertices_truncated": (
        _header("binary_little_endian", 2, FACE.format(n=5)) + _verts(2) + struct.pack("<Biii", 3, 0, 1, 0),
        "truncated",
    ),
    "binary_face_list_longer_than_file": (
        _header("binary_little_endian", 2, FACE.format(n=1)) + _verts(2) + struct.pack("<Bi", 200, 0),
        "does not match its header",
    ),
    "binary_extra_bytes_after_faces": (
        _header("binary_little_endian", 2, FACE.format(n=1)) + _verts(2) + struct.pack("<Biii", 3, 0, 1, 0) + b"\0" * 16,
        "16 bytes after",
    ),
    "negative_count": (_header("ascii", -3), "negative count"),
    "element_without_properties": (_header("ascii", 1, "element junk 5\n") + _rows(1), "has no properties"),
    "duplicate_property": (_header("ascii", 1).replace(b"property float z", b"property float x"), "malformed PLY header"),
    "end_header_with_trailing_space": (
        _header("binary_little_endian", 2).replace(b"end_header", b"end_header ") + b"\0" * 200_000,
        "malformed PLY header",
    ),
    "vertex_list_property": (
        _header("ascii", 1).replace(b"property float z", b"property list uchar float z") + b"0 0 1 0\n",
        "list properties",
    ),
    "no_vertex_element": (b"ply\nformat ascii 1.0\nelement point 1\nproperty float x\nend_header\n1\n", "no 'vertex'"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_header_that_disagrees_with_the_data_is_an_error_naming_the_file(tmp_path, name):
    data, words = CASES[name]
    p = tmp_path / f"{name}.ply"
    p.write_bytes(data)
    with pytest.raises(BadInputError) as ei:
        read_ply(p)
    assert str(p) in str(ei.value) and words in str(ei.value), str(ei.value)


def test_fifo_ply_is_an_error_not_a_hang(tmp_path):
    p = tmp_path / "pc.ply"
    os.mkfifo(p)
    with pytest.raises(BadInputError, match="FIFO"):
        read_ply(p)  # stat before open: the FIFO is never opened


def test_blank_lines_and_crlf_in_ascii_are_accepted(tmp_path):
    body = b"0 0 0\r\n\r\n1 2 3\r\n  \r\n4 5 6\r\n3 0 1 2\r\n\r\n"
    p = tmp_path / "crlf.ply"
    p.write_bytes(_header("ascii", 3, FACE.format(n=1)).replace(b"\n", b"\r\n") + body)
    out = read_ply(p)
    np.testing.assert_array_equal(out.xyz, [[0, 0, 0], [1, 2, 3], [4, 5, 6]])
    assert out.xyz.dtype == np.float64 and out.props["x"].dtype == np.float32


@pytest.mark.parametrize("text, byte_order", [(True, "="), (False, ">"), (False, "<")])
def test_plyfile_written_faces_before_vertices_read_exactly(tmp_path, text, byte_order):
    rng = np.random.default_rng(3)
    v = np.empty(20, [("nx", "f4"), ("x", "f8"), ("y", "f8"), ("z", "f8"), ("red", "u1"), ("green", "u1"), ("blue", "u1"), ("lab", "i2")])
    for k in ("nx", "x", "y", "z"):
        v[k] = rng.normal(size=20)
    for k in ("red", "green", "blue"):
        v[k] = rng.integers(0, 256, 20)
    v["lab"] = rng.integers(-1, 9, 20)
    f = np.empty(2, [("vertex_indices", "O")])
    f["vertex_indices"] = [np.array([0, 1, 2], "i4"), np.array([3, 4, 5, 6], "i4")]
    p = tmp_path / "pf.ply"
    PlyData([PlyElement.describe(f, "face"), PlyElement.describe(v, "vertex")], text=text, byte_order=byte_order).write(str(p))
    out = read_ply(p)
    assert list(out.props) == ["nx", "x", "y", "z", "red", "green", "blue", "lab"]
    for k in out.props:
        assert out.props[k].dtype == v.dtype[k] and out.props[k].dtype.isnative
        np.testing.assert_array_equal(out.props[k], v[k])
    np.testing.assert_array_equal(out.xyz, np.stack([v["x"], v["y"], v["z"]], 1))
    np.testing.assert_array_equal(out.rgb, np.stack([v["red"], v["green"], v["blue"]], 1))


@pytest.mark.parametrize("encoding", ["binary", "ascii"])
def test_trimesh_exported_mesh_reads_its_vertices(tmp_path, encoding):
    m = trimesh.creation.icosphere(subdivisions=1)
    m.visual.vertex_colors = np.random.default_rng(0).integers(0, 256, (len(m.vertices), 4)).astype(np.uint8)
    p = tmp_path / "m.ply"
    p.write_bytes(m.export(file_type="ply", encoding=encoding))
    out = read_ply(p)
    np.testing.assert_array_equal(out.xyz, np.asarray(m.vertices, np.float32).astype(np.float64))
    np.testing.assert_array_equal(out.rgb, m.visual.vertex_colors[:, :3])


@pytest.mark.parametrize(
    "data, words",
    [
        (_header("ascii", 10**9) + _rows(10), "truncated"),
        (_header("ascii", 10) + _rows(1000), "990 lines beyond"),
        (_header("binary_little_endian", 10) + _verts(10) + b"abcde", "5 bytes after"),
    ],
    ids=["ascii_1e9_declared_10_present", "ascii_10_declared_1000_present", "binary_trailing_bytes"],
)
def test_own_shape_ply_with_lying_header_fails_instead_of_trimesh_trusting_it(tmp_path, data, words):
    from pipeline.data.shapes import read_shape

    p = tmp_path / "scan.ply"
    p.write_bytes(data)
    with pytest.raises(BadInputError) as ei:
        read_shape(p, category="Chair", object_id="Chair/scan", part_names=("back", "seat"), n_points=50)
    assert "object Chair/scan" in str(ei.value) and str(p) in str(ei.value) and words in str(ei.value)
