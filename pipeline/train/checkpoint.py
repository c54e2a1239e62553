"""Weights on disk: safetensors tensors + string metadata (no pickles, ever).

Files are byte-identical for identical tensors and metadata: safetensors writes its
``__metadata__`` from a Rust HashMap (a different key order in every process), which would
change the file, evaluate's up-to-date keys and DVC's hashes on every retrain. The header is
therefore rewritten canonically (sorted keys, compact JSON) before the file is written.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from pipeline.model import WeightNet

from .loop import TrainResult


def load_net(result: TrainResult, tau: float = 10.0, eps: float = 1e-5) -> WeightNet:
    """WeightNet holding the selected weights of a :class:`TrainResult`."""
    return WeightNet.from_state_dict(result.state_dict, tau=tau, eps=eps)


def canonical_safetensors(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """safetensors bytes that depend only on the tensors' names/values and the metadata's
    items (not on dict insertion order, nor on the process): sorted, compact JSON header."""
    from safetensors.torch import save

    raw = save({k: tensors[k].contiguous() for k in sorted(tensors)}, metadata=metadata)
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data section stays 8-byte aligned, as safetensors pads it
    return len(text).to_bytes(8, "little") + text + raw[8 + n :]


def save_weights(path: str | Path, result: TrainResult, metadata: dict[str, str] | None = None) -> None:
    """Write the selected weights and θ_null to a safetensors file (no pickles), byte-identical
    for identical tensors and metadata; written beside ``path`` and renamed into place."""
    tensors = {k: v.detach().cpu() for k, v in result.state_dict.items()}
    tensors["theta_null"] = torch.tensor([result.theta_null], dtype=torch.float32)
    meta = {"best_epoch": str(result.best_epoch), "best_val_miou": json.dumps(result.best_val_miou)}
    meta.update(metadata or {})
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(canonical_safetensors(tensors, meta))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_weights(path: str | Path, tau: float | None = None, eps: float | None = None) -> tuple[WeightNet, float, dict[str, str]]:
    """Read a file written by :func:`save_weights` → (network, θ_null, metadata).

    τ and ε come from the file's metadata (``tau``/``eps``, as saved by training) unless
    given; files without them get the paper's values.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    theta = float(tensors.pop("theta_null")[0])
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata() or {})
    tau = float(meta.get("tau", 10.0)) if tau is None else tau
    eps = float(meta.get("eps", 1e-5)) if eps is None else eps
    return WeightNet.from_state_dict(tensors, tau=tau, eps=eps), theta, meta
