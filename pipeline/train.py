"""Training, inference and label decoding of PartSTAD (SPEC §7.9-7.11).

Everything that does not depend on the network weights is prepared once per object in
a :class:`TrainObject` (network inputs, the compressed score index of
:mod:`pipeline.score`, targets), so a training step is: WeightNet forward, one gather,
one scatter-amax, one index_add, a softmax and the relaxed-IoU loss.

Ablations:
* "masks without weights": :func:`masks_without_weights` (w ≡ 1 on mask membership, so
  Z[:, 1:] is a PartSLIP-style coverage fraction, decoded with the PartSLIP rule at 0.5).
* "weights without masks": build the TrainObjects from a box-mode lifting
  (``lift_object(..., mode="box", min_visible=1)``) and train as usual.
"""
from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from pipeline.lift import LiftedObject, gt_fractions
from pipeline.loss import riou_loss
from pipeline.model import NullLogit, WeightNet, z_null_value
from pipeline.partslip import threshold_labels
from pipeline.posenc import box_inputs
from pipeline.score import ScoreIndex, probabilities, scores_from_index

PROB_THRESH = 0.5 - 1e-4


@dataclass
class TrainParams:
    """Hyper-parameters of §7.9 (defaults = the official `run_partstad.py`)."""

    epochs: int = 400
    """Number of epochs (numbered 1..epochs); validation after each one."""
    batch: int = 2
    """Objects per optimisation step; the batch loss is the mean of the per-object losses."""
    lr: float = 1e-4
    """AdamW learning rate of the weight network."""
    lr_null: float = 0.05
    """AdamW learning rate of the null logit θ_null (separate optimiser)."""
    weight_decay: float = 0.01
    """Decoupled weight decay of both optimisers (θ_null included, as in the official code)."""
    tau: float = 10.0
    """τ: the weight offset w = ReLU(τ + o) and the initial θ_null."""
    seed: int = 0
    """Seed of the network initialisation and of the epoch shuffles."""
    pos_enc: bool = True
    """Concatenate the 147-D positional encoding of the box query to the detector feature."""
    device: str = "cpu"
    """Torch device for training ("cpu", "cuda", ...)."""
    eps: float = 1e-5
    """Epsilon added to the std in the context normalisation (fixes §11.5)."""
    absent_parts: str = "paper"
    """Loss handling of parts absent from an object's GT: "paper" (constant 1/K) or "skip"."""
    threads: int = 1
    """torch CPU threads during training (the ops are tiny: one thread is fastest)."""


@dataclass
class TrainObject:
    """One object prepared for training / inference (all torch tensors on one device)."""

    x: torch.Tensor  #: (B, C) float32 network input [feat ‖ γ(q)]
    index: ScoreIndex  #: compressed membership for §7.7
    n_s: torch.Tensor  #: (S,) float32 superpoint sizes
    valid: torch.Tensor  #: (S,) bool validity (§7.2)
    gt: torch.Tensor | None  #: (S, K+1) float32 targets (§7.3), None without GT
    label_counts: np.ndarray | None  #: (S, K+1) int64 GT point counts (col 0 = -1), for mIoU
    small_flags: np.ndarray  #: (K,) bool small-part priority flags (§6.2)
    n_parts: int
    object_id: str = ""

    @classmethod
    def from_lifted(
        cls,
        lifted: LiftedObject,
        feat: np.ndarray,
        view_dirs: np.ndarray,
        xyxy: np.ndarray,
        H: int,
        W: int,
        pos_enc: bool = True,
        sem: np.ndarray | None = None,
        small_part_flags: Sequence[bool] | None = None,
        device: str | torch.device = "cpu",
        object_id: str = "",
    ) -> "TrainObject":
        """Prepare an object; ``sem`` (N,) gives targets and validation counts."""
        K = lifted.n_parts
        x = box_inputs(feat, view_dirs, xyxy, lifted.box_view, H, W, pos_enc)
        index = ScoreIndex.from_lifted(lifted, device).to(torch.float32)
        counts = None
        gt = lifted.gt
        if sem is not None:
            sem = np.asarray(sem).astype(np.int64)
            K1 = K + 1
            counts = np.bincount(
                lifted.sp.astype(np.int64) * K1 + sem + 1, minlength=lifted.n_sp * K1
            ).reshape(lifted.n_sp, K1)
            if gt is None:
                gt = gt_fractions(lifted.sp, sem, lifted.n_sp, K)
        small = np.zeros(K, bool) if small_part_flags is None else np.asarray(small_part_flags, bool)
        return cls(
            x=torch.as_tensor(x, dtype=torch.float32, device=device),
            index=index,
            n_s=torch.as_tensor(lifted.sp_size, dtype=torch.float32, device=device),
            valid=torch.as_tensor(lifted.valid, dtype=torch.bool, device=device),
            gt=None if gt is None else torch.as_tensor(gt, dtype=torch.float32, device=device),
            label_counts=counts,
            small_flags=small,
            n_parts=K,
            object_id=object_id,
        )


