"""The training loop and checkpoint selection of PartSTAD (SPEC §7.9-7.10)."""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from pipeline.loss import riou_loss
from pipeline.model import NullLogit, WeightNet

from .decode import forward_object, labels_from_probs, sp_miou
from .objects import TrainObject


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
class TrainResult:
    """Selected weights (first epoch with the best validation mIoU, epoch 0 = untrained) and
    the training curve (epoch 0 first: the untrained state's loss and validation mIoU)."""

    state_dict: dict[str, torch.Tensor]
    theta_null: float
    curve: list[dict] = field(default_factory=list)  # {"epoch", "loss", "val_miou"}, epochs 0..E
    best_epoch: int = 0
    best_val_miou: float = float("nan")


def object_loss(net: WeightNet, z_null: torch.Tensor, obj: TrainObject, absent_parts: str = "paper") -> torch.Tensor:
    """L_obj of §7.8 for one prepared object (needs GT)."""
    if obj.gt is None:
        raise ValueError(f"object {obj.object_id or '?'} has no GT targets")
    return riou_loss(forward_object(net, z_null, obj), obj.gt, obj.n_s, obj.valid, absent_parts)


@torch.no_grad()
def validation_miou(weight_net: WeightNet, z_null: torch.Tensor | float, objs: Sequence[TrainObject]) -> float:
    """Mean over objects of the per-object mIoU (§7.10) with the thresholded labels."""
    vals = []
    for o in objs:
        if o.label_counts is None:
            raise ValueError(f"validation object {o.object_id or '?'} has no GT")
        P = forward_object(weight_net, z_null, o).cpu().numpy()
        lab = labels_from_probs(P, o.valid.cpu().numpy(), o.small_flags)
        vals.append(sp_miou(lab, o.label_counts))
    vals = [v for v in vals if not math.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


def train_weight_net(
    train_objs: Sequence[TrainObject],
    val_objs: Sequence[TrainObject],
    params: TrainParams | None = None,
    progress: Callable[[dict], None] | None = None,
    init: tuple[dict[str, torch.Tensor], float] | None = None,
) -> TrainResult:
    """Train the weight network and θ_null (§7.9) and select the first best epoch (§7.10).

    Selection includes the untrained state (epoch 0: w ≈ τ for every box, θ_null = τ, i.e. an
    unweighted mask vote): a later epoch is kept only if it is strictly better on validation,
    so training that does not generalise to the validation shapes cannot make the selected
    model worse there than the untrained one (the official code starts at epoch 1).
    Without validation objects (or when every validation score is NaN) the curve's
    ``val_miou`` is NaN and the last epoch is kept.
    ``progress`` is called with each curve entry (epoch 0 included).
    ``init`` = (state_dict, θ_null) starts from given weights instead of the seeded
    initialisation (fine-tuning, e.g. a network shared across categories); epoch 0 is then
    that starting point.
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
        if init is not None:
            net.load_state_dict({k: v.to(p.device) for k, v in init[0].items()})
            with torch.no_grad():
                null.theta.fill_(float(init[1]))
        opt = torch.optim.AdamW(net.parameters(), lr=p.lr, weight_decay=p.weight_decay)
        opt_null = torch.optim.AdamW(null.parameters(), lr=p.lr_null, weight_decay=p.weight_decay)
        n = len(train_objs)
        curve: list[dict] = []
        best_val, best_epoch = -math.inf, 0
        best_state = {k: v.detach().clone().cpu() for k, v in copy.deepcopy(net.state_dict()).items()}
        best_theta = float(null.theta.detach())
        with torch.no_grad():  # epoch 0: the untrained state is a candidate checkpoint
            loss0 = float(torch.stack([object_loss(net, null(), o, p.absent_parts) for o in train_objs]).mean())
        val0 = validation_miou(net, null().detach(), val_objs) if val_objs else float("nan")
        curve.append({"epoch": 0, "loss": loss0, "val_miou": val0})
        if progress is not None:
            progress(curve[-1])
        if val_objs and not math.isnan(val0):
            best_val = val0
        selected = not math.isnan(val0) and bool(val_objs)
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
            if improved or (epoch == p.epochs and not selected):  # no usable validation: last epoch
                selected = True
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
