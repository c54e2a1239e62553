"""Zarr v3 cache store: one store per (stage, category), one group per object.

Cache rules (DESIGN §4), enforced here so every stage gets them for free:
- each object group carries a ``fingerprint`` attr (hash of stage params, upstream
  fingerprints and the stage code version) and a ``complete`` marker written *last*;
- a stage skips objects whose marker and fingerprint match and rewrites (delete, then
  write) any other, so an interrupted write is never mistaken for a finished one;
- files are never modified in place (zarr's LocalStore writes atomically via rename, and
  groups are deleted before being rewritten), which keeps DVC's hard-linked cache intact;
- only plain numeric/bool arrays: no object dtypes, no pickles. Ragged data = flat + offsets.

The root may be a local directory or any fsspec URL that zarr understands.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, BloscShuffle

from pipeline.errors import MissingUpstreamError

COMPLETE_ATTR = "complete"
FINGERPRINT_ATTR = "fingerprint"
_COMPRESSOR = BloscCodec(cname="zstd", clevel=3, shuffle=BloscShuffle.shuffle)


def fingerprint(stage: str, code_version: str, params: Mapping[str, Any], upstream: Mapping[str, str] | None = None) -> str:
    """Stable hash of everything that determines a stage's output for one object."""
    payload = json.dumps(
        {"stage": stage, "code": code_version, "params": params, "upstream": dict(sorted((upstream or {}).items()))},
        sort_keys=True,
        default=_json_default,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def local_name(object_id: str) -> str:
    """Group name of an object inside its category store: ``Chair/179`` -> ``179``."""
    return object_id.split("/", 1)[1] if "/" in object_id else object_id


def default_chunks(name: str, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """One view (or one box) per chunk for image-like arrays; whole array otherwise.

    Arrays of rank >= 3 are image stacks (V,H,W[,3]) or mask stacks (B,H,W): chunking along
    the first axis gives one chunk per view/box, never sub-view tiles (STACK §4).
    """
    if len(shape) >= 3 and shape[0] > 0:
        return (1, *shape[1:])
    return None


class CategoryStore:
    """The Zarr store ``<root>/<stage>/<category>.zarr`` of one stage and category."""

    def __init__(self, root: str | Path, stage: str, category: str):
        self.root = str(root)
        self.stage = stage
        self.category = category
        self.url = f"{self.root.rstrip('/')}/{stage}/{category}.zarr"
        self._group: zarr.Group | None = None

    # -- group access -------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        return "://" not in self.url

    def exists(self) -> bool:
        if self.is_local:
            return (Path(self.url) / "zarr.json").exists()
        try:
            zarr.open_group(self.url, mode="r")
            return True
        except Exception:  # noqa: BLE001 - any backend error means "not there"
            return False

    def group(self, writable: bool = False) -> zarr.Group:
        if writable:
            return zarr.open_group(self.url, mode="a")
        if self._group is None:
            if not self.exists():
                raise MissingUpstreamError(f"no {self.stage} cache for category {self.category} at {self.url}")
            self._group = zarr.open_group(self.url, mode="r")
        return self._group

    def _object_group(self, object_id: str) -> zarr.Group:
        name = local_name(object_id)
        try:
            return self.group()[name]  # type: ignore[return-value]
        except (KeyError, FileNotFoundError):
            raise MissingUpstreamError(
                f"stage {self.stage!r} has no result for this object (run `partstad {self.stage}` first)",
                object_id=object_id,
                path=f"{self.url}/{name}",
            ) from None

    # -- status -------------------------------------------------------------------
    def object_ids(self, complete_only: bool = True) -> list[str]:
        if not self.exists():
            return []
        self._group = None
        g = self.group()
        out = []
        for name, member in g.groups():
            if not complete_only or member.attrs.get(COMPLETE_ATTR, False):
                out.append(f"{self.category}/{name}")
        return sorted(out)

    def stored_fingerprint(self, object_id: str) -> str | None:
        """Fingerprint of a *complete* object, or None if missing/incomplete."""
        if not self.exists():
            return None
        try:
            g = zarr.open_group(self.url, mode="r")[local_name(object_id)]
        except (KeyError, FileNotFoundError):
            return None
        if not g.attrs.get(COMPLETE_ATTR, False):
            return None
        return g.attrs.get(FINGERPRINT_ATTR)

    def is_complete(self, object_id: str, expected_fingerprint: str | None = None) -> bool:
        fp = self.stored_fingerprint(object_id)
        return fp is not None and (expected_fingerprint is None or fp == expected_fingerprint)

    # -- write --------------------------------------------------------------------
    def write_object(
        self,
        object_id: str,
        arrays: Mapping[str, np.ndarray],
        attrs: Mapping[str, Any],
        fingerprint_value: str,
        chunks: Mapping[str, tuple[int, ...]] | None = None,
    ) -> None:
        """Delete any previous group of the object, write all arrays, then mark complete."""
        for key, arr in arrays.items():
            arr = np.asarray(arr)
            if arr.dtype == object:
                raise TypeError(f"array {key!r} of {object_id} has object dtype; use flat + offsets")
        self.delete_object(object_id)
        root = self.group(writable=True)
        g = root.create_group(local_name(object_id))
        for key, arr in arrays.items():
            arr = np.ascontiguousarray(arr)
            c = (chunks or {}).get(key) or default_chunks(key, arr.shape) or "auto"
            if arr.dtype == np.float64:
                arr = arr.astype(np.float32)
            za = g.create_array(key, shape=arr.shape, dtype=arr.dtype, chunks=c, compressors=_COMPRESSOR)
            if arr.size:
                za[...] = arr
        meta = json.loads(json.dumps(dict(attrs), default=_json_default))
        meta.update({FINGERPRINT_ATTR: fingerprint_value, "object_id": object_id})
        g.attrs.update(meta)
        g.attrs[COMPLETE_ATTR] = True  # written last: only a finished group is complete
        self._group = None

    def delete_object(self, object_id: str) -> None:
        name = local_name(object_id)
        if self.is_local:
            p = Path(self.url) / name
            if p.exists():
                shutil.rmtree(p)
        elif self.exists():
            root = self.group(writable=True)
            if name in root:
                del root[name]
        self._group = None

    # -- read ---------------------------------------------------------------------
    def attrs(self, object_id: str) -> dict[str, Any]:
        return dict(self._object_group(object_id).attrs)

    def read(self, object_id: str, name: str) -> np.ndarray:
        g = self._object_group(object_id)
        if name not in g:
            raise MissingUpstreamError(f"array {name!r} missing", object_id=object_id, path=f"{self.url}/{local_name(object_id)}")
        return g[name][...]

    def read_all(self, object_id: str, names: list[str] | None = None) -> dict[str, np.ndarray]:
        g = self._object_group(object_id)
        keys = names if names is not None else [k for k, _ in g.arrays()]
        return {k: self.read(object_id, k) for k in keys}

    def array(self, object_id: str, name: str) -> zarr.Array:
        """The stored zarr array itself: index it to read only the chunks you need."""
        g = self._object_group(object_id)
        if name not in g:
            raise MissingUpstreamError(f"array {name!r} missing", object_id=object_id, path=f"{self.url}/{local_name(object_id)}")
        return g[name]  # type: ignore[return-value]

    def lazy(self, object_id: str, name: str):
        """Dask array over one stored array (chunked like the store: one view per chunk)."""
        import dask.array as da

        g = self._object_group(object_id)
        return da.from_zarr(g[name])

    # -- side files (failures, manifest) -----------------------------------------
    def side_file(self, name: str) -> Path:
        if not self.is_local:
            raise NotImplementedError("side files need a local cache root")
        return Path(self.url) / name

    def write_json(self, name: str, payload: Any) -> Path:
        """Write a JSON side file by replace (never in place: DVC may have linked it)."""
        self.group(writable=True)
        path = self.side_file(name)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=2, default=_json_default))
        if path.exists():
            path.unlink()
        tmp.rename(path)
        return path

    def read_json(self, name: str, default: Any = None) -> Any:
        path = self.side_file(name)
        if not path.exists():
            return default
        return json.loads(path.read_text())