@dataclass
class TrainResult:
    """Selected weights (first epoch with the best validation mIoU) and the training curve."""

    state_dict: dict[str, torch.Tensor]
    theta_null: float
    curve: list[dict] = field(default_factory=list)  # {"epoch", "loss", "val_miou"}
    best_epoch: int = 0
    best_val_miou: float = float("nan")


def forward_object(net: WeightNet, z_null: torch.Tensor | float, obj: TrainObject) -> torch.Tensor:
    """P (S, K+1) probabilities of one prepared object."""
    w = net(obj.x)
    return probabilities(scores_from_index(w, obj.index, z_null))


def object_loss(net: WeightNet, z_null: torch.Tensor, obj: TrainObject, absent_parts: str = "paper") -> torch.Tensor:
    """L_obj of §7.8 for one prepared object (needs GT)."""
    if obj.gt is None:
        raise ValueError(f"object {obj.object_id or '?'} has no GT targets")
    return riou_loss(forward_object(net, z_null, obj), obj.gt, obj.n_s, obj.valid, absent_parts)


def labels_from_probs(
    P: np.ndarray, valid: np.ndarray, small_part_flags: Sequence[bool], thresh: float = PROB_THRESH
) -> np.ndarray:
    """(S,) int32 labels by §7.11: invalid → −1; threshold on P[:, 1:] with the small-part rule."""
    P = np.asarray(P, dtype=np.float64)
    lab = threshold_labels(P[:, 1:], small_part_flags, thresh)
    return np.where(np.asarray(valid, bool), lab, -1).astype(np.int32)


