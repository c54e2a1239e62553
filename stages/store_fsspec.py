"""An fsspec store (``s3://``, ``gcs://``, ``memory://``...): plain Zarr directory groups.

There is no rename on most object stores, so a write clears the old group first and puts
the new one key by key, the group metadata (with the ``complete`` marker) last; a delete
clears the marker before removing anything, so a kill mid-delete never leaves a half-deleted
group that still looks complete. There is no portable lock either: one writer per store.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from pipeline.errors import BadInputError, ObjectError
from stages.object_check import COMPLETE_ATTR, STORED_ARRAYS_ATTR
from stages.store_backend import StoreBackend
from stages.store_paths import local_name

if TYPE_CHECKING:
    import zarr


class FsspecBackend(StoreBackend):
    """Object groups as directories under an fsspec URL, opened through zarr."""

    def exists(self) -> bool:
        import zarr

        try:
            zarr.open_group(self.url, mode="r")
            return True
        except Exception:  # noqa: BLE001 - any backend error means "not there"
            return False

    def open_object(self, object_id: str) -> zarr.Group:
        import zarr

        name = local_name(object_id)
        try:
            member = self.group()[name]
        except ObjectError:
            raise
        except (KeyError, FileNotFoundError):
            raise self.no_result(object_id, self.path(object_id)) from None
        except Exception as exc:  # noqa: BLE001 - corrupt group metadata
            raise BadInputError(
                f"unreadable group metadata ({type(exc).__name__}: {exc})", object_id=object_id, path=f"{self.path(object_id)}/zarr.json"
            ) from exc
        if not isinstance(member, zarr.Group):
            raise BadInputError("expected an object group, found an array", object_id=object_id, path=self.path(object_id))
        return member

    def object_names(self) -> list[str]:
        g = self.group()
        with warnings.catch_warnings():  # side files (failures.json...) are not zarr members
            warnings.simplefilter("ignore")
            return sorted(n for n in g.group_keys() if not n.startswith("."))

    def metadata_attrs(self, object_id: str) -> dict[str, Any]:
        import zarr

        return dict(zarr.open_group(self.url, mode="r")[local_name(object_id)].attrs)

    def verify_object(self, object_id: str) -> str | None:
        """Every array recorded at write time must open with its shape and all of its chunk
        files; the group and array metadata must parse. Chunk contents are checked on read."""
        try:
            attrs = self.attrs(object_id)
            stored = attrs.get(STORED_ARRAYS_ATTR)
            if not isinstance(stored, dict):
                return "no record of its arrays (written by an older version)"
            for name, shape in stored.items():
                za = self.array(object_id, name, tuple(shape))
                del za
        except ObjectError as exc:
            return exc.reason
        return None

    def put_object(self, object_id: str, entries: dict[str, bytes]) -> None:
        """No rename here: clear the old group, then write key by key, the marker last."""
        import fsspec

        self.delete_object(object_id)
        self.group(writable=True)
        mapper = fsspec.get_mapper(f"{self.url}/{local_name(object_id)}")
        for key in sorted(entries, key=lambda k: (k == "zarr.json", k)):  # group metadata (the marker) last
            mapper[key] = entries[key]

    def delete_object(self, object_id: str) -> None:
        """Clear the marker first, then remove the group."""
        name = local_name(object_id)
        self.forget(name)
        if self.exists():
            root = self.group(writable=True)
            if name in root:
                try:
                    root[name].attrs[COMPLETE_ATTR] = False  # no marker while half deleted
                except Exception:  # noqa: BLE001 - corrupt metadata: delete anyway
                    pass
                del root[name]
        self._group = None

    def side_file(self, name: str) -> str:
        return f"{self.url}/{name}"
