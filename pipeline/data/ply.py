"""PLY point-cloud reader (plyfile, with the header checked against the data) and writer.

Why plyfile plus checks: plyfile parses every PLY variant (ascii, binary little/big endian,
list elements) but trusts the header: it allocates `count` records before reading, ignores
data after the last element, and an ASCII element it reads ends wherever the count says.
A header that lies about its counts would then be read as a truncated or padded cloud. So
before plyfile allocates, the declared counts are compared with the bytes (binary) or lines
(ascii) the file holds, and after it reads, nothing may be left over.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from plyfile import PlyData, PlyElement, PlyListProperty, PlyParseError

from pipeline.data.input_file import open_regular
from pipeline.errors import BadInputError

_NUMPY_TO_PLY: dict[str, str] = {
    "i1": "char",
    "u1": "uchar",
    "i2": "short",
    "u2": "ushort",
    "i4": "int",
    "u4": "uint",
    "f4": "float",
    "f8": "double",
}
_COLOUR_NAMES = (("red", "green", "blue"), ("r", "g", "b"), ("diffuse_red", "diffuse_green", "diffuse_blue"))
_MAX_HEADER_BYTES = 1 << 16
#: What plyfile (and numpy on its behalf) raises on a file that does not match its header.
_PARSE_ERRORS = (PlyParseError, ValueError, OverflowError, TypeError, IndexError, KeyError, MemoryError)
GREY = 128


@dataclass
class PlyPoints:
    """Vertex data of a PLY file: raw xyz (float64), rgb uint8, every vertex property."""

    xyz: np.ndarray  # (N,3) float64, as stored (not normalised)
    rgb: np.ndarray  # (N,3) uint8; grey 128 when the file has no colour
    has_colour: bool
    props: dict[str, np.ndarray]  # every scalar vertex property by name (file dtype)


def _fail(path: Path, reason: str) -> None:
    raise BadInputError(reason, path=path)


def _declared(elements: tuple[PlyElement, ...]) -> str:
    return ", ".join(f"{e.count} {e.name}" for e in elements)


def _read_header(path: Path, f: BinaryIO) -> tuple[PlyData, int]:
    """Parse the header from at most its first 64 KiB (plyfile reads it byte by byte and would
    otherwise walk a whole file that lacks `end_header`); return it and where the body starts."""
    head = f.read(_MAX_HEADER_BYTES)
    if not head.startswith(b"ply"):
        _fail(path, "not a PLY file (missing 'ply' magic)")
    if b"end_header" not in head:
        _fail(path, "PLY header has no 'end_header' (truncated or corrupt)")
    stream = io.BytesIO(head)
    try:
        header = PlyData._parse_header(stream)  # noqa: SLF001 - plyfile's only header-only parser
    except (PlyParseError, UnicodeDecodeError, ValueError) as e:
        _fail(path, f"malformed PLY header ({e})")
    for el in header.elements:
        if el.count < 0:
            _fail(path, f"PLY element {el.name!r} declares a negative count {el.count}")
        if not el.properties:
            _fail(path, f"PLY element {el.name!r} has no properties")
    if "vertex" not in [e.name for e in header.elements]:
        _fail(path, "PLY has no 'vertex' element")
    if any(isinstance(p, PlyListProperty) for p in header["vertex"].properties):
        _fail(path, "PLY vertex element has list properties (unsupported)")
    return header, stream.tell()


def _min_record_bytes(el: PlyElement) -> int:
    """Bytes one binary record takes at least (a list property may hold zero items)."""
    return sum(np.dtype(p.list_dtype()[0] if isinstance(p, PlyListProperty) else p.val_dtype).itemsize for p in el.properties)


def _check_binary_body(path: Path, header: PlyData, body: int) -> None:
    """Declared records must fit in the bytes after the header (checked before plyfile
    allocates `count` records: a 200-byte file may declare 10^12 vertices)."""
    need = 0
    for el in header.elements:
        need += el.count * _min_record_bytes(el)
        if need > body:
            _fail(
                path,
                f"PLY truncated: header declares {_declared(header.elements)} records, "
                f"needing at least {need} bytes up to element {el.name!r}, but only {body} "
                f"bytes follow the header",
            )


def _ascii_body(path: Path, header: PlyData, body: bytes) -> bytes:
    """Non-blank body lines, one per record; their number must equal the declared records."""
    lines = [ln for ln in body.splitlines() if ln.strip()]
    total = sum(e.count for e in header.elements)
    if len(lines) < total:
        _fail(path, f"PLY truncated: header declares {total} records ({_declared(header.elements)}), the body has {len(lines)} lines")
    if len(lines) > total:
        _fail(path, f"PLY has {len(lines) - total} lines beyond the {total} records its header declares ({_declared(header.elements)})")
    return b"\n".join(lines) + b"\n"


def _read_vertices(path: Path) -> np.ndarray:
    """The vertex element as a packed, native-endian structured array (file property order)."""
    with open_regular(path) as f:
        try:
            header, body_start = _read_header(path, f)
            size = f.seek(0, io.SEEK_END)
            f.seek(0)
            if header.text:
                raw = f.read()
                stream: BinaryIO = io.BytesIO(raw[:body_start] + _ascii_body(path, header, raw[body_start:]))
            else:
                _check_binary_body(path, header, size - body_start)
                stream = f
            try:
                # mmap: binary scalar elements are mapped, not read record by record; copied below.
                ply = PlyData.read(stream, mmap="c")
            except _PARSE_ERRORS as e:
                _fail(path, f"PLY data does not match its header ({_declared(header.elements)}): {e}")
            if not header.text and (extra := size - f.tell()) > 0:
                _fail(
                    path,
                    f"PLY has {extra} bytes after its last element: the header's counts "
                    f"({_declared(header.elements)}) disagree with the data",
                )
            vert = ply["vertex"]
            out = np.empty(vert.count, dtype=[(p.name, p.val_dtype) for p in vert.properties])
            for p in vert.properties:
                out[p.name] = vert.data[p.name]
            return out
        except OSError as e:
            raise BadInputError(f"cannot read PLY: {e.strerror or e}", path=path) from None


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


def check_ply(path: str | Path) -> None:
    """Only the header-vs-data checks of `read_ply` (regular file, counts, truncation, trailing
    data), for callers that parse the file with a reader that trusts the header (trimesh)."""
    _read_vertices(Path(path))


def read_ply(path: str | Path) -> PlyPoints:
    """Read the vertices of a PLY point cloud; raise BadInputError naming the file if unusable.

    Unusable = not a regular file (FIFO, directory, symlink loop), over the input size cap,
    unreadable, corrupt header, header counts that disagree with the data (truncated body,
    extra records, trailing bytes, in any element), missing x/y/z, zero vertices or NaN/inf
    coordinates.
    """
    path = Path(path)
    arr = _read_vertices(path)
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
