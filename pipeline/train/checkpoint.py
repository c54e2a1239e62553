"""Weights on disk: safetensors tensors + string metadata (no pickles, ever).

Files are byte-identical for identical tensors and metadata: safetensors writes its
``__metadata__`` from a Rust HashMap (a different key order in every process), which would
change the file, evaluate's up-to-date keys and DVC's hashes on every retrain. The header is
therefore rewritten canonically (sorted keys, compact JSON) before the file is written.
"""

from __future__ import annotations

import json
import math
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


class WeightsFileError(ValueError):
    """A weights file that cannot be used (not safetensors, missing or non-finite tensors,
    malformed metadata). The message names the file: it is a user's side file, not an object."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


#: The tensors :func:`save_weights` writes (a WeightNet and θ_null); anything else is refused.
TENSOR_NAMES = frozenset({"cn.weight", "cn.bias", "out.weight", "out.bias", "theta_null"})
#: Metadata holding one number each; they must parse as finite floats (``eps`` also > 0).
NUMBER_KEYS = ("tau", "eps", "masks_only_threshold")
#: Metadata holding JSON: ``config`` an object, ``part_names`` a list of strings.
JSON_KEYS = {"config": dict, "part_names": list}


def _finite_number(path: str | Path, meta: dict[str, str], key: str) -> float | None:
    if key not in meta:
        return None
    try:
        value = float(meta[key])
    except (TypeError, ValueError):
        raise WeightsFileError(path, f"metadata {key!r} is {meta[key]!r}, not a number") from None
    if not math.isfinite(value):
        raise WeightsFileError(path, f"metadata {key!r} is {meta[key]!r}, not a finite number")
    if key == "eps" and value <= 0:
        raise WeightsFileError(path, f"metadata 'eps' is {meta[key]!r}; it must be > 0")
    return value


def check_metadata(path: str | Path, meta: dict[str, str]) -> None:
    """Every number finite, every JSON entry parseable and of its type, ``pos_enc`` a bool word.

    Why: a NaN τ or threshold loads silently and turns every prediction into "no part";
    a garbage ``config`` used to surface as a traceback deep inside evaluate."""
    for key in NUMBER_KEYS:
        _finite_number(path, meta, key)
    if "pos_enc" in meta and meta["pos_enc"] not in ("True", "False"):
        raise WeightsFileError(path, f"metadata 'pos_enc' is {meta['pos_enc']!r}, not True or False")
    for key, kind in JSON_KEYS.items():
        if key not in meta:
            continue
        try:
            value = json.loads(meta[key])
        except ValueError:
            raise WeightsFileError(path, f"metadata {key!r} is not JSON ({meta[key][:40]!r})") from None
        if not isinstance(value, kind) or (kind is list and not all(isinstance(v, str) for v in value)):
            want = "a JSON object" if kind is dict else "a JSON list of strings"
            raise WeightsFileError(path, f"metadata {key!r} is not {want}")


def check_tensors(path: str | Path, tensors: dict[str, torch.Tensor]) -> None:
    """Exactly the tensors of a WeightNet + θ_null, floating point, consistently shaped, finite."""
    names = set(tensors)
    if names != TENSOR_NAMES:
        missing, extra = sorted(TENSOR_NAMES - names), sorted(names - TENSOR_NAMES)
        raise WeightsFileError(
            path,
            "not a PartSTAD weights file ("
            + "; ".join(
                x for x in (f"missing {', '.join(missing)}" if missing else "", f"unexpected {', '.join(extra[:5])}" if extra else "") if x
            )
            + ")",
        )
    for name in sorted(names):
        t = tensors[name]
        if not t.is_floating_point():
            raise WeightsFileError(path, f"tensor {name!r} has dtype {t.dtype}, not floating point")
        bad = int((~torch.isfinite(t)).sum())
        if bad:
            raise WeightsFileError(path, f"tensor {name!r} holds {bad} non-finite value(s) (NaN/inf)")
    c = tensors["cn.weight"].shape
    shapes = {
        "cn.weight": (c[0], c[0]) if len(c) == 2 else None,
        "cn.bias": (c[0],) if c else None,
        "out.weight": (1, c[0]) if c else None,
        "out.bias": (1,),
        "theta_null": (1,),
    }
    for name, want in shapes.items():
        if want is None or tuple(tensors[name].shape) != want or want[0] == 0:
            raise WeightsFileError(
                path,
                f"tensor {name!r} has shape {tuple(tensors[name].shape)}, expected {want} for a "
                f"network of input width {c[-1] if c else '?'}",
            )


def load_weights(path: str | Path, tau: float | None = None, eps: float | None = None) -> tuple[WeightNet, float, dict[str, str]]:
    """Read a file written by :func:`save_weights` → (network, θ_null, metadata).

    τ and ε come from the file's metadata (``tau``/``eps``, as saved by training) unless
    given; files without them get the paper's values. Every tensor and number is checked
    finite and every metadata entry typed (:class:`WeightsFileError` names the file)."""
    from safetensors import safe_open

    try:  # safetensors only: a pickle (or any other file) is refused, never executed
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except FileNotFoundError:
        raise WeightsFileError(path, "file not found") from None
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for a bad file
        raise WeightsFileError(path, f"not a safetensors weights file ({type(exc).__name__}: {exc})") from None
    check_tensors(path, tensors)
    check_metadata(path, meta)
    theta = float(tensors.pop("theta_null")[0])
    tau = _finite_number(path, meta, "tau") if tau is None else tau
    eps = _finite_number(path, meta, "eps") if eps is None else eps
    net = WeightNet.from_state_dict(tensors, tau=10.0 if tau is None else tau, eps=1e-5 if eps is None else eps)
    return net, theta, meta
