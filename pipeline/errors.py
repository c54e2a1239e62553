"""Error types that the stage runner catches per object (DESIGN §4: bad objects are skipped)."""

from __future__ import annotations

from pathlib import Path


class ObjectError(Exception):
    """A problem with one object's input. The message names the object and the file."""

    def __init__(self, reason: str, *, object_id: str | None = None, path: str | Path | None = None):
        self.reason = reason
        self.object_id = object_id
        self.path = str(path) if path is not None else None
        where = []
        if object_id:
            where.append(f"object {object_id}")
        if self.path:
            where.append(f"file {self.path}")
        super().__init__(f"{': '.join([', '.join(where), reason]) if where else reason}")


class BadInputError(ObjectError):
    """Unreadable, corrupt or inconsistent input data (PLY, labels, NaNs, empty cloud...)."""


class UnsafePickleError(BadInputError):
    """A pickled file tried to load something other than plain arrays/dicts/lists."""


class MissingUpstreamError(ObjectError):
    """An upstream stage has no complete result for this object."""
