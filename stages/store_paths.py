"""Names in a cache: store roots, object group names, object zip files.

A root may be a local directory, a ``file://`` URL (the same local directory, so it gets
the local store's atomic renames and cheap deletes) or any other fsspec URL zarr understands.
"""

from __future__ import annotations

from pathlib import Path

#: Suffix of the single file holding one object's group in a local store.
OBJECT_SUFFIX = ".zip"


def normalise_root(root: str | Path) -> str:
    """``file:///x`` -> ``/x`` (zarr's LocalStore: atomic writes, cheap deletes); others as given."""
    root = str(root)
    if root.startswith("file://"):
        return root[len("file://") :] or "/"
    return root


def is_local_url(url: str) -> bool:
    """A plain path (no ``scheme://``) is a local store."""
    return "://" not in url


def local_name(object_id: str) -> str:
    """Group name of an object inside its category store: ``Chair/179`` -> ``179``."""
    return object_id.split("/", 1)[1] if "/" in object_id else object_id


def object_file(store_url: str, object_id: str) -> Path:
    """The zip file of one object in a local store."""
    return Path(store_url) / f"{local_name(object_id)}{OBJECT_SUFFIX}"
