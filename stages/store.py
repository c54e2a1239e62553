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
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import functools
from typing import TYPE_CHECKING

import numpy as np

from pipeline.errors import BadInputError, MissingUpstreamError, ObjectError
# COMPLETE_ATTR; ALL_CHUNKS_ATTR: every chunk was written (a missing chunk file is corruption);
# STORED_ARRAYS_ATTR: name -> shape of every array written, for the self-check on skip.
from stages.object_check import ALL_CHUNKS_ATTR, COMPLETE_ATTR, STORED_ARRAYS_ATTR, ObjectZipCheck, read_json_member
from stages.object_digest import COUNTS_ATTR, DIGESTS_ATTR, counts_of, digests_of

FINGERPRINT_ATTR = "fingerprint"
_TRASH_PREFIX = ".trash-"
_STAGING_PREFIX = ".staging-"
#: Suffix of the single file holding one object's group in a local store.
OBJECT_SUFFIX = ".zip"
#: How many objects' zip files a store keeps open for reading (oldest closed first).
_OPEN_OBJECTS = 8
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def fingerprint(stage: str, code_version: str, params: Mapping[str, Any], upstream: Mapping[str, str] | None = None) -> str:
    """Stable hash of everything that determines a stage's output for one object."""
    payload = json.dumps(
        {"stage": stage, "code": code_version, "params": params, "upstream": dict(sorted((upstream or {}).items()))},
        sort_keys=True,
        default=_json_default,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def local_name(object_id: str) -> str:
    """Group name of an object inside its category store: ``Chair/179`` -> ``179``."""
    return object_id.split("/", 1)[1] if "/" in object_id else object_id


def default_chunks(name: str, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """One view (or one box) per chunk for image-like arrays; whole array otherwise.

    Arrays of rank >= 3 are image stacks (V,H,W[,3]) or mask stacks (B,H,W): chunking along
    the first axis gives one chunk per view/box, never sub-view tiles (STACK §4).
    """
    if len(shape) >= 3 and shape[0] > 0:
        return (1, *shape[1:])
    return None


def normalise_root(root: str | Path) -> str:
    """``file:///x`` -> ``/x`` (zarr's LocalStore: atomic writes, cheap deletes); others as given."""
    root = str(root)
    if root.startswith("file://"):
        return root[len("file://"):] or "/"
    return root


if TYPE_CHECKING:
    import zarr

# zarr is imported on first use, not with this module: a stage call whose objects are all up
# to date reads their keys from the zips' JSON metadata and never needs it (~0.25 s saved).


def _compressors() -> tuple[Any, ...]:
    from zarr.codecs import BloscCodec, BloscShuffle, Crc32cCodec

    return (BloscCodec(cname="zstd", clevel=3, shuffle=BloscShuffle.shuffle), Crc32cCodec())


@functools.cache
def _object_zip_store() -> type:
    """zarr's ZipStore, reading only what :class:`ObjectZipCheck` passed, ``list_prefix`` as a directory.

    Every key zarr asks for belongs to an array recorded in the object's metadata, and that
    array is checked (metadata size, declared size, digest, chunk headers) before its first
    byte reaches zarr; anything else reads as absent. zarr 3.1's ZipStore matches a bare
    string prefix, so listing the chunks of array ``mask_box`` would also return those of
    ``mask_box_label`` and break ``nchunks_initialized``."""
    from zarr.storage import ZipStore

    class ObjectZipStore(ZipStore):
        check: ObjectZipCheck

        def _get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:  # type: ignore[override]
            if not self._is_open:
                self._sync_open()
            if key == "zarr.json" and byte_range is None:
                return prototype.buffer.from_bytes(self.check.group_bytes)
            top = key.split("/", 1)[0]
            if "/" not in key or top not in self.check.stored:
                return None  # not recorded at write time: never served
            self.check.check_array(self._zf, top)
            return super()._get(key, prototype, byte_range)

        async def list_prefix(self, prefix: str):  # type: ignore[override]
            base = prefix.rstrip("/")
            async for key in self.list():
                if not base or key == base or key.startswith(base + "/"):
                    yield key

    return ObjectZipStore


class CategoryStore:
    """The Zarr store ``<root>/<stage>/<category>.zarr`` of one stage and category."""

    def __init__(self, root: str | Path, stage: str, category: str):
        self.root = normalise_root(root)
        self.stage = stage
        self.category = category
        self.url = f"{self.root.rstrip('/')}/{stage}/{category}.zarr"
        self._group: zarr.Group | None = None
        self._open: dict[str, tuple[Any, zarr.Group, tuple[int, int, int]]] = {}

    def __getstate__(self) -> dict[str, Any]:  # travels to dask workers without open handles
        return {**self.__dict__, "_group": None, "_open": {}}

    def _forget(self, name: str | None = None) -> None:
        """Close cached zip handles (all, or one object's) after a write or delete."""
        self._group = None
        for key in [name] if name is not None else list(self._open):
            entry = self._open.pop(key, None)
            if entry is not None:
                entry[0].close()

    # -- group access -------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        return "://" not in self.url

    def path(self, object_id: str | None = None, name: str | None = None) -> str:
        """Where an object (or one of its arrays) lives: used in every error message.

        Local objects are ``<store>/<object>.zip`` and an array inside is named
        ``<store>/<object>.zip/<array>`` (zip member path)."""
        obj = [local_name(object_id) + (OBJECT_SUFFIX if self.is_local else "")] if object_id else []
        return "/".join([self.url] + obj + ([name] if name else []))

    def object_file(self, object_id: str) -> Path:
        """The zip file of one object in a local store."""
        return Path(self.url) / f"{local_name(object_id)}{OBJECT_SUFFIX}"

    def exists(self) -> bool:
        if self.is_local:
            return (Path(self.url) / "zarr.json").exists()
        import zarr

        try:
            zarr.open_group(self.url, mode="r")
            return True
        except Exception:  # noqa: BLE001 - any backend error means "not there"
            return False

    def group(self, writable: bool = False) -> zarr.Group:
        import zarr
        import zarr.errors

        if writable:
            try:
                return zarr.open_group(self.url, mode="a")
            except zarr.errors.ContainsGroupError:  # another worker created it just now
                return zarr.open_group(self.url, mode="r+")
        if self._group is None:
            if not self.exists():
                raise MissingUpstreamError(f"no {self.stage} cache for category {self.category} at {self.url}")
            try:
                self._group = zarr.open_group(self.url, mode="r")
            except Exception as exc:  # noqa: BLE001 - corrupt root metadata
                raise BadInputError(f"unreadable {self.stage} store ({type(exc).__name__}: {exc})", path=f"{self.url}/zarr.json") from exc
        return self._group

    def _object_group(self, object_id: str) -> zarr.Group:
        if self.is_local:
            return self._zip_group(object_id)
        import zarr

        name = local_name(object_id)
        try:
            member = self.group()[name]
        except ObjectError:
            raise
        except (KeyError, FileNotFoundError):
            raise MissingUpstreamError(
                f"stage {self.stage!r} has no result for this object (run `partstad {self.stage}` first)",
                object_id=object_id,
                path=self.path(object_id),
            ) from None
        except Exception as exc:  # noqa: BLE001 - corrupt group metadata
            raise BadInputError(f"unreadable group metadata ({type(exc).__name__}: {exc})", object_id=object_id, path=f"{self.path(object_id)}/zarr.json") from exc
        if not isinstance(member, zarr.Group):
            raise BadInputError("expected an object group, found an array", object_id=object_id, path=self.path(object_id))
        return member

    def _zip_group(self, object_id: str) -> zarr.Group:
        """The object's group, read from its zip (handles cached, a few at a time)."""
        name = local_name(object_id)
        path = self.object_file(object_id)
        try:
            st = path.stat()
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        cached = self._open.get(name)
        if cached is not None:
            if cached[2] == stamp:  # still the file we opened (a rewrite renames a new one in)
                return cached[1]
            self._forget(name)
        if stamp is None or not path.is_file():
            if not self.exists():
                raise MissingUpstreamError(f"no {self.stage} cache for category {self.category} at {self.url}", object_id=object_id)
            raise MissingUpstreamError(
                f"stage {self.stage!r} has no result for this object (run `partstad {self.stage}` first)",
                object_id=object_id,
                path=str(path),
            )
        try:
            import zarr

            zs = _object_zip_store()(path, mode="r")
            zs._sync_open()
            zs.check = ObjectZipCheck(zs._zf, str(path), object_id, self.stage)
            g = zarr.open_group(zs, mode="r")
        except ObjectError:
            raise
        except Exception as exc:  # noqa: BLE001 - truncated or garbage zip, corrupt metadata
            raise BadInputError(f"unreadable object file ({type(exc).__name__}: {exc})", object_id=object_id, path=str(path)) from exc
        if len(self._open) >= _OPEN_OBJECTS:
            self._forget(next(iter(self._open)))
        self._open[name] = (zs, g, stamp)
        return g

    # -- status -------------------------------------------------------------------
    def object_ids(self, complete_only: bool = True) -> list[str]:
        """Object ids stored here (complete ones only by default); unreadable groups are left out."""
        if not self.exists():
            return []
        self._forget()
        if self.is_local:
            names = sorted(p.name[: -len(OBJECT_SUFFIX)] for p in Path(self.url).glob(f"*{OBJECT_SUFFIX}")
                           if p.is_file() and not p.name.startswith("."))
        else:
            g = self.group()
            with warnings.catch_warnings():  # side files (failures.json...) are not zarr members
                warnings.simplefilter("ignore")
                names = sorted(n for n in g.group_keys() if not n.startswith("."))
        out = []
        for name in names:
            oid = f"{self.category}/{name}"
            if not complete_only or self.stored_fingerprint(oid) is not None:
                out.append(oid)
        return out

    def stored_fingerprint(self, object_id: str) -> str | None:
        """Fingerprint of a *complete* object, or None if missing/incomplete/unreadable."""
        if not self.exists():
            return None
        try:
            if self.is_local:
                attrs = self._zip_attrs(object_id)
            else:
                import zarr

                attrs = dict(zarr.open_group(self.url, mode="r")[local_name(object_id)].attrs)
        except Exception:  # noqa: BLE001 - missing or corrupt metadata: not complete
            return None
        if not attrs.get(COMPLETE_ATTR, False):
            return None
        return attrs.get(FINGERPRINT_ATTR)

    def _zip_attrs(self, object_id: str) -> dict[str, Any]:
        """The object's group attributes, read from its zip with zipfile + json (no zarr), size-capped."""
        with zipfile.ZipFile(self.object_file(object_id)) as zf:
            return dict(read_json_member(zf, "zarr.json").get("attributes") or {})

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
        for key, arr in arrays.items():
            arr = np.asarray(arr)
            if arr.dtype == object:
                raise TypeError(f"array {key!r} of {object_id} has object dtype; use flat + offsets")
        name = local_name(object_id)
        self._forget(name)
        # In memory, not a staging directory: no per-chunk files, renames and deletes; and the
        # digests of the stored bytes go into the metadata written with them.
        entries = self._build_entries(object_id, arrays, attrs, fingerprint_value, chunks)
        if self.is_local:
            self.group(writable=True)
            packed = Path(self.url) / f"{_STAGING_PREFIX}{name}-{uuid.uuid4().hex[:8]}{OBJECT_SUFFIX}"
            try:
                pack_entries(entries, packed)
                os.replace(packed, self.object_file(object_id))  # the new result, whole, in one step
            finally:
                packed.unlink(missing_ok=True)
            legacy = Path(self.url) / name  # a directory group written by an older version
            if legacy.is_dir():
                replace_dir_away(legacy)
        else:
            import fsspec

            self.delete_object(object_id)
            self.group(writable=True)
            mapper = fsspec.get_mapper(f"{self.url}/{name}")
            for key in sorted(entries, key=lambda k: (k == "zarr.json", k)):  # group metadata (the marker) last
                mapper[key] = entries[key]
        self._forget(name)

    def _build_entries(self, object_id: str, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any],
                       fingerprint_value: str, chunks: Mapping[str, tuple[int, ...]] | None) -> dict[str, bytes]:
        """The object's group as store key -> bytes, its metadata (digests, counts, marker) written last."""
        import zarr
        from zarr.storage import MemoryStore

        buffers: dict[str, Any] = {}
        g = zarr.open_group(MemoryStore(buffers), mode="w")
        stored = self._fill_arrays(g, arrays, chunks)
        digests = digests_of({key: buf.to_bytes() for key, buf in buffers.items()}, stored)
        meta = json.loads(json.dumps(dict(attrs), default=_json_default))
        meta.update({FINGERPRINT_ATTR: fingerprint_value, "object_id": object_id, STORED_ARRAYS_ATTR: stored,
                     DIGESTS_ATTR: digests, COUNTS_ATTR: counts_of(self.stage, stored), COMPLETE_ATTR: True})
        g.attrs.update(meta)  # one metadata write, last: only a finished group is complete
        return {key: buf.to_bytes() for key, buf in buffers.items()}

    @staticmethod
    def _fill_arrays(g: zarr.Group, arrays: Mapping[str, np.ndarray], chunks: Mapping[str, tuple[int, ...]] | None) -> dict[str, list[int]]:
        """Write every array into ``g``; returns name -> shape."""
        stored: dict[str, list[int]] = {}
        for key, arr in arrays.items():
            arr = np.ascontiguousarray(arr)
            c = (chunks or {}).get(key) or default_chunks(key, arr.shape) or "auto"
            if arr.dtype == np.float64:
                arr = arr.astype(np.float32)
            # One view (or box) per chunk, all chunks of an array in one shard file: reads stay
            # per view while a store holds a few files per object (DVC hashes every file).
            shards = tuple(arr.shape) if isinstance(c, tuple) and arr.size else None
            za = g.create_array(
                key, shape=arr.shape, dtype=arr.dtype, chunks=c, shards=shards, compressors=_compressors(),
                attributes={ALL_CHUNKS_ATTR: True}, config={"write_empty_chunks": True},
            )
            if arr.size:
                za[...] = arr
            stored[key] = list(arr.shape)
        return stored

    def delete_object(self, object_id: str) -> None:
        """Remove an object's group so that no interruption leaves it looking complete."""
        name = local_name(object_id)
        self._forget(name)
        if self.is_local:
            base = Path(self.url)
            if base.is_dir():  # leftovers of this object's deletes interrupted by a kill
                for old in base.glob(f"{_TRASH_PREFIX}{name}-*"):
                    shutil.rmtree(old, ignore_errors=True)
            self.object_file(object_id).unlink(missing_ok=True)  # atomic: gone at once
            if (base / name).is_dir():  # an older version's directory group
                replace_dir_away(base / name)
        elif self.exists():
            root = self.group(writable=True)
            if name in root:
                try:
                    root[name].attrs[COMPLETE_ATTR] = False  # no marker while half deleted
                except Exception:  # noqa: BLE001 - corrupt metadata: delete anyway
                    pass
                del root[name]
        self._group = None

    def clean_leftovers(self) -> int:
        """Remove staging/trash directories left by killed runs (call under the store lock)."""
        if not self.is_local or not Path(self.url).is_dir():
            return 0
        n = 0
        for p in Path(self.url).iterdir():
            if p.name.startswith((_TRASH_PREFIX, _STAGING_PREFIX)):
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
                n += 1
        return n

    def check_root(self) -> None:
        """Refuse to work on a store whose root metadata is unreadable (clear error, no traceback)."""
        if not self.is_local:
            return
        base = Path(self.url)
        if base.exists() and not base.is_dir():
            raise StoreCorruptError(f"{self.url} should be a Zarr store directory but is a file; move it away")
        if (base / "zarr.json").exists():
            try:
                meta = json.loads((base / "zarr.json").read_text())
                if not isinstance(meta, dict) or meta.get("node_type") != "group":
                    raise TypeError("not a Zarr group")
            except Exception as exc:  # noqa: BLE001 - any parse error means a damaged store
                raise StoreCorruptError(
                    f"the {self.stage} store of {self.category} is unreadable: {base / 'zarr.json'} ({type(exc).__name__}: {exc}). "
                    f"Restore it (`dvc checkout {self.url}`) or delete {self.url} to recompute it") from None

    # -- self-check ------------------------------------------------------------------
    def verify_object(self, object_id: str) -> str | None:
        """Why a complete-marked object is not usable (None when it is): cheap metadata checks.

        Every array recorded at write time must exist with its shape and all of its chunk
        files; the group and array metadata must parse. Chunk contents are checked (CRC32C)
        only when read.
        """
        if self.is_local:
            return self._verify_zip(object_id)
        try:
            attrs = self.attrs(object_id)
            stored = attrs.get(STORED_ARRAYS_ATTR)
            if not isinstance(stored, dict):
                return "no record of its arrays (written by an older version)"
            for name, shape in stored.items():
                za = self._zarr_array(object_id, name, tuple(shape))
                del za
        except ObjectError as exc:
            return exc.reason
        return None

    def _verify_zip(self, object_id: str) -> str | None:
        """:meth:`verify_object` for a local object: every array checked from the zip (no zarr,
        nothing decoded): metadata, sizes, chunk files, digest and chunk headers."""
        path = self.object_file(object_id)
        try:
            with zipfile.ZipFile(path) as zf:
                ObjectZipCheck(zf, str(path), object_id, self.stage).check_all(zf)
        except ObjectError as exc:
            return exc.reason
        except Exception as exc:  # noqa: BLE001 - truncated zip, garbage metadata
            return f"unreadable object file {path} ({type(exc).__name__}: {exc})"
        return None

    # -- locking -----------------------------------------------------------------------
    def lock(self, timeout: float = -1):
        """An exclusive inter-process lock on this store (``<store>.lock`` beside it).

        Returns a context manager; raises :class:`StoreBusyError` when another run holds it
        for longer than ``timeout`` seconds (-1 = wait for ever). fsspec stores are not
        locked (no portable lock there): run one writer per remote store.
        """
        return store_lock(f"{self.url}.lock" if self.is_local else None, self.url, timeout)

    # -- read ---------------------------------------------------------------------
    def attrs(self, object_id: str) -> dict[str, Any]:
        if self.is_local:
            path = self.object_file(object_id)
            if path.is_file():
                try:
                    return self._zip_attrs(object_id)
                except Exception:  # noqa: BLE001 - let the zarr path name the problem
                    pass
        return dict(self._object_group(object_id).attrs)

    def _zarr_array(self, object_id: str, name: str, expect_shape: tuple[int | None, ...] | None = None) -> zarr.Array:
        import zarr

        g = self._object_group(object_id)
        where = self.path(object_id, name)
        try:
            za = g[name] if name in g else None
        except ObjectError:
            raise
        except Exception as exc:  # noqa: BLE001 - corrupt array metadata
            raise BadInputError(f"unreadable array metadata ({type(exc).__name__}: {exc})", object_id=object_id, path=f"{where}/zarr.json") from exc
        if not isinstance(za, zarr.Array):
            raise MissingUpstreamError(f"array {name!r} missing", object_id=object_id, path=self.path(object_id))
        if expect_shape is not None and not _shape_matches(za.shape, expect_shape):
            want = "(" + ", ".join("*" if d is None else str(d) for d in expect_shape) + ")"
            raise BadInputError(f"array {name!r} has shape {tuple(za.shape)}, expected {want}", object_id=object_id, path=where)
        if za.attrs.get(ALL_CHUNKS_ATTR, False) and za.size:
            try:
                n_found, n_expected = za.nchunks_initialized, za.nchunks
            except Exception as exc:  # noqa: BLE001
                raise BadInputError(f"cannot list chunks ({type(exc).__name__}: {exc})", object_id=object_id, path=where) from exc
            if n_found != n_expected:
                raise BadInputError(f"array {name!r} is incomplete: {n_found} of {n_expected} chunks present (shard file missing or damaged)", object_id=object_id, path=where)
        return za

    def read(self, object_id: str, name: str, *, expect_shape: tuple[int | None, ...] | None = None, finite: bool = False) -> np.ndarray:
        """One whole array. ``expect_shape`` (None = any size) and ``finite`` are checked here,
        so a wrong-shaped or NaN-bearing input fails with the object and file named."""
        za = self._zarr_array(object_id, name, expect_shape)
        out = _guarded_read(za, ..., object_id, self.path(object_id, name))
        if finite and out.dtype.kind in "fc" and not np.isfinite(out).all():
            n_bad = int((~np.isfinite(out)).sum())
            raise BadInputError(f"array {name!r} has {n_bad} NaN/inf values", object_id=object_id, path=self.path(object_id, name))
        return out

    def read_all(self, object_id: str, names: list[str] | None = None) -> dict[str, np.ndarray]:
        if names is None:
            stored = self.attrs(object_id).get(STORED_ARRAYS_ATTR)
            names = list(stored) if isinstance(stored, dict) else [k for k, _ in self._object_group(object_id).arrays()]
        keys = names
        return {k: self.read(object_id, k) for k in keys}

    def array(self, object_id: str, name: str, *, expect_shape: tuple[int | None, ...] | None = None) -> "CheckedArray":
        """The stored array, indexable chunk by chunk; read errors name the object and file."""
        return CheckedArray(self._zarr_array(object_id, name, expect_shape), object_id, self.path(object_id, name))

    def lazy(self, object_id: str, name: str):
        """Dask array over one stored array (chunked like the store: one view per chunk)."""
        import dask.array as da

        return da.from_zarr(self._zarr_array(object_id, name))

    # -- side files (failures, manifest) -----------------------------------------
    def side_file(self, name: str) -> Path | str:
        """Path (local root) or fsspec URL of a JSON side file next to the object groups."""
        return Path(self.url) / name if self.is_local else f"{self.url}/{name}"

    def write_json(self, name: str, payload: Any) -> Path | str:
        """Write a JSON side file by replace (never in place: DVC may have linked it)."""
        self.group(writable=True)
        text = json.dumps(payload, indent=2, default=_json_default)
        path = self.side_file(name)
        if not isinstance(path, Path):  # fsspec: one put of the whole file
            import fsspec

            with fsspec.open(path, "w") as fh:
                fh.write(text)
            return path
        atomic_write_text(path, text)
        return path

    def read_json(self, name: str, default: Any = None) -> Any:
        path = self.side_file(name)
        if not isinstance(path, Path):
            import fsspec

            try:
                with fsspec.open(path, "r") as fh:
                    return json.loads(fh.read())
            except FileNotFoundError:
                return default
        if not path.exists():
            return default
        try:
            return json.loads(path.read_text())
        except ValueError as exc:
            raise BadInputError(f"corrupt JSON side file ({exc})", path=path) from exc


def pack_entries(entries: Mapping[str, bytes], dest: Path) -> None:
    """Zip store keys -> bytes (uncompressed, sorted, fixed timestamps): same content, same bytes."""
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key in sorted(entries):
            info = zipfile.ZipInfo(key, date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            zf.writestr(info, entries[key])


def replace_dir_away(target: Path) -> None:
    """Remove a directory so that no interruption leaves it half there (rename, then delete)."""
    trash = target.with_name(f"{_TRASH_PREFIX}{target.name}-{uuid.uuid4().hex[:8]}")
    os.replace(target, trash)
    shutil.rmtree(trash, ignore_errors=True)


def replace_dir(staging: str | Path, target: str | Path) -> None:
    """Swap a fully written directory in place of ``target``; the old one is removed only after
    the new one is in place, so a crash leaves either the old or the new directory."""
    staging, target = Path(staging), Path(target)
    trash = None
    if target.exists():
        trash = target.with_name(f"{_TRASH_PREFIX}{target.name}-{uuid.uuid4().hex[:8]}")
        os.replace(target, trash)
    os.replace(staging, target)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write a new file beside ``path`` and ``os.replace`` it in: readers see old or new,
    and a file DVC hard-linked into its cache is replaced, never modified in place."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()
    return p


class StoreCorruptError(RuntimeError):
    """A store's own metadata (its root zarr.json) cannot be read."""


class StoreBusyError(RuntimeError):
    """Another run holds the lock of a store."""


class _NoLock:
    def __enter__(self) -> "_NoLock":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


class _StoreLock:
    """filelock-based exclusive lock that says who waits for what."""

    def __init__(self, lock_path: str, what: str, timeout: float):
        from filelock import FileLock

        Path(lock_path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(lock_path)
        self.lock_path, self.what, self.timeout = lock_path, what, timeout

    def __enter__(self) -> "_StoreLock":
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=0)
            return self
        except Timeout:
            pass
        if self.timeout == 0:
            raise StoreBusyError(f"another partstad run is writing {self.what} (lock {self.lock_path}); "
                                 "try again when it has finished, or pass --lock-timeout to wait")
        import logging

        logging.getLogger("partstad").warning("another partstad run is writing %s; waiting for it to finish (lock %s)", self.what, self.lock_path)
        try:
            self._lock.acquire(timeout=self.timeout)
        except Timeout:
            raise StoreBusyError(f"gave up after {self.timeout:g} s: another partstad run is still writing {self.what} "
                                 f"(lock {self.lock_path})") from None
        return self

    def __exit__(self, *exc: Any) -> None:
        self._lock.release()


def store_lock(lock_path: str | None, what: str, timeout: float = -1) -> Any:
    """Exclusive lock on ``lock_path`` (None: no lock), see :meth:`CategoryStore.lock`."""
    return _StoreLock(lock_path, what, timeout) if lock_path else _NoLock()


def _shape_matches(shape: tuple[int, ...], expect: tuple[int | None, ...]) -> bool:
    return len(shape) == len(expect) and all(e is None or int(e) == s for s, e in zip(shape, expect))


def _guarded_read(za: zarr.Array, index: Any, object_id: str, where: str) -> np.ndarray:
    """Read from a zarr array; codec/IO failures (truncated, corrupt chunk) -> BadInputError."""
    try:
        return np.asarray(za[index])
    except (IndexError, TypeError, ObjectError):
        raise  # caller bugs, or bad data already named
    except Exception as exc:  # noqa: BLE001 - blosc/crc32c/IO errors all mean a corrupt file
        raise BadInputError(f"corrupt or unreadable chunk ({type(exc).__name__}: {exc})", object_id=object_id, path=where) from exc


class CheckedArray:
    """A stored array indexed lazily (``a[b]`` reads one chunk) with read errors named."""

    def __init__(self, za: zarr.Array, object_id: str, where: str):
        self._za, self.object_id, self.where = za, object_id, where

    shape = property(lambda self: tuple(self._za.shape))
    dtype = property(lambda self: self._za.dtype)
    ndim = property(lambda self: len(self._za.shape))
    chunks = property(lambda self: self._za.chunks)
    size = property(lambda self: int(self._za.size))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        return _guarded_read(self._za, index, self.object_id, self.where)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[...]
        return out.astype(dtype) if dtype is not None else out
