import struct

import numpy as np
import pytest

from pipeline.data.ply import read_ply, write_ply
from pipeline.errors import BadInputError


def _cloud(n=50, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)).astype(np.float32), rng.integers(0, 256, (n, 3)).astype(np.uint8)


def test_binary_round_trip_with_label_properties(tmp_path):
    xyz, rgb = _cloud()
    sem = np.arange(50, dtype=np.int16) % 5 - 1
    ins = np.arange(50, dtype=np.int32) - 3
    p = tmp_path / "a.ply"
    write_ply(p, xyz, rgb, {"sem": sem, "ins": ins})
    out = read_ply(p)
    np.testing.assert_array_equal(out.xyz, xyz.astype(np.float64))
    np.testing.assert_array_equal(out.rgb, rgb)
    assert out.has_colour
    np.testing.assert_array_equal(out.props["sem"], sem)
    np.testing.assert_array_equal(out.props["ins"], ins)
    assert out.props["sem"].dtype == np.int16 and out.props["ins"].dtype == np.int32


def test_write_double_keeps_precision(tmp_path):
    xyz = np.array([[1e6 + 0.125, 2.0, 3.0], [0.0, 1.0, 2.0]])
    write_ply(tmp_path / "d.ply", xyz)
    out = read_ply(tmp_path / "d.ply")
    np.testing.assert_array_equal(out.xyz, xyz)
    assert not out.has_colour and (out.rgb == 128).all()


def _header(fmt, n, props, extra_elements=""):
    lines = ["ply", f"format {fmt} 1.0", "comment made by a test", f"element vertex {n}"]
    lines += [f"property {t} {name}" for t, name in props]
    return ("\n".join(lines) + "\n" + extra_elements + "end_header\n").encode()


def test_ascii_with_ignored_properties_and_faces(tmp_path):
    xyz, rgb = _cloud(4)
    props = [
        ("float", "x"),
        ("float", "y"),
        ("float", "z"),
        ("float", "nx"),
        ("uchar", "red"),
        ("uchar", "green"),
        ("uchar", "blue"),
        ("uchar", "alpha"),
    ]
    rows = [f"{x:.6f} {y:.6f} {z:.6f} 0.5 {r} {g} {b} 255" for (x, y, z), (r, g, b) in zip(xyz, rgb)]
    body = "\n".join(rows) + "\n3 0 1 2\n"
    data = _header("ascii", 4, props, "element face 1\nproperty list uchar int vertex_indices\n") + body.encode()
    (tmp_path / "a.ply").write_bytes(data)
    out = read_ply(tmp_path / "a.ply")
    np.testing.assert_allclose(out.xyz, xyz, atol=1e-6)
    np.testing.assert_array_equal(out.rgb, rgb)
    assert set(out.props) == {"x", "y", "z", "nx", "red", "green", "blue", "alpha"}


def test_big_endian_double_and_float_colours(tmp_path):
    xyz, _ = _cloud(6)
    col = np.array([[0.0, 0.5, 1.0]] * 6)
    props = [("double", "x"), ("double", "y"), ("double", "z"), ("float", "red"), ("float", "green"), ("float", "blue")]
    body = b"".join(struct.pack(">dddfff", *p, *c) for p, c in zip(xyz.astype(float), col))
    (tmp_path / "b.ply").write_bytes(_header("binary_big_endian", 6, props) + body)
    out = read_ply(tmp_path / "b.ply")
    np.testing.assert_allclose(out.xyz, xyz, atol=1e-6)
    np.testing.assert_array_equal(out.rgb, np.array([[0, 128, 255]] * 6, np.uint8))


def test_binary_list_element_before_vertices_is_skipped(tmp_path):
    xyz, rgb = _cloud(3)
    head = (
        b"ply\nformat binary_little_endian 1.0\nelement face 2\nproperty list uchar int vertex_indices\n"
        b"element vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
        b"property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
    )
    faces = struct.pack("<Biii", 3, 0, 1, 2) + struct.pack("<Bii", 2, 0, 1)
    verts = b"".join(struct.pack("<fffBBB", *p, *c) for p, c in zip(xyz, rgb))
    (tmp_path / "f.ply").write_bytes(head + faces + verts)
    out = read_ply(tmp_path / "f.ply")
    np.testing.assert_allclose(out.xyz, xyz)
    np.testing.assert_array_equal(out.rgb, rgb)


def _good_binary(tmp_path, n=10):
    xyz, rgb = _cloud(n)
    p = tmp_path / "g.ply"
    write_ply(p, xyz, rgb)
    return p, p.read_bytes()


@pytest.mark.parametrize(
    "case",
    [
        "truncated",
        "no_magic",
        "no_end_header",
        "empty_file",
        "zero_vertices",
        "nan",
        "missing_z",
        "count_mismatch_binary",
        "count_mismatch_ascii",
        "bad_header_line",
        "ascii_text_value",
        "ascii_short_row",
    ],
)
def test_bad_files_raise_with_path(tmp_path, case):
    p, data = _good_binary(tmp_path)
    bad = tmp_path / f"{case}.ply"
    if case == "truncated":
        bad.write_bytes(data[:-7])
    elif case == "no_magic":
        bad.write_bytes(b"plz" + data[3:])
    elif case == "no_end_header":
        bad.write_bytes(data.replace(b"end_header", b"end_headxx"))
    elif case == "empty_file":
        bad.write_bytes(b"")
    elif case == "zero_vertices":
        bad.write_bytes(_header("binary_little_endian", 0, [("float", "x"), ("float", "y"), ("float", "z")]))
    elif case == "nan":
        write_ply(bad, np.array([[0, 0, 0], [np.nan, 1, 1]], np.float32))
    elif case == "missing_z":
        bad.write_bytes(_header("ascii", 2, [("float", "x"), ("float", "y")]) + b"1 2\n3 4\n")
    elif case == "count_mismatch_binary":
        bad.write_bytes(data.replace(b"element vertex 10", b"element vertex 5"))
    elif case == "count_mismatch_ascii":
        props = [("float", "x"), ("float", "y"), ("float", "z")]
        bad.write_bytes(_header("ascii", 2, props) + b"0 0 0\n1 1 1\n2 2 2\n")
    elif case == "bad_header_line":
        bad.write_bytes(data.replace(b"property float z", b"property flot z"))
    elif case == "ascii_text_value":
        props = [("float", "x"), ("float", "y"), ("float", "z")]
        bad.write_bytes(_header("ascii", 2, props) + b"0 0 0\n1 abc 1\n")
    elif case == "ascii_short_row":
        props = [("float", "x"), ("float", "y"), ("float", "z")]
        bad.write_bytes(_header("ascii", 2, props) + b"0 0 0\n1 1\n")
    with pytest.raises(BadInputError) as ei:
        read_ply(bad)
    assert str(bad) in str(ei.value)


def test_missing_file_raises(tmp_path):
    with pytest.raises(BadInputError, match="cannot read"):
        read_ply(tmp_path / "nope.ply")


def test_write_rejects_bad_shapes(tmp_path):
    with pytest.raises(ValueError):
        write_ply(tmp_path / "x.ply", np.zeros((3, 2)))
    with pytest.raises(ValueError):
        write_ply(tmp_path / "x.ply", np.zeros((3, 3)), np.zeros((2, 3), np.uint8))
    with pytest.raises(ValueError):
        write_ply(tmp_path / "x.ply", np.zeros((3, 3)), None, {"lab": np.zeros(3, np.float32)})
