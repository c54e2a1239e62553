"""A local store: ``<store>/<object>.zip``, one zipped Zarr group per object.

One file per object keeps a store a handful of files, which is what DVC pays for (it hashes
and links every file). A zip is packed beside the old one (:mod:`stages.zip_pack`) and
``os.replace``-d in, so a result appears whole or not at all, and deleting an object is one
unlink. Reads go through :class:`stages.object_check.ObjectZipCheck`: every array is checked
(metadata, sizes, digest, chunk headers) before zarr decodes a byte of it. Open zips are
cached a few at a time and re-opened when a rewrite renamed a new file in.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import uuid
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import BadInputError, MissingUpstreamError, ObjectError
from stages.fs_helpers import STAGING_PREFIX, TRASH_PREFIX, replace_dir_away
from stages.object_check import ObjectZipCheck, read_json_member
from stages.store_backend import StoreBackend, StoreCorruptError
from stages.store_paths import OBJECT_SUFFIX, local_name, object_file
from stages.zip_pack import pack_entries

if TYPE_CHECKING:
    import zarr

#: How many objects' zip files a store keeps open for reading (oldest closed first).
OPEN_OBJECTS = 8


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

        def _get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
            if not self._is_open:
                self._sync_open()
            if key == "zarr.json" and byte_range is None:
                return prototype.buffer.from_bytes(self.check.group_bytes)
            top = key.split("/", 1)[0]
            if "/" not in key or top not in self.check.stored:
                return None  # not recorded at write time: never served
            self.check.check_array(self._zf, top)
            return super()._get(key, prototype, byte_range)

        async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
            base = prefix.rstrip("/")
            async for key in self.list():
                if not base or key == base or key.startswith(base + "/"):
                    yield key

    return ObjectZipStore


class LocalZipBackend(StoreBackend):
    """A local directory holding the root ``zarr.json``, side files and one zip per object."""

    is_local = True
    object_suffix = OBJECT_SUFFIX

    def __init__(self, url: str, stage: str, category: str):
        super().__init__(url, stage, category)
        self._open: dict[str, tuple[Any, zarr.Group, tuple[int, int, int]]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "_open": {}}

    def forget(self, name: str | None = None) -> None:
        """Close cached zip handles (all, or one object's) after a write or delete."""
        super().forget(name)
        for key in [name] if name is not None else list(self._open):
            entry = self._open.pop(key, None)
            if entry is not None:
                entry[0].close()

    def exists(self) -> bool:
        return (Path(self.url) / "zarr.json").exists()

    # -- reads ------------------------------------------------------------------------
    def open_object(self, object_id: str) -> zarr.Group:
        """The object's group, read from its zip (handles cached, a few at a time)."""
        name = local_name(object_id)
        path = object_file(self.url, object_id)
        try:
            st = path.stat()
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        cached = self._open.get(name)
        if cached is not None:
            if cached[2] == stamp:  # still the file we opened (a rewrite renames a new one in)
                return cached[1]
            self.forget(name)
        if stamp is None or not path.is_file():
            if not self.exists():
                raise MissingUpstreamError(f"no {self.stage} cache for category {self.category} at {self.url}", object_id=object_id)
            raise self.no_result(object_id, str(path))
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
        if len(self._open) >= OPEN_OBJECTS:
            self.forget(next(iter(self._open)))
        self._open[name] = (zs, g, stamp)
        return g

    def object_names(self) -> list[str]:
        return sorted(
            p.name[: -len(OBJECT_SUFFIX)] for p in Path(self.url).glob(f"*{OBJECT_SUFFIX}") if p.is_file() and not p.name.startswith(".")
        )

    def metadata_attrs(self, object_id: str) -> dict[str, Any]:
        """The object's group attributes, read from its zip with zipfile + json (no zarr), size-capped."""
        with zipfile.ZipFile(object_file(self.url, object_id)) as zf:
            return dict(read_json_member(zf, "zarr.json").get("attributes") or {})

    def attrs(self, object_id: str) -> dict[str, Any]:
        if object_file(self.url, object_id).is_file():
            try:
                return self.metadata_attrs(object_id)
            except Exception:  # noqa: BLE001 - let the zarr path name the problem
                pass
        return super().attrs(object_id)

    def verify_object(self, object_id: str) -> str | None:
        """Every array checked from the zip (no zarr, nothing decoded): metadata, sizes, chunk
        files, digest and chunk headers. Chunk contents are checked (CRC32C) only when read."""
        path = object_file(self.url, object_id)
        try:
            with zipfile.ZipFile(path) as zf:
                ObjectZipCheck(zf, str(path), object_id, self.stage).check_all(zf)
        except ObjectError as exc:
            return exc.reason
        except Exception as exc:  # noqa: BLE001 - truncated zip, garbage metadata
            return f"unreadable object file {path} ({type(exc).__name__}: {exc})"
        return None

    # -- writes -------------------------------------------------------------------------
    def put_object(self, object_id: str, entries: dict[str, bytes]) -> None:
        """Pack a zip beside the old one and rename it in: readers see the old or the new object."""
        name = local_name(object_id)
        self.group(writable=True)
        packed = Path(self.url) / f"{STAGING_PREFIX}{name}-{uuid.uuid4().hex[:8]}{OBJECT_SUFFIX}"
        try:
            pack_entries(entries, packed)
            os.replace(packed, object_file(self.url, object_id))  # the new result, whole, in one step
        finally:
            packed.unlink(missing_ok=True)
        legacy = Path(self.url) / name  # a directory group written by an older version
        if legacy.is_dir():
            replace_dir_away(legacy)

    def delete_object(self, object_id: str) -> None:
        """Unlink the object's zip (atomic)."""
        name = local_name(object_id)
        self.forget(name)
        base = Path(self.url)
        if base.is_dir():  # leftovers of this object's deletes interrupted by a kill
            for old in base.glob(f"{TRASH_PREFIX}{name}-*"):
                shutil.rmtree(old, ignore_errors=True)
        object_file(self.url, object_id).unlink(missing_ok=True)  # atomic: gone at once
        if (base / name).is_dir():  # an older version's directory group
            replace_dir_away(base / name)
        self._group = None

    # -- chores -------------------------------------------------------------------------
    def lock_path(self) -> str:
        return f"{self.url}.lock"

    def clean_leftovers(self) -> int:
        """Remove staging/trash files left by killed runs (call under the store lock)."""
        if not Path(self.url).is_dir():
            return 0
        n = 0
        for p in Path(self.url).iterdir():
            if p.name.startswith((TRASH_PREFIX, STAGING_PREFIX)):
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
                n += 1
        return n

    def check_root(self) -> None:
        """Refuse to work on a store whose root metadata is unreadable (clear error, no traceback)."""
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
                    f"Restore it (`dvc checkout {self.url}`) or delete {self.url} to recompute it"
                ) from None

    def side_file(self, name: str) -> Path:
        return Path(self.url) / name
