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

Speed (``benchmarks/bench_train.py``): a step calls the forward pass and its written-out
gradient directly (:func:`forward_losses`, :func:`loss_gradients`; no autograd graph) and
validation runs every few epochs over the weights kept from each of them
(:mod:`pipeline.train.val_epochs`), so what is left is mostly the two (B×C)·(C×C) matrix
products per step and the validation's one per epoch: at the portable kernels' ~38 GFLOP/s
they are about 33 CPU s of the demo's 12 networks, a floor no reordering of the loop removes.
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
from .stacked_grad import forward_losses, loss_gradients
from .val_epochs import mious_many


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


@dataclass
class _Weights:
    """Detached views of the trained tensors (they follow the optimiser's in-place updates)."""

    W: torch.Tensor
    w_out: torch.Tensor
    b_out: torch.Tensor
    theta: torch.Tensor
    floor: float
    tau: float
    eps: float
    skip: bool

    @classmethod
    def of(cls, net: WeightNet, null: NullLogit) -> _Weights:
        return cls(
            net.cn.weight.detach(),
            net.out.weight.detach(),
            net.out.bias.detach(),
            null.theta.detach(),
            null.floor,
            net.tau,
            net.eps,
            net.skip,
        )

    def z_null(self) -> torch.Tensor:
        """As :meth:`NullLogit.forward`, without autograd."""
        return torch.clamp(torch.relu(self.theta), min=self.floor)


def _train_step(
    w: _Weights, net: WeightNet, null: NullLogit, stacks: list[tuple[list[int], ObjectStack]], absent_parts: AbsentParts
) -> float:
    """Loss of one mini-batch (mean of its objects' L_obj) and the gradients of that mean,
    set as the parameters' ``.grad`` (the chain rule of :func:`loss_gradients`, called
    directly: no autograd graph is recorded, which cost as much as the small operations)."""
    zn = w.z_null()
    n = sum(len(pos) for pos, _ in stacks)
    parts, grads = [], []
    for _, st in stacks:
        losses, saved = forward_losses(w.W, w.w_out, w.b_out, zn, st, absent_parts, w.tau, w.eps, w.skip)
        parts.append(losses)
        g_loss = torch.ones(st.n_objects, dtype=losses.dtype, device=losses.device) / n  # the mean's gradient
        grads.append(loss_gradients(g_loss, w.w_out, st, saved, absent_parts))
    if len(stacks) == 1:
        loss = parts[0].mean()
    else:
        order = torch.as_tensor(np.argsort(np.concatenate([pos for pos, _ in stacks]), kind="stable"), device=zn.device)
        loss = torch.cat(parts)[order].mean()
    d_zn = grads[0][3]
    for g in grads[1:]:
        d_zn = d_zn + g[3]
    # z_null = max(ReLU(θ), floor): the gradient passes where the clamp does not hold
    null.theta.grad = torch.where(torch.relu(w.theta) >= w.floor, d_zn, 0.0).to(w.theta.dtype)
    net_grads = [g[:3] for g in grads if g[0] is not None]
    if net_grads:  # else no box scored anything: the network's parameters keep no gradient
        for param, *values in zip((net.cn.weight, net.out.weight, net.out.bias), *net_grads):
            total = values[0]
            for v in values[1:]:
                total = total + v
            param.grad = total
    return float(loss)


