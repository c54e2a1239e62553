"""What an object's metadata says about its arrays: a digest of their bytes and their counts.

The digest ties a group's metadata (fingerprint, upstream keys) to the very arrays written
with it: a zip whose metadata is right but whose arrays come from another object (copied
members, a tampered remote) no longer matches. It hashes the *stored* bytes (compressed
chunks and the array's zarr.json), so checking it costs one pass over a few MB and nothing
is decoded before it passes.

The counts (points, views, boxes) are read from the array shapes by name, per stage, so a
consumer can check that all the upstream results of one object agree with each other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

#: Group attribute: array name -> digest of its stored members.
DIGESTS_ATTR = "array_digests"
#: Group attribute: count name (points, views, boxes) -> value, from the array shapes.
COUNTS_ATTR = "counts"

#: stage -> array -> (count name, axis, offset): count = shape[axis] + offset.
COUNT_AXES: dict[str, dict[str, tuple[tuple[str, int, int], ...]]] = {
    "ingest": {"xyz": (("points", 0, 0),)},
    "render": {"pix2pt": (("views", 0, 0),)},
    "visibility": {"visible": (("views", 0, 0), ("points", 1, 0))},
    "superpoints": {"sp": (("points", 0, 0),)},
    "detect": {"offsets": (("views", 0, -1),), "xyxy": (("boxes", 0, 0),)},
    "segment": {"mask": (("boxes", 0, 0),)},
    "lift": {"sem": (("points", 0, 0),), "view_dirs": (("views", 0, 0),)},
}


def array_members(names: Iterable[str], array: str) -> list[str]:
    """The stored members of one array (its zarr.json and chunk/shard files), sorted."""
    return sorted(n for n in names if n.startswith(array + "/"))


def array_digest(members: Mapping[str, bytes]) -> str:
    """Hash of one array's stored members (name, length and bytes of each, in name order)."""
    h = hashlib.sha256()
    for key in sorted(members):
        data = members[key]
        h.update(key.encode() + b"\0" + str(len(data)).encode() + b"\0")
        h.update(data)
    return h.hexdigest()[:32]


def digests_of(entries: Mapping[str, bytes], arrays: Iterable[str]) -> dict[str, str]:
    """Digest of every array, from a group's store entries (key -> bytes)."""
    return {a: array_digest({k: entries[k] for k in array_members(entries, a)}) for a in sorted(arrays)}


def counts_of(stage: str, shapes: Mapping[str, list[int] | tuple[int, ...]]) -> dict[str, int]:
    """Points / views / boxes of an object, read from its array shapes (empty for other stages)."""
    out: dict[str, int] = {}
    for array, axes in COUNT_AXES.get(stage, {}).items():
        shape = shapes.get(array)
        if shape is None:
            continue
        for count, axis, offset in axes:
            if axis < len(shape):
                out[count] = int(shape[axis]) + offset
    return out
