"""Reading stored arrays so that every failure names the object and the file.

:func:`open_array` opens one array of an object's group and checks what its metadata can
tell before a chunk is read: it exists, has the expected shape and (when it was written
whole) has all of its chunks. :class:`CheckedArray` and :func:`guarded_read` turn codec and
IO errors of the chunks themselves (truncated, bit-flipped) into :class:`BadInputError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import BadInputError, MissingUpstreamError, ObjectError
from stages.object_check import ALL_CHUNKS_ATTR

if TYPE_CHECKING:
    import zarr


def shape_matches(shape: tuple[int, ...], expect: tuple[int | None, ...]) -> bool:
    """Same rank, and every expected size (None = any) equal."""
    return len(shape) == len(expect) and all(e is None or int(e) == s for s, e in zip(shape, expect))


def open_array(
    g: zarr.Group, name: str, object_id: str, where: str, object_path: str, expect_shape: tuple[int | None, ...] | None = None
) -> zarr.Array:
    """Array ``name`` of an object's group ``g``; ``where`` names the array, ``object_path`` the object."""
    import zarr

    try:
        za = g[name] if name in g else None
    except ObjectError:
        raise
    except Exception as exc:  # noqa: BLE001 - corrupt array metadata
        raise BadInputError(
            f"unreadable array metadata ({type(exc).__name__}: {exc})", object_id=object_id, path=f"{where}/zarr.json"
        ) from exc
    if not isinstance(za, zarr.Array):
        raise MissingUpstreamError(f"array {name!r} missing", object_id=object_id, path=object_path)
    if expect_shape is not None and not shape_matches(za.shape, expect_shape):
        want = "(" + ", ".join("*" if d is None else str(d) for d in expect_shape) + ")"
        raise BadInputError(f"array {name!r} has shape {tuple(za.shape)}, expected {want}", object_id=object_id, path=where)
    if za.attrs.get(ALL_CHUNKS_ATTR, False) and za.size:
        try:
            n_found, n_expected = za.nchunks_initialized, za.nchunks
        except Exception as exc:  # noqa: BLE001
            raise BadInputError(f"cannot list chunks ({type(exc).__name__}: {exc})", object_id=object_id, path=where) from exc
        if n_found != n_expected:
            raise BadInputError(
                f"array {name!r} is incomplete: {n_found} of {n_expected} chunks present (shard file missing or damaged)",
                object_id=object_id,
                path=where,
            )
    return za


def guarded_read(za: zarr.Array, index: Any, object_id: str, where: str) -> np.ndarray:
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
        return guarded_read(self._za, index, self.object_id, self.where)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[...]
        return out.astype(dtype) if dtype is not None else out
