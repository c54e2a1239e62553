"""Object ids taken from dataset folder/file names.

An id becomes a path component (`cache/<stage>/<Cat>.zarr/<id>`), a manifest key and part of
log lines, so a folder name from an untrusted dataset must not be able to escape the store
(`..`, `/`), collide on case-folding or unicode-normalising file systems, or break logs
(control characters, whitespace). Anything outside a plain ASCII alphabet is refused.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from pipeline.errors import BadInputError

MAX_ID_LEN = 128
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", re.ASCII)
ALLOWED = f"1-{MAX_ID_LEN} ASCII letters, digits, '_', '.' or '-', starting with a letter or digit, without '..'"


def _id_problem(name: object) -> str | None:
    """Which rule `name` breaks (None if it is a valid id), checked from most to least basic."""
    if not isinstance(name, str):
        return f"is a {type(name).__name__}, not a string"
    if not name:
        return "is empty"
    if name in (".", ".."):
        return "is a relative directory name"
    bad = next((c for c in name if unicodedata.category(c)[0] == "C"), None)
    if bad is not None:
        return f"contains control/unprintable character {bad!r}"
    bad = next((c for c in name if c.isspace()), None)
    if bad is not None:
        return f"contains whitespace {bad!r}"
    bad = next((c for c in name if not c.isascii()), None)
    if bad is not None:
        return f"contains non-ASCII character {bad!r}"
    bad = next((c for c in name if c in "/\\"), None)
    if bad is not None:
        return f"contains path separator {bad!r}"
    if ".." in name:
        return "contains '..'"
    if len(name) > MAX_ID_LEN:
        return f"is {len(name)} characters long (max {MAX_ID_LEN})"
    if not name[0].isalnum():
        return f"starts with {name[0]!r}"
    bad = next((c for c in name if not (c.isalnum() or c in "_.-")), None)
    if bad is not None:
        return f"contains character {bad!r}"
    return None if _ID_RE.fullmatch(name) else "does not match the id pattern"


def is_valid_object_id(name: object) -> bool:
    """True if `name` is safe to use as an object id (see `validate_object_id`)."""
    return _id_problem(name) is None


def validate_object_id(name: str, *, path: str | Path | None = None) -> str:
    """Return `name` unchanged if it is a valid object id, else raise BadInputError.

    The message names the id (repr, so control characters stay visible), the rule it breaks
    and what is allowed; `path` (the folder or file the id came from) is attached.
    """
    problem = _id_problem(name)
    if problem is not None:
        raise BadInputError(f"invalid object id {name!r}: {problem}; allowed: {ALLOWED}", path=path)
    return name


def id_sort_key(name: str) -> tuple[int, int, str, str]:
    """Natural order: ASCII-numeric ids by value, then every other name lexically.

    Compares digit strings by (length without leading zeros, digits) instead of `int()`, which
    would fail on unicode digits like "²" ("²".isdigit() is True) and on very long names.
    """
    if name.isascii() and name.isdigit():
        digits = name.lstrip("0")
        return (0, len(digits), digits, name)
    return (1, 0, name, name)
