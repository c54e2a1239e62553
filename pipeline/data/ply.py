"""Minimal PLY point-cloud reader/writer (ascii, binary little/big endian).

Why our own: the pipeline only needs vertex x/y/z, colours and a few integer label
properties, and the usual readers (open3d, plyfile) are heavy or absent. A header parser plus
one numpy structured dtype read covers every PartNetE `pc.ply` and what we export.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.errors import BadInputError

_PLY_TYPES: dict[str, str] = {
    "char": "i1", "int8": "i1",
    "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4",
    "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4",
    "double": "f8", "float64": "f8",
}
_NUMPY_TO_PLY: dict[str, str] = {
    "i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort",
    "i4": "int", "u4": "uint", "f4": "float", "f8": "double",
}
_COLOUR_NAMES = (("red", "green", "blue"), ("r", "g", "b"), ("diffuse_red", "diffuse_green", "diffuse_blue"))
_MAX_HEADER_BYTES = 1 << 16
GREY = 128


@dataclass
class _Property:
    name: str
    dtype: str  # numpy short code without byte order, e.g. "f4"
    list_count: str | None = None  # numpy code of the list length for list properties


@dataclass
class _Element:
    name: str
    count: int
    props: list[_Property] = field(default_factory=list)

    @property
    def has_list(self) -> bool:
        return any(p.list_count is not None for p in self.props)


@dataclass
class PlyPoints:
    """Vertex data of a PLY file: raw xyz (float64), rgb uint8, every vertex property."""

    xyz: np.ndarray  # (N,3) float64, as stored (not normalised)
    rgb: np.ndarray  # (N,3) uint8; grey 128 when the file has no colour
    has_colour: bool
    props: dict[str, np.ndarray]  # every scalar vertex property by name (file dtype)


def _fail(path: Path, reason: str) -> None:
    raise BadInputError(reason, path=path)


def _parse_header(path: Path, data: bytes) -> tuple[str, list[_Element], int]:
    """Return (format, elements, byte offset of the body)."""
    if not data.startswith(b"ply"):
        _fail(path, "not a PLY file (missing 'ply' magic)")
    end = data.find(b"end_header", 0, _MAX_HEADER_BYTES)
    if end < 0:
        _fail(path, "PLY header has no 'end_header' (truncated or corrupt)")
    nl = data.find(b"\n", end)
    body_start = len(data) if nl < 0 else nl + 1
    try:
        header = data[:end].decode("ascii")
    except UnicodeDecodeError:
        _fail(path, "PLY header is not ASCII (corrupt)")
    fmt = None
    elements: list[_Element] = []
    for raw_line in header.splitlines()[1:]:
        tok = raw_line.split()
        if not tok or tok[0] in ("comment", "obj_info"):
            continue
        try:
            if tok[0] == "format":
                fmt = tok[1]
                if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
                    _fail(path, f"unsupported PLY format {fmt!r}")
            elif tok[0] == "element":
                count = int(tok[2])
                if count < 0:
                    raise ValueError
                elements.append(_Element(tok[1], count))
            elif tok[0] == "property":
                if not elements:
                    _fail(path, "PLY property before any element")
                if tok[1] == "list":
                    elements[-1].props.append(_Property(tok[4], _PLY_TYPES[tok[3]], _PLY_TYPES[tok[2]]))
                else:
                    elements[-1].props.append(_Property(tok[2], _PLY_TYPES[tok[1]]))
            else:
                _fail(path, f"unexpected PLY header line {raw_line!r}")
        except (IndexError, ValueError, KeyError):
            _fail(path, f"malformed PLY header line {raw_line!r}")
    if fmt is None:
        _fail(path, "PLY header has no 'format' line")
    return fmt, elements, body_start


def _skip_binary_list_element(path: Path, buf: memoryview, off: int, el: _Element, bo: str) -> int:
    """Walk an element with list properties record by record (only needed before the vertices)."""
    for _ in range(el.count):
        for p in el.props:
            if p.list_count is None:
                off += np.dtype(p.dtype).itemsize
            else:
                cdt = np.dtype(bo + p.list_count)
                if off + cdt.itemsize > len(buf):
                    _fail(path, f"PLY truncated inside element {el.name!r}")
                n = int(np.frombuffer(buf, cdt, 1, off)[0])
                off += cdt.itemsize + n * np.dtype(p.dtype).itemsize
    if off > len(buf):
        _fail(path, f"PLY truncated inside element {el.name!r}")
    return off


def _read_vertices(path: Path, data: bytes) -> np.ndarray:
    fmt, elements, off = _parse_header(path, data)
    vidx = next((i for i, e in enumerate(elements) if e.name == "vertex"), None)
    if vidx is None:
        _fail(path, "PLY has no 'vertex' element")
    vert = elements[vidx]
    if vert.has_list:
        _fail(path, "PLY vertex element has list properties (unsupported)")
    names = [p.name for p in vert.props]
    if len(set(names)) != len(names):
        _fail(path, f"PLY vertex element has duplicate property names {names}")

    if fmt == "ascii":
        lines = data[off:].decode("ascii", errors="replace").splitlines()
        lines = [ln for ln in lines if ln.strip()]
        start = sum(e.count for e in elements[:vidx])
        rows = lines[start:start + vert.count]
        if len(rows) < vert.count:
            _fail(path, f"PLY truncated: header says {vert.count} vertices, found {len(rows)} lines")
        if vidx == len(elements) - 1 and len(lines) > start + vert.count:
            _fail(path, f"PLY vertex count mismatch: header says {vert.count}, file has "
                        f"{len(lines) - start} vertex lines")
        tokens = " ".join(rows).split()
        if len(tokens) != vert.count * len(vert.props):
            _fail(path, f"PLY ascii vertex rows have {len(tokens)} values, expected "
                        f"{vert.count} x {len(vert.props)}")
        try:
            flat = np.array(tokens, dtype=np.float64).reshape(vert.count, len(vert.props))
        except ValueError:
            _fail(path, "PLY ascii vertex data contains non-numeric values")
        out = np.empty(vert.count, dtype=[(p.name, p.dtype) for p in vert.props])
        for j, p in enumerate(vert.props):
            out[p.name] = flat[:, j]
        return out

    bo = "<" if fmt == "binary_little_endian" else ">"
    buf = memoryview(data)
    for el in elements[:vidx]:
        if el.has_list:
            off = _skip_binary_list_element(path, buf, off, el, bo)
        else:
            off += el.count * np.dtype([(p.name, bo + p.dtype) for p in el.props]).itemsize
    vdt = np.dtype([(p.name, bo + p.dtype) for p in vert.props])
    need = vert.count * vdt.itemsize
    have = len(data) - off
    if have < need:
        _fail(path, f"PLY truncated: header says {vert.count} vertices ({need} bytes), "
                    f"only {max(have, 0)} bytes of vertex data")
    if vidx == len(elements) - 1 and have - need >= vdt.itemsize:
        _fail(path, f"PLY vertex count mismatch: header says {vert.count}, file holds "
                    f"{have // vdt.itemsize} vertices")
    arr = np.frombuffer(data, dtype=vdt, count=vert.count, offset=off)
    return arr.astype(vdt.newbyteorder("="))


def _colour_to_u8(cols: list[np.ndarray]) -> np.ndarray:
    c = np.stack(cols, axis=1)
    if c.dtype == np.uint8:
        return np.ascontiguousarray(c)
    c = c.astype(np.float64)
    if np.issubdtype(cols[0].dtype, np.floating):
        if c.size and np.nanmax(c) <= 1.0:  # float colours in 0..1 (open3d/pytorch3d style)
            c = c * 255.0
    elif cols[0].dtype.itemsize == 2 and c.size and c.max() > 255:  # 16-bit colour
        c = c / 257.0
    c = np.nan_to_num(c, nan=GREY)
    return np.clip(np.rint(c), 0, 255).astype(np.uint8)


def read_ply(path: str | Path) -> PlyPoints:
    """Read the vertices of a PLY point cloud; raise BadInputError naming the file if unusable.

    Unusable = unreadable, corrupt header, truncated body, vertex-count mismatch, missing
    x/y/z, zero vertices or NaN/inf coordinates.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise BadInputError(f"cannot read PLY: {e.strerror or e}", path=path) from None
    arr = _read_vertices(path, data)
    names = arr.dtype.names or ()
    missing = [a for a in ("x", "y", "z") if a not in names]
    if missing:
        _fail(path, f"PLY vertex element lacks {', '.join(missing)}")
    if arr.shape[0] == 0:
        _fail(path, "PLY has zero vertices")
    xyz = np.stack([arr["x"], arr["y"], arr["z"]], axis=1).astype(np.float64)
    bad = ~np.isfinite(xyz).all(axis=1)
    if bad.any():
        _fail(path, f"{int(bad.sum())} of {len(xyz)} PLY vertices have NaN/inf coordinates")
    rgb = None
    for trio in _COLOUR_NAMES:
        if all(n in names for n in trio):
            rgb = _colour_to_u8([arr[n] for n in trio])
            break
    has_colour = rgb is not None
    if rgb is None:
        rgb = np.full((len(xyz), 3), GREY, np.uint8)
    props = {n: np.ascontiguousarray(arr[n]) for n in names}
    return PlyPoints(xyz=xyz, rgb=rgb, has_colour=has_colour, props=props)


