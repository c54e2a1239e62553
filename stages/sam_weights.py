"""Which SAM checkpoint the segment stage uses, and its content digest.

``segment.sam_checkpoint`` is a local path or an official name (``sam_vit_b`` ...) resolved in
the torch hub checkpoints directory (stages/weights_resolve.py). The *content* digest of the
file (never its path) enters the segment cache keys (stages/common.py ``key_resolver``), so new
weights at the same path, e.g. a ``dvc pull`` of a ``dvc add``-ed checkpoint, recompute
segment and everything downstream. Shared by stages/segment.py, the key resolver and the
provenance record: a stage may not import another stage.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from stages.weights_resolve import ResolvedWeights, WeightsNotFound, resolve_sam_checkpoint

_DIGESTS: dict[tuple[str, int, int, int], str] = {}


def sam_weights(cfg: Any) -> ResolvedWeights | None:
    """The configured checkpoint resolved to a local file (None when unset).

    Raises :class:`WeightsNotFound` for a known name missing from the torch hub directory."""
    ck = cfg.segment.sam_checkpoint
    return resolve_sam_checkpoint(ck) if ck else None


def sam_path(cfg: Any) -> Path | None:
    """The checkpoint file, or the setting as a (missing) path when it does not resolve."""
    try:
        rw = sam_weights(cfg)
    except WeightsNotFound:
        return Path(cfg.segment.sam_checkpoint)
    return rw.path if rw else None


def file_digest(path: Path | None) -> str:
    """Content hash of one file (memoised per process on path, size, mtime, inode); ``"<missing>"``
    when there is no such file."""
    if path is None or not Path(path).is_file():
        return "<missing>"
    st = Path(path).stat()
    memo = (os.path.abspath(path), st.st_size, st.st_mtime_ns, st.st_ino)  # a replaced file: new inode
    if memo not in _DIGESTS:
        h = hashlib.sha256()
        with Path(path).open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[memo] = h.hexdigest()[:20]
    return _DIGESTS[memo]


def weights_key(cfg: Any) -> dict[str, Any]:
    """The segment-key entry of SAM (stages/backends/sam.py): the checkpoint's content digest."""
    return {"sam_weights": {"digest": file_digest(sam_path(cfg))}}


def weights_records(cfg: Any) -> list[dict[str, Any]]:
    """Provenance of the SAM checkpoint: setting, resolved path, source and digest ([] when unset)."""
    if not cfg.segment.sam_checkpoint:
        return []
    try:
        rw = sam_weights(cfg)
    except WeightsNotFound:
        rw = ResolvedWeights(cfg.segment.sam_checkpoint, Path(cfg.segment.sam_checkpoint), "missing")
    assert rw is not None
    return [
        {"role": f"SAM ({cfg.segment.sam_model_type})", "setting": "segment.sam_checkpoint", **rw.record(), "digest": file_digest(rw.path)}
    ]
