"""Deterministic zip writing: the same entries give the same bytes on every machine.

An object's Zarr group is packed uncompressed (its chunks are already zstd-compressed), in
sorted key order, with a fixed timestamp and fixed permissions, so two runs with identical
results write byte-identical files and DVC sees no change.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path

#: Every member's timestamp (the earliest a zip can hold): no clock in the bytes.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def pack_entries(entries: Mapping[str, bytes], dest: Path) -> None:
    """Zip store keys -> bytes (uncompressed, sorted, fixed timestamps): same content, same bytes."""
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key in sorted(entries):
            info = zipfile.ZipInfo(key, date_time=ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            zf.writestr(info, entries[key])
