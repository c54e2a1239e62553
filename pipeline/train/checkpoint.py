"""Weights on disk: safetensors tensors + string metadata (no pickles, ever)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from pipeline.model import WeightNet

from .loop import TrainResult


def load_net(result: TrainResult, tau: float = 10.0, eps: float = 1e-5) -> WeightNet:
    """WeightNet holding the selected weights of a :class:`TrainResult`."""
    return WeightNet.from_state_dict(result.state_dict, tau=tau, eps=eps)


def save_weights(path: str | Path, result: TrainResult, metadata: dict[str, str] | None = None) -> None:
    """Write the selected weights and θ_null to a safetensors file (no pickles)."""
    from safetensors.torch import save_file

    tensors = {k: v.contiguous() for k, v in result.state_dict.items()}
    tensors["theta_null"] = torch.tensor([result.theta_null], dtype=torch.float32)
    meta = {"best_epoch": str(result.best_epoch), "best_val_miou": json.dumps(result.best_val_miou)}
    meta.update(metadata or {})
    save_file(tensors, str(path), metadata=meta)


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
