"""Bounded reads of an object zip: no member is read past a cap, no chunk decodes past its size.

An object zip may come from another machine (``dvc pull``, a shared directory), so it is
input, not trusted output. Three things keep a small hostile file from costing gigabytes:
- every member must be stored (our writer never compresses: chunks are already zstd), so a
  member holds at most the bytes on disk; metadata members are also capped before reading
  (their declared size) and while reading (``read(cap + 1)``), because a header can lie;
- an array's declared shape × dtype must fit the per-object limit before anything decodes;
- every chunk's blosc header must declare exactly the chunk's decoded size (shape × dtype),
  checked on the raw bytes before blosc allocates anything.
These raise :class:`ZipBoundsError` with a reason; the store adds the object and the file.
"""

from __future__ import annotations

import math
import struct
import zipfile
from collections.abc import Mapping
from typing import Any

#: Largest metadata member (zarr.json) read; ours are a few kB.
MAX_METADATA_BYTES = 1 << 20
#: Largest decoded size of one object (all arrays); a paper-size object (800 px, 10 views,
#: a few hundred boxes) is well under 1 GiB.
MAX_OBJECT_BYTES = 8 << 30
_ITEMSIZE = {
    "bool": 1,
    "int8": 1,
    "uint8": 1,
    "int16": 2,
    "uint16": 2,
    "int32": 4,
    "uint32": 4,
    "int64": 8,
    "uint64": 8,
    "float16": 2,
    "float32": 4,
    "float64": 8,
}
_EMPTY = 2**64 - 1  # shard index entry of a chunk that was never written
_BLOSC_HEADER = 16
_CRC = 4


class ZipBoundsError(ValueError):
    """An object zip breaks a bound (too big, compressed, inconsistent sizes)."""


def read_member(zf: zipfile.ZipFile, name: str, cap: int) -> bytes:
    """The bytes of one stored member, never more than ``cap`` of them."""
    info = zf.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED:
        raise ZipBoundsError(f"member {name} is compressed (method {info.compress_type}); partstad writes members stored")
    if info.file_size > cap or info.compress_size > cap:
        raise ZipBoundsError(f"member {name} declares {max(info.file_size, info.compress_size)} bytes, over the limit of {cap}")
    with zf.open(info) as fh:
        data = fh.read(cap + 1)
    if len(data) > cap:
        raise ZipBoundsError(f"member {name} holds more than {cap} bytes")
    return data


def array_nbytes(name: str, meta: Mapping[str, Any]) -> int:
    """Decoded size of an array from its metadata (plain numeric/bool dtypes only)."""
    dtype = meta.get("data_type")
    if not isinstance(dtype, str) or dtype not in _ITEMSIZE:
        raise ZipBoundsError(f"array {name!r} has data type {dtype!r}; only plain numeric/bool arrays are stored")
    shape = meta.get("shape")
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise ZipBoundsError(f"array {name!r} has an invalid shape {shape!r}")
    return math.prod(shape) * _ITEMSIZE[dtype]


def check_array(name: str, meta: Mapping[str, Any], members: Mapping[str, bytes], limit: int = MAX_OBJECT_BYTES) -> int:
    """Check an array's declared size and every chunk header; returns its decoded size."""
    nbytes = array_nbytes(name, meta)
    if nbytes > limit:
        raise ZipBoundsError(f"array {name!r} declares {nbytes} decoded bytes, over the per-object limit of {limit}")
    itemsize = _ITEMSIZE[meta["data_type"]]
    try:
        grid = [int(n) for n in meta["chunk_grid"]["configuration"]["chunk_shape"]]
        codecs = meta["codecs"]
        names = [c["name"] for c in codecs]
    except (KeyError, TypeError, ValueError) as exc:
        raise ZipBoundsError(f"array {name!r} has malformed chunk metadata ({exc!r})") from None
    if len(grid) != len(meta["shape"]) or any(n <= 0 for n in grid):
        raise ZipBoundsError(f"array {name!r} has chunk shape {grid} for shape {meta['shape']}")
    data = {k: v for k, v in members.items() if not k.endswith("/zarr.json")}
    if names == ["sharding_indexed"]:
        conf = codecs[0].get("configuration") or {}
        inner = [int(n) for n in conf.get("chunk_shape", [])]
        if (
            [c.get("name") for c in conf.get("codecs", [])] != ["bytes", "blosc", "crc32c"]
            or [c.get("name") for c in conf.get("index_codecs", [])] != ["bytes", "crc32c"]
            or conf.get("index_location", "end") != "end"
            or len(inner) != len(grid)
            or any(n <= 0 for n in inner)
        ):
            raise ZipBoundsError(f"array {name!r} uses a shard layout partstad does not write")
        n_inner = math.prod(math.ceil(s / c) for s, c in zip(grid, inner))
        for key, shard in data.items():
            for chunk in _shard_chunks(key, shard, n_inner):
                _check_blosc(key, chunk, math.prod(inner) * itemsize)
    elif names == ["bytes", "blosc", "crc32c"]:
        for key, chunk in data.items():
            _check_blosc(key, chunk, math.prod(grid) * itemsize)
    else:
        raise ZipBoundsError(f"array {name!r} uses codecs {names}; partstad writes bytes+blosc+crc32c")
    return nbytes


def _shard_chunks(key: str, shard: bytes, n_inner: int) -> list[bytes]:
    """The chunks a shard's index points to (offsets checked against the shard's length)."""
    index_len = n_inner * 16 + _CRC
    if len(shard) < index_len:
        raise ZipBoundsError(f"shard {key} is {len(shard)} bytes, shorter than its index ({index_len})")
    body = len(shard) - index_len
    entries = struct.unpack(f"<{2 * n_inner}Q", shard[body : len(shard) - _CRC])
    out = []
    for offset, size in zip(entries[::2], entries[1::2]):
        if offset == _EMPTY and size == _EMPTY:
            continue
        if offset + size > body:
            raise ZipBoundsError(f"shard {key} points past its end (chunk at {offset}+{size}, data {body} bytes)")
        out.append(shard[offset : offset + size])
    return out


def _check_blosc(key: str, chunk: bytes, decoded: int) -> None:
    """A blosc frame (+ CRC32C) must decode to exactly ``decoded`` bytes and hold its own length."""
    if len(chunk) < _BLOSC_HEADER + _CRC:
        raise ZipBoundsError(f"chunk in {key} is {len(chunk)} bytes, too short for a blosc frame")
    nbytes, _blocksize, cbytes = struct.unpack("<III", chunk[4:_BLOSC_HEADER])
    if nbytes != decoded:
        raise ZipBoundsError(f"chunk in {key} declares {nbytes} decoded bytes, its array's chunk holds {decoded}")
    if cbytes != len(chunk) - _CRC:
        raise ZipBoundsError(f"chunk in {key} declares {cbytes} compressed bytes but holds {len(chunk) - _CRC}")
