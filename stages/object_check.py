"""Checks one object zip against its own metadata before any of its arrays is decoded.

The group's zarr.json (read with a size cap) records the object id, every array's shape, a
digest of every array's stored bytes and the object's counts. :class:`ObjectZipCheck` holds
that record and checks an array the first time it is opened: its metadata (capped), its
declared size, its chunk files, the digest, then every chunk header (:mod:`stages.zip_bounds`).
The store runs it for every zarr read and for the self-check of a skipped object, so a
damaged, swapped or inflated zip fails with the object and the file named.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from typing import Any

from pipeline.errors import BadInputError
from stages.object_digest import COUNTS_ATTR, DIGESTS_ATTR, array_digest, array_members, counts_of
from stages.zip_bounds import MAX_METADATA_BYTES, MAX_OBJECT_BYTES, ZipBoundsError, array_nbytes, check_array, read_member

STORED_ARRAYS_ATTR = "stored_arrays"
ALL_CHUNKS_ATTR = "all_chunks_written"
COMPLETE_ATTR = "complete"


def read_json_member(zf: zipfile.ZipFile, name: str) -> dict[str, Any]:
    """A metadata member, size-capped, that must be a JSON object."""
    meta = json.loads(read_member(zf, name, MAX_METADATA_BYTES))
    if not isinstance(meta, dict):
        raise ValueError(f"{name} is not a JSON object")
    return meta


class ObjectZipCheck:
    """One object's record (from its group zarr.json) and the arrays already checked.

    Holds no file handle (it travels with zarr's store to dask workers); the caller passes
    the open :class:`zipfile.ZipFile` of the object's zip."""

    def __init__(self, zf: zipfile.ZipFile, where: str, object_id: str, stage: str, limit: int = MAX_OBJECT_BYTES):
        self.where, self.object_id, self.limit = where, object_id, limit
        try:
            self.group_bytes = read_member(zf, "zarr.json", MAX_METADATA_BYTES)
            group = json.loads(self.group_bytes)
            attrs = group.get("attributes") if isinstance(group, dict) else None
        except (KeyError, ValueError, zipfile.BadZipFile, OSError) as exc:
            raise self._error(f"unreadable group metadata ({type(exc).__name__}: {exc})", "zarr.json") from None
        if not isinstance(attrs, dict):
            raise self._error("group metadata has no attributes", "zarr.json")
        self.attrs = attrs
        stored, digests = attrs.get(STORED_ARRAYS_ATTR), attrs.get(DIGESTS_ATTR)
        if attrs.get("object_id", object_id) != object_id:
            raise self._error(f"holds the result of object {attrs.get('object_id')!r}, not of {object_id!r}", "zarr.json")
        if not isinstance(stored, dict) or not isinstance(digests, dict):
            raise self._error(
                f"no record of its arrays or of their digests (written by an older partstad): run `partstad {stage}` again", "zarr.json"
            )
        self.stored: dict[str, list[int]] = stored
        self.digests: dict[str, str] = digests
        if set(self.digests) != set(self.stored):
            raise self._error("its digests do not cover exactly its recorded arrays", "zarr.json")
        expected_counts = counts_of(stage, self.stored)
        if attrs.get(COUNTS_ATTR, expected_counts) != expected_counts:
            raise self._error(f"records counts {attrs.get(COUNTS_ATTR)} but its arrays give {expected_counts}", "zarr.json")
        self.checked: dict[str, int] = {}

    def _error(self, reason: str, member: str | None = None) -> BadInputError:
        return BadInputError(reason, object_id=self.object_id, path=f"{self.where}/{member}" if member else self.where)

    def check_array(self, zf: zipfile.ZipFile, name: str) -> None:
        """Check one array (once): metadata, size, chunk files, digest, chunk headers."""
        if name in self.checked:
            return
        if name not in self.stored:
            raise self._error(f"array {name!r} is not recorded in the object's metadata", name)
        names = zf.namelist()
        if f"{name}/zarr.json" not in names:
            raise BadInputError(f"array {name!r} missing", object_id=self.object_id, path=self.where)
        try:
            meta = read_json_member(zf, f"{name}/zarr.json")
            if meta.get("shape") != list(self.stored[name]):
                raise self._error(f"array {name!r} has shape {tuple(meta.get('shape') or ())}, expected {tuple(self.stored[name])}", name)
            nbytes = array_nbytes(name, meta)  # declared size first: nothing big is read for a lie
            if nbytes > self.limit - sum(self.checked.values()):
                raise ZipBoundsError(
                    f"array {name!r} declares {nbytes} decoded bytes, over the per-object limit of {self.limit} "
                    f"({sum(self.checked.values())} already in its other arrays)"
                )
            self._check_complete(name, meta, names)
            cap = _zip_size(zf)
            members = {m: read_member(zf, m, cap) for m in array_members(names, name)}
        except BadInputError:
            raise
        except ZipBoundsError as exc:
            raise self._error(f"corrupt array {name!r}: {exc}", name) from None
        except (ValueError, KeyError, zipfile.BadZipFile, OSError) as exc:
            raise self._error(f"corrupt array {name!r} ({type(exc).__name__}: {exc})", name) from None
        if array_digest(members) != self.digests[name]:
            raise self._error(
                f"corrupt array {name!r}: its stored bytes do not match the digest recorded when the object "
                "was written (damaged, or arrays of another object)",
                name,
            )
        try:
            nbytes = check_array(name, meta, members, self.limit - sum(self.checked.values()))
        except ZipBoundsError as exc:
            raise self._error(f"corrupt array {name!r}: {exc}", name) from None
        self.checked[name] = nbytes

    def _check_complete(self, name: str, meta: dict[str, Any], names: list[str]) -> None:
        """Every chunk written (the array says so) must be there: count them per shard."""
        shape = list(self.stored[name])
        if not (meta.get("attributes") or {}).get(ALL_CHUNKS_ATTR) or not math.prod(shape):
            return
        grid = meta["chunk_grid"]["configuration"]["chunk_shape"]  # the shard shape when sharded
        per_file = 1
        codecs = meta.get("codecs") or []
        if codecs and codecs[0].get("name") == "sharding_indexed":
            inner = codecs[0]["configuration"]["chunk_shape"]
            per_file = math.prod(math.ceil(g / c) for g, c in zip(grid, inner))
        expected = math.prod(math.ceil(n / c) for n, c in zip(shape, grid)) * per_file
        found = sum(m.startswith(f"{name}/c/") for m in names) * per_file
        if found != expected:
            raise self._error(f"array {name!r} is incomplete: {found} of {expected} chunks present (shard file missing or damaged)", name)

    def check_all(self, zf: zipfile.ZipFile) -> None:
        """Every recorded array (the self-check of a skipped object)."""
        for name in self.stored:
            self.check_array(zf, name)


def _zip_size(zf: zipfile.ZipFile) -> int:
    """Bytes of the zip on disk: no stored member can hold more."""
    assert zf.fp is not None
    return os.fstat(zf.fp.fileno()).st_size
