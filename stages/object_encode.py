"""One object's result as a Zarr v3 group in memory: store key -> bytes, ready to pack.

Built in memory, not in a staging directory (no per-chunk files, renames and deletes), so
the digests of the stored bytes (:mod:`stages.object_digest`) go into the group metadata
written with them. Every chunk carries a CRC32C checksum and every chunk is written, even
one equal to the fill value, so a missing chunk file means damage, not "all zeros". Image
stacks get one view (or box) per chunk, all chunks of an array in one shard (STACK §4). The
group metadata (fingerprint, counts, the ``complete`` marker) is written last.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from stages.object_check import ALL_CHUNKS_ATTR, COMPLETE_ATTR, STORED_ARRAYS_ATTR
from stages.object_digest import COUNTS_ATTR, DIGESTS_ATTR, counts_of, digests_of
from stages.side_files import json_default

if TYPE_CHECKING:
    import zarr

#: Group attribute: the key (hash of params, upstream keys and code) the result was computed with.
FINGERPRINT_ATTR = "fingerprint"

# zarr is imported on first use, not with this module: a stage call whose objects are all up
# to date reads their keys from the zips' JSON metadata and never needs it (~0.25 s saved).


def default_chunks(name: str, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """One view (or one box) per chunk for image-like arrays; whole array otherwise.

    Arrays of rank >= 3 are image stacks (V,H,W[,3]) or mask stacks (B,H,W): chunking along
    the first axis gives one chunk per view/box, never sub-view tiles (STACK §4).
    """
    if len(shape) >= 3 and shape[0] > 0:
        return (1, *shape[1:])
    return None


def _compressors() -> tuple[Any, ...]:
    from zarr.codecs import BloscCodec, BloscShuffle, Crc32cCodec

    return (BloscCodec(cname="zstd", clevel=3, shuffle=BloscShuffle.shuffle), Crc32cCodec())


def check_plain(object_id: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Only plain numeric/bool arrays are stored: no object dtypes, no pickles."""
    for key, arr in arrays.items():
        arr = np.asarray(arr)
        if arr.dtype == object:
            raise TypeError(f"array {key!r} of {object_id} has object dtype; use flat + offsets")


def build_entries(
    stage: str,
    object_id: str,
    arrays: Mapping[str, np.ndarray],
    attrs: Mapping[str, Any],
    fingerprint_value: str,
    chunks: Mapping[str, tuple[int, ...]] | None,
) -> dict[str, bytes]:
    """The object's group as store key -> bytes, its metadata (digests, counts, marker) written last."""
    import zarr
    from zarr.storage import MemoryStore

    buffers: dict[str, Any] = {}
    g = zarr.open_group(MemoryStore(buffers), mode="w")
    stored = fill_arrays(g, arrays, chunks)
    digests = digests_of({key: buf.to_bytes() for key, buf in buffers.items()}, stored)
    meta = json.loads(json.dumps(dict(attrs), default=json_default))
    meta.update(
        {
            FINGERPRINT_ATTR: fingerprint_value,
            "object_id": object_id,
            STORED_ARRAYS_ATTR: stored,
            DIGESTS_ATTR: digests,
            COUNTS_ATTR: counts_of(stage, stored),
            COMPLETE_ATTR: True,
        }
    )
    g.attrs.update(meta)  # one metadata write, last: only a finished group is complete
    return {key: buf.to_bytes() for key, buf in buffers.items()}


def fill_arrays(g: zarr.Group, arrays: Mapping[str, np.ndarray], chunks: Mapping[str, tuple[int, ...]] | None) -> dict[str, list[int]]:
    """Write every array into ``g``; returns name -> shape."""
    stored: dict[str, list[int]] = {}
    for key, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        c: tuple[int, ...] | Literal["auto"] = (chunks or {}).get(key) or default_chunks(key, arr.shape) or "auto"
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        # One view (or box) per chunk, all chunks of an array in one shard file: reads stay
        # per view while a store holds a few files per object (DVC hashes every file).
        shards = tuple(arr.shape) if isinstance(c, tuple) and arr.size else None
        za = g.create_array(
            key,
            shape=arr.shape,
            dtype=arr.dtype,
            chunks=c,
            shards=shards,
            compressors=_compressors(),
            attributes={ALL_CHUNKS_ATTR: True},
            config={"write_empty_chunks": True},
        )
        if arr.size:
            za[...] = arr
        stored[key] = list(arr.shape)
    return stored
