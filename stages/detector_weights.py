"""Which Grounding DINO weights the detect stage uses for a category, and their content digest.

`partstad adapt-detector` writes ``<adapt.out_dir>/<Category>/`` (a ``save_pretrained``
directory); with ``adapt.enabled`` the detect stage uses it for that category, else (or
when none was written yet) the base ``detect.weights_dir``. The *content* digest of the
weights in use enters the detect cache keys (stages/common.py ``key_resolver``), so a
re-adaptation, or new base weights at the same path, recomputes detect (and downstream).
Shared by stages/detect.py, stages/adapt_detector.py and the key resolver: a stage may not
import another stage.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("partstad")

#: Files of a model directory that decide its outputs (weights, config, tokenizer, processor).
_DIGEST_SUFFIXES = (".json", ".safetensors", ".txt", ".model")
#: Written by a skipped adaptation (adapt.enabled false); such a directory holds no model.
SKIPPED_MARKER = "SKIPPED.json"
_DIGESTS: dict[tuple[str, tuple[tuple[str, int, int], ...]], str] = {}


def adapted_dir(cfg: Any, category: str) -> Path:
    """Where `partstad adapt-detector` puts the adapted model of ``category``."""
    return Path(cfg.adapt.out_dir) / category


def has_adapted_model(cfg: Any, category: str) -> bool:
    """An adapted model directory exists for ``category`` (it may still be incomplete: the
    loader then names the missing file)."""
    d = adapted_dir(cfg, category)
    return d.is_dir() and any((d / n).exists() for n in ("config.json", "model.safetensors", "model.safetensors.index.json"))


def detector_weights(cfg: Any, category: str) -> tuple[Path | None, bool]:
    """(weights directory detect uses for ``category``, whether it is the adapted one)."""
    if cfg.adapt.enabled and has_adapted_model(cfg, category):
        return adapted_dir(cfg, category), True
    wd = cfg.detect.weights_dir
    return (Path(wd) if wd else None), False


def dir_digest(path: Path | None) -> str:
    """Content hash of a model directory's files (names relative to it; memoised per
    process on (path, sizes, mtimes)); ``"<missing>"`` for no directory."""
    if path is None or not Path(path).is_dir():
        return "<missing>"
    files = sorted(p for p in Path(path).iterdir() if p.is_file() and p.name.endswith(_DIGEST_SUFFIXES) and p.name != SKIPPED_MARKER)
    stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
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
    """The detect-key entry for the weights in use ({} for backends without weights)."""
    if cfg.detect.backend != "grounding_dino":
        return {}
    path, adapted = detector_weights(cfg, category)
    return {"detector_weights": {"adapted": adapted, "digest": dir_digest(path)}}
