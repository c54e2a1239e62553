"""Zarr v3 cache store: one store per (stage, category), one zipped Zarr group per object.

Layout (local roots): ``<root>/<stage>/<category>.zarr/`` holds a root ``zarr.json``, the
JSON side files and one ``<object>.zip`` per object: a whole Zarr v3 group (its arrays, one
view per chunk inside one shard per array) packed into a single uncompressed zip (chunks are
already zstd-compressed) with fixed timestamps, so identical results give identical bytes.
One file per object keeps a store a handful of files, which is what DVC pays for (it hashes
and links every file); the zip is written beside the old one and ``os.replace``-d in, so a
result appears whole or not at all. fsspec roots keep plain directory groups (no rename there).

Cache rules (DESIGN §4), enforced here so every stage gets them for free:
- each object group carries a ``fingerprint`` attr (hash of stage params, upstream
  fingerprints and the stage code version) and a ``complete`` marker written *last*;
- a stage skips objects whose marker and fingerprint match and rewrites any other: the new
  group is built in memory, packed into a staging zip and renamed over the old one, so an
  interrupted write is never mistaken for a finished one and never removes a valid result;
- files are never modified in place (always a new file renamed in), which keeps DVC's
  hard-linked cache intact;
- only plain numeric/bool arrays: no object dtypes, no pickles. Ragged data = flat + offsets.

Integrity (never a silent wrong result): every chunk carries a CRC32C checksum and every
chunk is written, even one equal to the fill value, so a truncated, bit-flipped or missing
chunk is detected on read; a truncated zip fails to open. A zip is read with bounds
(:mod:`stages.object_check`, :mod:`stages.zip_bounds`): metadata members are size-capped,
an array's stored bytes must match the digest recorded in the group metadata written with
them (a zip with another object's arrays fails), its declared size must fit a per-object
limit and every chunk header must declare its chunk's decoded size, all before anything is
decoded. Read errors become :class:`BadInputError` naming the object and the file; the
runner records them per object, and the self-check on skip recomputes a damaged own result.
A local object is deleted by unlinking its zip (atomic); an fsspec group by first clearing
its marker, so a kill mid-delete never leaves a half-deleted group that still looks complete.

The root may be a local directory, a ``file://`` URL (treated as that local directory) or
any other fsspec URL that zarr understands (``s3://``, ``gcs://``, ``memory://``...); the
JSON side files (failures.json, manifest.json) go through fsspec too.

This module is the facade; the pieces live in their own modules:
:mod:`stages.store_paths` (names), :mod:`stages.object_encode` (a group in memory),
:mod:`stages.zip_pack` (deterministic zips), :mod:`stages.store_local` and
:mod:`stages.store_fsspec` (the two backends, base in :mod:`stages.store_backend`),
:mod:`stages.checked_read` (reads that name the file), :mod:`stages.store_lock`,
:mod:`stages.side_files` and :mod:`stages.fs_helpers` (replace, never modify). Their public
names are re-exported here, so ``from stages.store import ...`` keeps working.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import BadInputError
from stages import side_files
from stages.checked_read import CheckedArray, guarded_read
from stages.fs_helpers import atomic_write_text, replace_dir, replace_dir_away
from stages.object_check import COMPLETE_ATTR, STORED_ARRAYS_ATTR
from stages.object_encode import FINGERPRINT_ATTR, build_entries, check_plain, default_chunks
from stages.store_backend import StoreBackend, StoreCorruptError
from stages.store_fsspec import FsspecBackend
from stages.store_local import LocalZipBackend
from stages.store_lock import StoreBusyError, store_lock
from stages.store_paths import OBJECT_SUFFIX, is_local_url, local_name, normalise_root, object_file
from stages.zip_pack import pack_entries

if TYPE_CHECKING:
    import zarr

__all__ = [
    "CategoryStore",
    "CheckedArray",
    "FINGERPRINT_ATTR",
    "OBJECT_SUFFIX",
    "StoreBusyError",
    "StoreCorruptError",
    "atomic_write_text",
    "default_chunks",
    "local_name",
    "normalise_root",
    "pack_entries",
    "replace_dir",
    "replace_dir_away",
    "store_lock",
]


def backend_for(url: str, stage: str, category: str) -> StoreBackend:
    """A local directory of zips for a plain path, fsspec groups for any ``scheme://`` URL."""
    return (LocalZipBackend if is_local_url(url) else FsspecBackend)(url, stage, category)


