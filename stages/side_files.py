"""JSON side files of a store (failures.json, manifest.json) and the JSON form of our values.

A side file lives next to the object groups: a :class:`~pathlib.Path` in a local store,
written by replace (DVC may have hard-linked the old one), or an fsspec URL, written with
one put of the whole file. A local file that is not JSON is a :class:`BadInputError`
naming it; an fsspec read passes fsspec's and json's own errors to the caller.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import BadInputError
from stages.fs_helpers import atomic_write_text


def json_default(obj: Any) -> Any:
    """numpy scalars and arrays, and paths, as plain JSON values (``json.dumps(default=...)``)."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: Path | str, payload: Any) -> Path | str:
    """Write ``payload`` as indented JSON to a local path (by replace) or an fsspec URL."""
    text = json.dumps(payload, indent=2, default=json_default)
    if not isinstance(path, Path):  # fsspec: one put of the whole file
        import fsspec

        with fsspec.open(path, "w") as fh:
            fh.write(text)
        return path
    atomic_write_text(path, text)
    return path


def read_json(path: Path | str, default: Any = None) -> Any:
    """The parsed file, or ``default`` when it does not exist."""
    if not isinstance(path, Path):
        import fsspec

        try:
            with fsspec.open(path, "r") as fh:
                return json.loads(fh.read())
        except FileNotFoundError:
            return default
        except ValueError as exc:  # garbage side file on a remote store: name it, as for a local one
            raise BadInputError(f"corrupt JSON side file ({exc})", path=path) from exc
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise BadInputError(f"corrupt JSON side file ({exc})", path=path) from exc
