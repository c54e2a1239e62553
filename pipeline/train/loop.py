"""The training loop and checkpoint selection of PartSTAD (SPEC §7.9-7.10).

Each optimisation step stacks the objects of its mini-batch and each validation stacks all
validation shapes (:mod:`pipeline.train.stack`): one forward pass per step instead of one
per object, the same mini-batches, order, optimiser steps and selection as a per-object loop
(``tests/oracle_train.py`` keeps that loop). Each step agrees with it to float rounding; over
hundreds of steps Adam amplifies rounding (a near-zero gradient component is normalised into
a whole step), so long runs agree in their curves and best validation mIoU, not always in the
selected epoch: the per-object loop itself selects another epoch under another valid BLAS
code path (``MKL_CBWR=COMPATIBLE``: Chair 204 → 206, Table 344 → 398 on the demo).
Training is deterministic (same seed, same bits); under the portable kernels that ``partstad
train`` pins, 1 and 2 threads differ in the last bits (MKL's reproducible GEMM splits its sums
by thread), which is why :attr:`TrainParams.threads` fixes the count.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from pipeline.loss import AbsentParts, riou_loss
from pipeline.model import NullLogit, WeightNet

from .adamw import NumpyAdamW
from .decode import forward_object
from .objects import TrainObject
from .params import TrainParams  # re-exported: callers import it from the loop
from .stack import ObjectStack, stacked_losses, stacked_mious, stacks_by_parts


@dataclass
class TrainResult:
    """Selected weights (first epoch with the best validation mIoU, epoch 0 = untrained) and
    the training curve (epoch 0 first: the untrained state's loss and validation mIoU)."""

    state_dict: dict[str, torch.Tensor]
    theta_null: float
    curve: list[dict] = field(default_factory=list)  # {"epoch", "loss", "val_miou"}, epochs 0..E
    best_epoch: int = 0
    best_val_miou: float = float("nan")


class NonFiniteTraining(FloatingPointError):
    """Training produced a non-finite loss or non-finite weights: no epoch from here on can be
    trusted, and a NaN validation score would silently select an earlier state, so training
    stops. ``epoch`` is where it happened (0 = the starting state)."""

    def __init__(self, epoch: int, what: str):
        super().__init__(f"non-finite training at epoch {epoch}: {what}")
        self.epoch, self.what = epoch, what


def _check_loss(value: float, epoch: int, where: str) -> None:
    if not math.isfinite(value):
        raise NonFiniteTraining(epoch, f"the loss is {value} ({where})")


def _check_weights(net: WeightNet, null: NullLogit, epoch: int) -> None:
    """Raise if a parameter holds nan/inf (only reads them). A non-finite gradient lands here
    too: AdamW turns it into nan weights in the same step."""
    for name, t in [*net.named_parameters(), ("theta_null", null.theta)]:
        if not bool(torch.isfinite(t.detach()).all()):
            raise NonFiniteTraining(epoch, f"the weight {name} holds nan or inf values")


def object_loss(net: WeightNet, z_null: torch.Tensor, obj: TrainObject, absent_parts: AbsentParts = "paper") -> torch.Tensor:
    """L_obj of §7.8 for one prepared object (needs GT)."""
    if obj.gt is None:
        raise ValueError(f"object {obj.object_id or '?'} has no GT targets")
    return riou_loss(forward_object(net, z_null, obj), obj.gt, obj.n_s, obj.valid, absent_parts)


def validation_score(mious: np.ndarray) -> float:
    """Mean of the per-object mIoUs that are not NaN (NaN when none is)."""
    vals = [float(v) for v in mious if not math.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


@torch.no_grad()
def validation_miou(weight_net: WeightNet, z_null: torch.Tensor | float, objs: Sequence[TrainObject]) -> float:
    """Mean over objects of the per-object mIoU (§7.10) with the thresholded labels."""
    _check_labelled(objs)
    return validation_score(stacked_mious(weight_net, z_null, stacks_by_parts(objs))) if objs else float("nan")


def _check_labelled(objs: Sequence[TrainObject]) -> None:
    for o in objs:
        if o.label_counts is None:
            raise ValueError(f"validation object {o.object_id or '?'} has no GT")


def _check_targets(objs: Sequence[TrainObject]) -> None:
    for o in objs:
        if o.gt is None:
            raise ValueError(f"object {o.object_id or '?'} has no GT targets")


def _adamw(net: WeightNet, null: NullLogit, p: TrainParams) -> torch.optim.Optimizer | NumpyAdamW:
    """One AdamW over both parameter sets, each with its own learning rate (the update of the
    official code's two optimisers): on CPU :class:`NumpyAdamW` (torch's own update costs as
    much as the rest of a step under the portable kernels), elsewhere torch's fused one."""
    if torch.device(p.device).type == "cpu":
        return NumpyAdamW([(list(net.parameters()), p.lr), (list(null.parameters()), p.lr_null)], weight_decay=p.weight_decay)
    groups = [{"params": list(net.parameters()), "lr": p.lr}, {"params": list(null.parameters()), "lr": p.lr_null}]
    return torch.optim.AdamW(groups, lr=p.lr, weight_decay=p.weight_decay, fused=torch.device(p.device).type == "cuda" or None)


class _StepStacks:
    """The stacked objects of each mini-batch, built on first use and reused by later epochs
    (8 objects in pairs have 56 ordered pairs); bounded so many objects cannot fill memory."""

    def __init__(self, objs: Sequence[TrainObject], limit: int = 512):
        self.objs, self.limit = objs, limit
        self.cache: dict[tuple[int, ...], list[tuple[list[int], ObjectStack]]] = {}

    def __call__(self, members: tuple[int, ...]) -> list[tuple[list[int], ObjectStack]]:
        got = self.cache.get(members)
        if got is None:
            if len(self.cache) >= self.limit:
                self.cache.clear()
            got = self.cache[members] = stacks_by_parts([self.objs[k] for k in members])
        return got


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
    A non-finite loss (any step) or non-finite weights (after an epoch) raise
    :class:`NonFiniteTraining` naming the epoch: nothing is returned to be saved. The checks
    only read values, so finite runs compute the same bits as without them.
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
        opt = _adamw(net, null, p)
        n = len(train_objs)
        curve: list[dict] = []
        best_val, best_epoch = -math.inf, 0
        best_state = {k: v.detach().clone().cpu() for k, v in copy.deepcopy(net.state_dict()).items()}
        best_theta = float(null.theta.detach())
        _check_targets(train_objs)
        _check_labelled(val_objs)
        val_stacks = stacks_by_parts(val_objs) if val_objs else []
        _check_weights(net, null, 0)
        with torch.no_grad():  # epoch 0: the untrained state is a candidate checkpoint
            loss0 = float(stacked_losses(net, null(), stacks_by_parts(train_objs), p.absent_parts).mean())
        _check_loss(loss0, 0, "the starting state")
        val0 = validation_score(stacked_mious(net, null().detach(), val_stacks)) if val_objs else float("nan")
        curve.append({"epoch": 0, "loss": loss0, "val_miou": val0})
        if progress is not None:
            progress(curve[-1])
        if val_objs and not math.isnan(val0):
            best_val = val0
        selected = not math.isnan(val0) and bool(val_objs)
        step_stacks = _StepStacks(train_objs)
        for epoch in range(1, p.epochs + 1):
            perm = rng.permutation(n)
            losses = []
            for i in range(0, n, p.batch_size):
                stacks = step_stacks(tuple(int(k) for k in perm[i : i + p.batch_size]))
                opt.zero_grad(set_to_none=True)
                loss = stacked_losses(net, null(), stacks, p.absent_parts).mean()
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
                _check_loss(losses[-1], epoch, f"step {len(losses)} of the epoch")
            _check_weights(net, null, epoch)
            val = validation_score(stacked_mious(net, null().detach(), val_stacks)) if val_objs else float("nan")
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
