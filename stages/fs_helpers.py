"""Replace, never modify: file and directory writes that a kill leaves old or new, never half.

DVC hard-links cached files into its cache, so a file it tracks must be replaced by a new
one (``os.replace``), never written in place. The name prefixes mark what a killed run
leaves behind, so the store can clean it up under its lock.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

#: Prefix of a directory (or zip) on its way out: renamed away first, deleted after.
TRASH_PREFIX = ".trash-"
#: Prefix of a file being written before it is renamed in.
STAGING_PREFIX = ".staging-"


def replace_dir_away(target: Path) -> None:
    """Remove a directory so that no interruption leaves it half there (rename, then delete)."""
    trash = target.with_name(f"{TRASH_PREFIX}{target.name}-{uuid.uuid4().hex[:8]}")
    os.replace(target, trash)
    shutil.rmtree(trash, ignore_errors=True)


def replace_dir(staging: str | Path, target: str | Path) -> None:
    """Swap a fully written directory in place of ``target``; the old one is removed only after
    the new one is in place, so a crash leaves either the old or the new directory."""
    staging, target = Path(staging), Path(target)
    trash = None
    if target.exists():
        trash = target.with_name(f"{TRASH_PREFIX}{target.name}-{uuid.uuid4().hex[:8]}")
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
