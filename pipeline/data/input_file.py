"""Open untrusted input files without blocking, guessing or over-reading.

Why: `Path.is_file()` answers False for a FIFO, a directory, a device and a symlink loop, so a
reader that asks it whether `label.npy` exists treats all of those as "no labels" and the
object is silently ingested unlabelled; and `open()` on a FIFO blocks the worker for ever.
Here a name that exists at all (`lstat`) but is not a regular file once symlinks are followed
is a BadInputError naming it. The open itself is `O_NONBLOCK` followed by `fstat`, so a file
swapped for a FIFO between the check and the open cannot block either. A size cap keeps a
runaway file from being read into memory.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from pipeline.errors import BadInputError

#: Largest input file any reader accepts (bytes). A PartNetE `pc.ply` is ~150 KB and a
#: 10-million-point binary PLY ~150 MB; beyond this a file is a mistake, not a shape.
MAX_INPUT_BYTES = 1 << 30

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def exists(path: str | Path) -> bool:
    """True when the name exists in its directory at all, even as a broken symlink or a FIFO.

    Use this, not `Path.is_file()`, to decide whether an optional file is present: a present but
    unusable file must be reported, never taken as absent.
    """
    try:
        os.lstat(path)
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        return False
    except OSError:
        return True  # e.g. permission denied on the name: it is there; opening will say why
    return True


def _check(st: os.stat_result, path: Path, max_bytes: int | None, object_id: str | None) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise BadInputError(f"is {_kind(st.st_mode)}, not a regular file", object_id=object_id, path=path)
    cap = MAX_INPUT_BYTES if max_bytes is None else max_bytes
    if st.st_size > cap:
        raise BadInputError(
            f"file is {st.st_size} bytes, larger than the {cap}-byte cap for one input file", object_id=object_id, path=path
        )


def _stat_error(e: OSError, path: Path, object_id: str | None) -> BadInputError:
    if isinstance(e, FileNotFoundError) and exists(path):
        return BadInputError("is a broken symlink (its target does not exist)", object_id=object_id, path=path)
    return BadInputError(f"cannot read file: {e.strerror or e}", object_id=object_id, path=path)


def check_regular(path: str | Path, *, max_bytes: int | None = None, object_id: str | None = None) -> int:
    """Size of `path` if it is a regular file (symlinks followed) within the cap, else BadInputError."""
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError as e:  # ELOOP (symlink loop), ENOENT, EACCES, ENAMETOOLONG...
        raise _stat_error(e, path, object_id) from None
    _check(st, path, max_bytes, object_id)
    return st.st_size


def open_regular(path: str | Path, *, max_bytes: int | None = None, object_id: str | None = None) -> BinaryIO:
    """Open a regular file for binary reading; never blocks on a FIFO or device."""
    path = Path(path)
    check_regular(path, max_bytes=max_bytes, object_id=object_id)  # clear message for the common case
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise _stat_error(e, path, object_id) from None
    try:
        _check(os.fstat(fd), path, max_bytes, object_id)  # the name may have been swapped meanwhile
        os.set_blocking(fd, True)
        return open(path, "rb", opener=lambda _name, _flags: fd)  # keeps `.name` (trimesh reads it)
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: str | Path, *, max_bytes: int | None = None, object_id: str | None = None) -> bytes:
    """Whole contents of a regular file (see `open_regular`)."""
    with open_regular(path, max_bytes=max_bytes, object_id=object_id) as f:
        try:
            return f.read()
        except OSError as e:
            raise BadInputError(f"cannot read file: {e.strerror or e}", object_id=object_id, path=path) from None


def read_text(path: str | Path, *, max_bytes: int | None = None, object_id: str | None = None) -> str:
    """UTF-8 text of a regular file; undecodable bytes are a BadInputError."""
    data = read_bytes(path, max_bytes=max_bytes, object_id=object_id)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadInputError(f"file is not UTF-8 text ({e})", object_id=object_id, path=path) from None
