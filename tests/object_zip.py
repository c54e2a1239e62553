"""Test helpers that damage one member of an object's zip file (cache/<stage>/<C>.zarr/<id>.zip).

Each object of a local store is one zipped Zarr group; these helpers rewrite the zip with one
member replaced or removed, the way a disk error or a hand edit would, so tests can check that
the damage is detected and named.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path


def object_zip(cache: Path, stage: str, object_id: str, category: str | None = None) -> Path:
    """Path of one object's zip file in a local cache."""
    cat, name = object_id.split("/", 1)
    return Path(cache) / stage / f"{category or cat}.zarr" / f"{name}.zip"


def members(zip_path: Path) -> list[str]:
    with zipfile.ZipFile(zip_path) as zf:
        return zf.namelist()


def chunk_members(zip_path: Path, array: str) -> list[str]:
    """Data members (chunks or the shard) of one array, sorted."""
    return sorted(m for m in members(zip_path) if m.startswith(f"{array}/c/"))


def edit_member(zip_path: Path, name: str, change: Callable[[bytes], bytes | None]) -> None:
    """Rewrite ``zip_path`` with member ``name`` replaced by ``change(old)`` (None: removed)."""
    with zipfile.ZipFile(zip_path) as zf:
        entries = [(info, zf.read(info)) for info in zf.infolist()]
    assert name in {i.filename for i, _ in entries}, f"{name} not in {zip_path}"
    tmp = zip_path.with_name(zip_path.name + ".edit")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for info, data in entries:
            if info.filename == name:
                data = change(data)
                if data is None:
                    continue
            zf.writestr(info, data)
    tmp.replace(zip_path)


def read_members(zip_path: Path) -> dict[str, bytes]:
    """Every member of a zip, name -> bytes."""
    with zipfile.ZipFile(zip_path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def write_members(zip_path: Path, entries: dict[str, bytes], compress: set[str] | None = None) -> None:
    """Rewrite ``zip_path`` with these members (stored, or deflated for names in ``compress``)."""
    tmp = zip_path.with_name(zip_path.name + ".edit")
    with zipfile.ZipFile(tmp, "w") as zf:
        for name in sorted(entries):
            method = zipfile.ZIP_DEFLATED if name in (compress or set()) else zipfile.ZIP_STORED
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), entries[name], compress_type=method)
    tmp.replace(zip_path)


def forge_metadata(zip_path: Path, change: Callable[[dict], None] | None = None, digests: bool = True) -> None:
    """Recompute the array digests in the group zarr.json (after ``change(attrs)``), the way a
    deliberate forger would: the zip then agrees with itself and only the bounds can catch it."""
    import json

    from stages.object_digest import DIGESTS_ATTR, digests_of

    entries = read_members(zip_path)
    group = json.loads(entries["zarr.json"])
    if change is not None:
        change(group["attributes"])
    if digests:
        group["attributes"][DIGESTS_ATTR] = digests_of(entries, group["attributes"]["stored_arrays"])
    entries["zarr.json"] = json.dumps(group).encode()
    write_members(zip_path, entries)