def write_ply(
    path: str | Path,
    xyz: np.ndarray,
    rgb: np.ndarray | None = None,
    extra_int_props: dict[str, np.ndarray] | None = None,
) -> None:
    """Write a binary little-endian PLY: x y z (float, or double if given float64),
    red green blue (uchar) and any extra integer per-vertex properties (e.g. labels)."""
    xyz = np.asarray(xyz)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f"xyz must be (N,3), got {xyz.shape}")
    n = xyz.shape[0]
    fcode = "f8" if xyz.dtype == np.float64 else "f4"
    fields: list[tuple[str, str]] = [("x", "<" + fcode), ("y", "<" + fcode), ("z", "<" + fcode)]
    columns: dict[str, np.ndarray] = {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]}
    if rgb is not None:
        rgb = np.asarray(rgb)
        if rgb.shape != (n, 3):
            raise ValueError(f"rgb must be ({n},3), got {rgb.shape}")
        for j, c in enumerate(("red", "green", "blue")):
            fields.append((c, "u1"))
            columns[c] = rgb[:, j].astype(np.uint8)
    for name, vals in (extra_int_props or {}).items():
        vals = np.asarray(vals)
        if vals.shape != (n,):
            raise ValueError(f"property {name!r} must be ({n},), got {vals.shape}")
        if not np.issubdtype(vals.dtype, np.integer) and vals.dtype != np.bool_:
            raise ValueError(f"property {name!r} must be integer, got {vals.dtype}")
        if name in columns or not name.isidentifier():
            raise ValueError(f"bad or duplicate property name {name!r}")
        code = vals.dtype.str[1:] if vals.dtype != np.bool_ else "u1"
        if code not in _NUMPY_TO_PLY:  # int64/uint64 have no PLY type
            code = "i4"
        fields.append((name, "<" + code))
        columns[name] = vals
    out = np.empty(n, dtype=fields)
    for name, vals in columns.items():
        out[name] = vals
    lines = ["ply", "format binary_little_endian 1.0", f"element vertex {n}"]
    for name, code in fields:
        lines.append(f"property {_NUMPY_TO_PLY[code.lstrip('<')]} {name}")
    lines.append("end_header")
    header = ("\n".join(lines) + "\n").encode("ascii")
    path = Path(path)
    with open(path, "wb") as f:
        f.write(header)
        f.write(out.tobytes())