class CategoryStore:
    """The Zarr store ``<root>/<stage>/<category>.zarr`` of one stage and category."""

    def __init__(self, root: str | Path, stage: str, category: str):
        self.root = normalise_root(root)
        self.stage = stage
        self.category = category
        self.url = f"{self.root.rstrip('/')}/{stage}/{category}.zarr"
        self._backend = backend_for(self.url, stage, category)

    def _forget(self, name: str | None = None) -> None:
        """Close cached handles (all, or one object's) after a write or delete."""
        self._backend.forget(name)

    # -- group access -------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        return self._backend.is_local

    def path(self, object_id: str | None = None, name: str | None = None) -> str:
        """Where an object (or one of its arrays) lives: used in every error message.

        Local objects are ``<store>/<object>.zip`` and an array inside is named
        ``<store>/<object>.zip/<array>`` (zip member path)."""
        return self._backend.path(object_id, name)

    def object_file(self, object_id: str) -> Path:
        """The zip file of one object in a local store."""
        return object_file(self.url, object_id)

    def exists(self) -> bool:
        return self._backend.exists()

    def group(self, writable: bool = False) -> zarr.Group:
        return self._backend.group(writable)

    # -- status -------------------------------------------------------------------
    def object_ids(self, complete_only: bool = True) -> list[str]:
        """Object ids stored here (complete ones only by default); unreadable groups are left out."""
        if not self.exists():
            return []
        self._forget()
        out = []
        for name in self._backend.object_names():
            oid = f"{self.category}/{name}"
            if not complete_only or self.stored_fingerprint(oid) is not None:
                out.append(oid)
        return out

    def stored_fingerprint(self, object_id: str) -> str | None:
        """Fingerprint of a *complete* object, or None if missing/incomplete/unreadable."""
        if not self.exists():
            return None
        try:
            attrs = self._backend.metadata_attrs(object_id)
        except Exception:  # noqa: BLE001 - missing or corrupt metadata: not complete
            return None
        if not attrs.get(COMPLETE_ATTR, False):
            return None
        return attrs.get(FINGERPRINT_ATTR)

    def is_complete(self, object_id: str, expected_fingerprint: str | None = None) -> bool:
        fp = self.stored_fingerprint(object_id)
        return fp is not None and (expected_fingerprint is None or fp == expected_fingerprint)

    # -- write --------------------------------------------------------------------
    def write_object(
        self,
        object_id: str,
        arrays: Mapping[str, np.ndarray],
        attrs: Mapping[str, Any],
        fingerprint_value: str,
        chunks: Mapping[str, tuple[int, ...]] | None = None,
    ) -> None:
        """Write an object's arrays and attrs, then make them *the* result in one step.

        Local stores build the group in memory, pack it into a zip beside the old one and
        rename it in only when every array and the marker are written, so a failure or a kill
        never removes a valid previous result and readers see the old or the new object, never
        a half-written one. fsspec stores (no rename) clear the old group first and write in place.
        """
        check_plain(object_id, arrays)
        name = local_name(object_id)
        self._forget(name)
        entries = build_entries(self.stage, object_id, arrays, attrs, fingerprint_value, chunks)
        self._backend.put_object(object_id, entries)
        self._forget(name)

    def delete_object(self, object_id: str) -> None:
        """Remove an object's group so that no interruption leaves it looking complete."""
        self._backend.delete_object(object_id)

    def clean_leftovers(self) -> int:
        """Remove staging/trash files left by killed runs (call under the store lock)."""
        return self._backend.clean_leftovers()

    def check_root(self) -> None:
        """Refuse to work on a store whose root metadata is unreadable (clear error, no traceback)."""
        self._backend.check_root()

    # -- self-check ------------------------------------------------------------------
    def verify_object(self, object_id: str) -> str | None:
        """Why a complete-marked object is not usable (None when it is): cheap metadata checks.

        Every array recorded at write time must exist with its shape and all of its chunk
        files; the group and array metadata must parse. Chunk contents are checked (CRC32C)
        only when read.
        """
        return self._backend.verify_object(object_id)

    # -- locking -----------------------------------------------------------------------
    def lock(self, timeout: float = -1):
        """An exclusive inter-process lock on this store (``<store>.lock`` beside it).

        Returns a context manager; raises :class:`StoreBusyError` when another run holds it
        for longer than ``timeout`` seconds (-1 = wait for ever). fsspec stores are not
        locked (no portable lock there): run one writer per remote store.
        """
        return store_lock(self._backend.lock_path(), self.url, timeout)

    # -- read ---------------------------------------------------------------------
    def attrs(self, object_id: str) -> dict[str, Any]:
        return self._backend.attrs(object_id)

    def _zarr_array(self, object_id: str, name: str, expect_shape: tuple[int | None, ...] | None = None) -> zarr.Array:
        return self._backend.array(object_id, name, expect_shape)

    def read(self, object_id: str, name: str, *, expect_shape: tuple[int | None, ...] | None = None, finite: bool = False) -> np.ndarray:
        """One whole array. ``expect_shape`` (None = any size) and ``finite`` are checked here,
        so a wrong-shaped or NaN-bearing input fails with the object and file named."""
        za = self._zarr_array(object_id, name, expect_shape)
        out = guarded_read(za, ..., object_id, self.path(object_id, name))
        if finite and out.dtype.kind in "fc" and not np.isfinite(out).all():
            n_bad = int((~np.isfinite(out)).sum())
            raise BadInputError(f"array {name!r} has {n_bad} NaN/inf values", object_id=object_id, path=self.path(object_id, name))
        return out

    def read_all(self, object_id: str, names: list[str] | None = None) -> dict[str, np.ndarray]:
        if names is None:
            stored = self.attrs(object_id).get(STORED_ARRAYS_ATTR)
            names = list(stored) if isinstance(stored, dict) else [k for k, _ in self._backend.open_object(object_id).arrays()]
        return {k: self.read(object_id, k) for k in names}

    def array(self, object_id: str, name: str, *, expect_shape: tuple[int | None, ...] | None = None) -> CheckedArray:
        """The stored array, indexable chunk by chunk; read errors name the object and file."""
        return CheckedArray(self._zarr_array(object_id, name, expect_shape), object_id, self.path(object_id, name))

    def lazy(self, object_id: str, name: str):
        """Dask array over one stored array (chunked like the store: one view per chunk)."""
        import dask.array as da

        return da.from_zarr(self._zarr_array(object_id, name))

    # -- side files (failures, manifest) -----------------------------------------
    def side_file(self, name: str) -> Path | str:
        """Path (local root) or fsspec URL of a JSON side file next to the object groups."""
        return self._backend.side_file(name)

    def write_json(self, name: str, payload: Any) -> Path | str:
        """Write a JSON side file by replace (never in place: DVC may have linked it)."""
        self.group(writable=True)
        return side_files.write_json(self.side_file(name), payload)

    def read_json(self, name: str, default: Any = None) -> Any:
        return side_files.read_json(self.side_file(name), default)
