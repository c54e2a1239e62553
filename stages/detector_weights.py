"""Which Grounding DINO weights the detect stage uses for a category, and their content digest.

`partstad adapt-detector` writes ``<adapt.out_dir>/<Category>/`` (a ``save_pretrained``
directory); with ``adapt.enabled`` the detect stage uses it for that category, else (or
when none was written yet) the base ``detect.weights_dir`` (a local directory or a Hugging
Face model id resolved in the local cache, stages/weights_resolve.py). The *content* digest of
the weights in use (never their path) enters the detect cache keys (stages/common.py ``key_resolver``), so a
re-adaptation, or new base weights at the same path, recomputes detect (and downstream).
The Grounding DINO registry entry (stages/backends/grounding_dino.py) hands these to the key and provenance.
Shared by the detector backend and stages/adapt_detector.py: a stage may not
import another stage.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from stages.weights_resolve import ResolvedWeights, WeightsNotFound, resolve_detector_dir

log = logging.getLogger("partstad")

#: Files of a model directory that decide its outputs (weights, config, tokenizer, processor).
_DIGEST_SUFFIXES = (".json", ".safetensors", ".txt", ".model")
#: Written by a skipped adaptation (adapt.enabled false); such a directory holds no model.
SKIPPED_MARKER = "SKIPPED.json"
_DIGESTS: dict[tuple[str, tuple[tuple[str, int, int, int], ...]], str] = {}


def adapted_dir(cfg: Any, category: str) -> Path:
    """Where `partstad adapt-detector` puts the adapted model of ``category``."""
    return Path(cfg.adapt.out_dir) / category


def has_adapted_model(cfg: Any, category: str) -> bool:
    """An adapted model directory exists for ``category`` (it may still be incomplete: the
    loader then names the missing file)."""
    d = adapted_dir(cfg, category)
    return d.is_dir() and any((d / n).exists() for n in ("config.json", "model.safetensors", "model.safetensors.index.json"))


def base_weights(cfg: Any, setting: str = "detect.weights_dir") -> ResolvedWeights | None:
    """The base Grounding DINO (``detect.weights_dir``, or ``adapt.base_weights_dir`` when
    ``setting`` names it) resolved to a local directory; None when unset.

    Raises :class:`WeightsNotFound` for a hub id missing from the local cache (stages turn it
    into exit 2 in their preflight)."""
    spec = cfg.adapt.base_weights_dir if setting == "adapt.base_weights_dir" else cfg.detect.weights_dir
    return resolve_detector_dir(spec, setting) if spec else None


def _base_path(cfg: Any) -> Path | None:
    """The base directory, or the setting as a (missing) path when it does not resolve: its
    digest is then ``<missing>`` and the preflight has already refused the run."""
    try:
        rw = base_weights(cfg)
    except WeightsNotFound:
        return Path(cfg.detect.weights_dir)
    return rw.path if rw else None


def detector_weights(cfg: Any, category: str) -> tuple[Path | None, bool]:
    """(weights directory detect uses for ``category``, whether it is the adapted one)."""
    if cfg.adapt.enabled and has_adapted_model(cfg, category):
        return adapted_dir(cfg, category), True
    return _base_path(cfg), False


def dir_digest(path: Path | None) -> str:
    """Content hash of a model directory's files (names relative to it; memoised per
    process on (path, sizes, mtimes, inodes)); ``"<missing>"`` for no directory."""
    if path is None or not Path(path).is_dir():
        return "<missing>"
    files = sorted(p for p in Path(path).iterdir() if p.is_file() and p.name.endswith(_DIGEST_SUFFIXES) and p.name != SKIPPED_MARKER)
    stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns, p.stat().st_ino) for p in files)  # a replaced file: new inode
    memo = (os.path.abspath(path), stamp)
    if memo not in _DIGESTS:
        h = hashlib.sha256()
        for p in files:
            h.update(p.name.encode() + b"\0")
            with p.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            h.update(b"\0")
        _DIGESTS[memo] = h.hexdigest()[:20]
    return _DIGESTS[memo]


def weights_key(cfg: Any, category: str) -> dict[str, Any]:
    """The detect-key entry of Grounding DINO (stages/backends/grounding_dino.py): adapted or base,
    and the weights' content digest."""
    path, adapted = detector_weights(cfg, category)
    return {"detector_weights": {"adapted": adapted, "digest": dir_digest(path)}}


def weights_records(cfg: Any, categories: list[str] | None = None) -> list[dict[str, Any]]:
    """Provenance of the Grounding DINO weights detect uses: the base directory and, with
    ``adapt.enabled``, the adapted model of each category (default: those of params) that
    has one, each with its path and content digest (the adapted ones also name the digest of
    the base they were trained from, read from their ``adapt.json``)."""
    out: list[dict[str, Any]] = []
    try:
        rw = base_weights(cfg)
    except WeightsNotFound:
        rw = ResolvedWeights(cfg.detect.weights_dir, Path(cfg.detect.weights_dir), "missing")
    if rw is not None:
        out.append({"role": "detector", "setting": "detect.weights_dir", **rw.record(), "digest": dir_digest(rw.path)})
    if cfg.adapt.enabled:
        for cat in categories if categories is not None else list(cfg.categories):
            if not has_adapted_model(cfg, cat):
                continue
            d = adapted_dir(cfg, cat)
            rec: dict[str, Any] = {
                "role": f"adapted detector ({cat})",
                "setting": "adapt.out_dir",
                "spec": str(d),
                "path": str(d),
                "source": "local",
                "revision": None,
                "digest": dir_digest(d),
            }
            try:
                rec["base_digest"] = json.loads((d / "adapt.json").read_text()).get("base_weights_digest")
            except (OSError, ValueError):
                rec["base_digest"] = None
            out.append(rec)
    return out