def labels_without_threshold(P: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(S,) int32 "w/o threshold" decoding (§7.11): argmax over K+1, ties to the higher index."""
    P = np.asarray(P, dtype=np.float64)
    K1 = P.shape[1]
    idx = K1 - 1 - np.argmax(P[:, ::-1], axis=1)
    return np.where(np.asarray(valid, bool), idx - 1, -1).astype(np.int32)


def _sp_miou(labels_sp: np.ndarray, counts: np.ndarray) -> float:
    """Per-object mIoU (§7.10) from superpoint labels and per-superpoint GT label counts.

    Equal to the point-level IoU since all points of a superpoint share its label.
    """
    K = counts.shape[1] - 1
    gt_tot = counts[:, 1:].sum(0)
    present = gt_tot > 0
    if not present.any():
        return float("nan")
    lab = np.asarray(labels_sp, np.int64)
    hit = lab >= 0
    size = counts.sum(1)
    pred_tot = np.bincount(lab[hit], weights=size[hit], minlength=K)
    inter = np.bincount(lab[hit], weights=counts[np.flatnonzero(hit), lab[hit] + 1], minlength=K)
    iou = inter / (gt_tot + pred_tot - inter).clip(min=1)
    return float(iou[present].mean())


@torch.no_grad()
def predict(weight_net: WeightNet, theta_null: float | torch.Tensor, obj: TrainObject) -> np.ndarray:
    """P (S, K+1) float32 numpy probabilities of one object with a trained network."""
    was_training = weight_net.training
    weight_net.eval()
    zn = theta_null if isinstance(theta_null, torch.Tensor) else z_null_value(theta_null)
    P = forward_object(weight_net, zn, obj).cpu().numpy()
    weight_net.train(was_training)
    return P.astype(np.float32)


@torch.no_grad()
def validation_miou(weight_net: WeightNet, z_null: torch.Tensor | float, objs: Sequence[TrainObject]) -> float:
    """Mean over objects of the per-object mIoU (§7.10) with the thresholded labels."""
    vals = []
    for o in objs:
        if o.label_counts is None:
            raise ValueError(f"validation object {o.object_id or '?'} has no GT")
        P = forward_object(weight_net, z_null, o).cpu().numpy()
        lab = labels_from_probs(P, o.valid.cpu().numpy(), o.small_flags)
        vals.append(_sp_miou(lab, o.label_counts))
    vals = [v for v in vals if not math.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


def train_weight_net(
    train_objs: Sequence[TrainObject],
    val_objs: Sequence[TrainObject],
    params: TrainParams | None = None,
    progress: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train the weight network and θ_null (§7.9) and select the first best epoch (§7.10).

    Without validation objects (or when every validation score is NaN) the curve's
    ``val_miou`` is NaN and the last epoch is kept.
    ``progress`` is called with each curve entry.
    """
    p = params or TrainParams()
    if not train_objs:
        raise ValueError("no training objects")
    old_threads = torch.get_num_threads()
    if p.threads:
        torch.set_num_threads(p.threads)
    try:
        torch.manual_seed(p.seed)
        rng = np.random.default_rng(p.seed)
        in_dim = int(train_objs[0].x.shape[1])
        net = WeightNet(in_dim, tau=p.tau, eps=p.eps).to(p.device)
        null = NullLogit(init=p.tau).to(p.device)
        opt = torch.optim.AdamW(net.parameters(), lr=p.lr, weight_decay=p.weight_decay)
        opt_null = torch.optim.AdamW(null.parameters(), lr=p.lr_null, weight_decay=p.weight_decay)
        n = len(train_objs)
        curve: list[dict] = []
        best_val, best_epoch = -math.inf, 0
        best_state = copy.deepcopy(net.state_dict())
        best_theta = float(null.theta.detach())
        for epoch in range(1, p.epochs + 1):
            perm = rng.permutation(n)
            losses = []
            for i in range(0, n, p.batch):
                batch = [train_objs[k] for k in perm[i : i + p.batch]]
                opt.zero_grad(set_to_none=True)
                opt_null.zero_grad(set_to_none=True)
                zn = null()
                loss = torch.stack([object_loss(net, zn, o, p.absent_parts) for o in batch]).mean()
                loss.backward()
                opt.step()
                opt_null.step()
                losses.append(float(loss.detach()))
            val = validation_miou(net, null().detach(), val_objs) if val_objs else float("nan")
            entry = {"epoch": epoch, "loss": float(np.mean(losses)), "val_miou": val}
            curve.append(entry)
            if progress is not None:
                progress(entry)
            improved = bool(val_objs) and not math.isnan(val) and val > best_val
            if improved or (epoch == p.epochs and best_epoch == 0):  # no usable validation: last epoch
                best_val, best_epoch = val, epoch
                best_state = {k: v.detach().clone().cpu() for k, v in net.state_dict().items()}
                best_theta = float(null.theta.detach())
        return TrainResult(
            state_dict={k: v.cpu() for k, v in best_state.items()},
            theta_null=best_theta,
            curve=curve,
            best_epoch=best_epoch,
            best_val_miou=float(best_val) if val_objs and best_val > -math.inf else float("nan"),
        )
    finally:
        torch.set_num_threads(old_threads)


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


# ------------------------------------------------------------------------------ ablations
def unweighted_coverage(lifted: LiftedObject) -> np.ndarray:
    """(S, K) float64 Z[:, 1:] of §7.7 with w ≡ 1: the mask-coverage fraction per part."""
    index = ScoreIndex.from_lifted(lifted)
    w = torch.ones(lifted.n_boxes, dtype=torch.float64)
    return scores_from_index(w, index, 0.0)[:, 1:].numpy()


def masks_without_weights(
    lifted: LiftedObject, small_part_flags: Sequence[bool], thresh: float = 0.5
) -> np.ndarray:
    """(S,) int32 labels of the "masks without weights" ablation (PartSLIP rule on coverage)."""
    lab = threshold_labels(unweighted_coverage(lifted), small_part_flags, thresh)
    return np.where(lifted.valid, lab, -1).astype(np.int32)