class _Validation:
    """Validation deferred by up to ``chunk`` epochs: each epoch's weights are copied aside and
    a run of epochs is scored at once (:func:`pipeline.train.val_epochs.mious_many`); the
    epochs are then reported and selected in order, as if validated one by one."""

    def __init__(self, w: _Weights, stacks: list[tuple[list[int], ObjectStack]], chunk: int):
        self.w, self.stacks, self.chunk = w, stacks, chunk
        self.W = w.W.new_empty((chunk, *w.W.shape))
        self.w_out = w.w_out.new_empty((chunk, w.w_out.shape[1]))
        self.b_out = w.b_out.new_empty(chunk)
        self.theta = w.theta.new_empty(chunk)
        self.z_null = w.theta.new_empty(chunk)
        self.pending: list[tuple[int, float]] = []  # (epoch, mean training loss)

    def add(self, epoch: int, loss: float) -> bool:
        """Keep this epoch's weights; True when the buffer is full (call :meth:`scores`)."""
        j = len(self.pending)
        self.W[j].copy_(self.w.W)
        self.w_out[j].copy_(self.w.w_out[0])
        self.b_out[j] = self.w.b_out[0]
        self.theta[j] = self.w.theta
        self.z_null[j] = self.w.z_null()
        self.pending.append((epoch, loss))
        return len(self.pending) == self.chunk

    def scores(self) -> list[tuple[int, float, float, int]]:
        """[(epoch, loss, validation score, buffer slot)] of the pending epochs, in order."""
        k = len(self.pending)
        if not k:
            return []
        if self.stacks:
            m = mious_many(self.stacks, self.W[:k], self.w_out[:k], self.b_out[:k], self.z_null[:k], self.w.tau, self.w.eps, self.w.skip)
            vals = [validation_score(row) for row in m]
        else:
            vals = [float("nan")] * k
        out = [(e, loss, v, j) for j, ((e, loss), v) in enumerate(zip(self.pending, vals))]
        self.pending = []
        return out

    def state(self, j: int, cn_bias: torch.Tensor) -> tuple[dict[str, torch.Tensor], float]:
        """The state dict and θ_null kept in slot ``j`` (``cn_bias``: never trained, it cancels)."""
        return {
            "cn.weight": self.W[j].clone().cpu(),
            "cn.bias": cn_bias.detach().clone().cpu(),
            "out.weight": self.w_out[j].clone().cpu()[None],
            "out.bias": self.b_out[j : j + 1].clone().cpu(),
        }, float(self.theta[j])


#: epochs validated together at most, and the largest (validation boxes × chunk · C) product
#: a chunk may hold (16 M float32 = 64 MB per temporary): many validation boxes, shorter chunks
VAL_CHUNK = 16
VAL_ELEMENTS = 1 << 24


def _val_chunk(stacks: list[tuple[list[int], ObjectStack]], in_dim: int, epochs: int) -> int:
    boxes = max((int(st.x.shape[0]) for _, st in stacks), default=0)
    return max(1, min(VAL_CHUNK, epochs, VAL_ELEMENTS // max(1, boxes * in_dim)))


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
        w = _Weights.of(net, null)
        val = _Validation(w, val_stacks, _val_chunk(val_stacks, in_dim, p.epochs))

        def report(pending: list[tuple[int, float, float, int]]) -> None:
            nonlocal best_val, best_epoch, best_state, best_theta, selected
            for epoch, loss, score, j in pending:
                entry = {"epoch": epoch, "loss": loss, "val_miou": score}
                curve.append(entry)
                if progress is not None:
                    progress(entry)
                improved = bool(val_objs) and not math.isnan(score) and score > best_val
                if improved or (epoch == p.epochs and not selected):  # no usable validation: last epoch
                    selected = True
                    best_val, best_epoch = score, epoch
                    best_state, best_theta = val.state(j, net.cn.bias)

        with torch.no_grad():
            for epoch in range(1, p.epochs + 1):
                perm = rng.permutation(n)
                losses = []
                try:
                    for i in range(0, n, p.batch_size):
                        stacks = step_stacks(tuple(int(k) for k in perm[i : i + p.batch_size]))
                        opt.zero_grad(set_to_none=True)
                        losses.append(_train_step(w, net, null, stacks, p.absent_parts))
                        _check_loss(losses[-1], epoch, f"step {len(losses)} of the epoch")
                        opt.step()
                    _check_weights(net, null, epoch)
                except NonFiniteTraining:
                    report(val.scores())  # the finite epochs before it are reported, as they would have been
                    raise
                if val.add(epoch, float(np.mean(losses))) or epoch == p.epochs:
                    report(val.scores())
        return TrainResult(
            state_dict={k: v.cpu() for k, v in best_state.items()},
            theta_null=best_theta,
            curve=curve,
            best_epoch=best_epoch,
            best_val_miou=float(best_val) if val_objs and best_val > -math.inf else float("nan"),
        )
    finally:
        torch.set_num_threads(old_threads)
