"""What a category store does differently on a local directory and on an fsspec URL.

:class:`stages.store.CategoryStore` is the facade the stages use; it holds one backend:
:class:`stages.store_local.LocalZipBackend` (a directory with one zip per object, written
by rename, locked with filelock) or :class:`stages.store_fsspec.FsspecBackend` (plain
directory groups at any fsspec URL, no rename, no lock). This base class holds what both
share: naming, the root group, and array access through the object's group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.errors import BadInputError, MissingUpstreamError
from stages.checked_read import open_array
from stages.store_paths import local_name

if TYPE_CHECKING:
    from pathlib import Path

    import zarr


class StoreCorruptError(RuntimeError):
    """A store's own metadata (its root zarr.json) cannot be read."""


class StoreBackend:
    """One store ``<root>/<stage>/<category>.zarr``: the operations whose storage differs."""

    #: Whether objects are zip files in a local directory (renames, locks, leftovers to clean).
    is_local: bool = False
    #: What follows an object's name in its path (``.zip`` for a local object file).
    object_suffix: str = ""

    def __init__(self, url: str, stage: str, category: str):
        self.url, self.stage, self.category = url, stage, category
        self._group: zarr.Group | None = None

    def __getstate__(self) -> dict[str, Any]:  # travels to dask workers without open handles
        return {**self.__dict__, "_group": None}

    def forget(self, name: str | None = None) -> None:
        """Drop cached handles (all, or one object's) after a write or delete."""
        self._group = None

    # -- naming -------------------------------------------------------------------
    def path(self, object_id: str | None = None, name: str | None = None) -> str:
        """Where an object (or one of its arrays) lives: used in every error message."""
        obj = [local_name(object_id) + self.object_suffix] if object_id else []
        return "/".join([self.url] + obj + ([name] if name else []))

    def no_result(self, object_id: str, path: str) -> MissingUpstreamError:
        return MissingUpstreamError(
            f"stage {self.stage!r} has no result for this object (run `partstad {self.stage}` first)",
            object_id=object_id,
            path=path,
        )

    # -- root group -----------------------------------------------------------------
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

    # -- reads ------------------------------------------------------------------------
    def attrs(self, object_id: str) -> dict[str, Any]:
        """The object's group attributes (errors name the object and the file)."""
        return dict(self.open_object(object_id).attrs)

    def array(self, object_id: str, name: str, expect_shape: tuple[int | None, ...] | None = None) -> zarr.Array:
        """One array of the object, checked as far as its metadata goes (:func:`open_array`)."""
        g = self.open_object(object_id)
        return open_array(g, name, object_id, self.path(object_id, name), self.path(object_id), expect_shape)

    # -- local-only chores: nothing to do by default ------------------------------------
    def lock_path(self) -> str | None:
        """The lock file of the store (None: not lockable)."""
        return None

    def clean_leftovers(self) -> int:
        return 0

    def check_root(self) -> None:
        return None

    # -- what each backend provides ----------------------------------------------------
    def exists(self) -> bool:
        raise NotImplementedError

    def open_object(self, object_id: str) -> zarr.Group:
        """The object's zarr group (MissingUpstreamError / BadInputError naming it)."""
        raise NotImplementedError

    def object_names(self) -> list[str]:
        """Group names of every object stored (complete or not), sorted."""
        raise NotImplementedError

    def metadata_attrs(self, object_id: str) -> dict[str, Any]:
        """The object's group attributes read straight from storage; any error propagates."""
        raise NotImplementedError

    def put_object(self, object_id: str, entries: dict[str, bytes]) -> None:
        """Make ``entries`` (store key -> bytes) the object's group, its metadata last."""
        raise NotImplementedError

    def delete_object(self, object_id: str) -> None:
        """Remove an object's group so that no interruption leaves it looking complete."""
        raise NotImplementedError

    def verify_object(self, object_id: str) -> str | None:
        """Why a complete-marked object is not usable (None when it is)."""
        raise NotImplementedError

    def side_file(self, name: str) -> Path | str:
        """Path (local) or fsspec URL of a JSON side file next to the object groups."""
        raise NotImplementedError
