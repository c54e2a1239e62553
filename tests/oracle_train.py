"""The per-object training loop as it was before batching, used **only for verification**.

:func:`ref_train_weight_net` is the loop of ``pipeline.train.loop`` before objects were
stacked (one forward, score and loss per object in Python; validation one object at a time
through numpy). ``tests/pipeline/test_train_stack.py`` and ``test_train_val_epochs.py`` check
that the stacked loop (with its deferred validation) gives the same losses (to float rounding)
and the same selected epochs, and
``benchmarks/bench_train.py`` times the two side by side. Never call it from the pipeline.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
import torch

from pipeline.loss import riou_loss
from pipeline.model import NullLogit, WeightNet
from pipeline.train.decode import forward_object, labels_from_probs, sp_miou
from pipeline.train.loop import TrainParams, TrainResult
from pipeline.train.objects import TrainObject


def ref_object_loss(net: WeightNet, z_null: torch.Tensor, obj: TrainObject, absent_parts: str = "paper") -> torch.Tensor:
    """L_obj of §7.8 for one object."""
    return riou_loss(forward_object(net, z_null, obj), obj.gt, obj.n_s, obj.valid, absent_parts)


@torch.no_grad()
def ref_validation_miou(net: WeightNet, z_null: torch.Tensor | float, objs: Sequence[TrainObject]) -> float:
    """Mean over objects of the per-object mIoU, one object at a time."""
    vals = []
    for o in objs:
        P = forward_object(net, z_null, o).cpu().numpy()
        vals.append(sp_miou(labels_from_probs(P, o.valid.cpu().numpy(), o.small_flags), o.label_counts))
    vals = [v for v in vals if not math.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


def ref_train_weight_net(
    train_objs: Sequence[TrainObject], val_objs: Sequence[TrainObject], params: TrainParams | None = None
) -> TrainResult:
    """The training loop before batching (same seeds, shuffles, optimisers and selection)."""
    p = params or TrainParams()
    old_threads = torch.get_num_threads()
    if p.threads:
        torch.set_num_threads(p.threads)
    try:
        torch.manual_seed(p.seed)
        rng = np.random.default_rng(p.seed)
        net = WeightNet(int(train_objs[0].x.shape[1]), tau=p.tau, eps=p.eps).to(p.device)
        null = NullLogit(init=p.tau).to(p.device)
        opt = torch.optim.AdamW(net.parameters(), lr=p.lr, weight_decay=p.weight_decay)
        opt_null = torch.optim.AdamW(null.parameters(), lr=p.lr_null, weight_decay=p.weight_decay)
        n = len(train_objs)
        curve: list[dict] = []
        best_val, best_epoch = -math.inf, 0
        best_state = {k: v.detach().clone().cpu() for k, v in copy.deepcopy(net.state_dict()).items()}
        best_theta = float(null.theta.detach())
        with torch.no_grad():
            loss0 = float(torch.stack([ref_object_loss(net, null(), o, p.absent_parts) for o in train_objs]).mean())
        val0 = ref_validation_miou(net, null().detach(), val_objs) if val_objs else float("nan")
        curve.append({"epoch": 0, "loss": loss0, "val_miou": val0})
        if val_objs and not math.isnan(val0):
            best_val = val0
        selected = not math.isnan(val0) and bool(val_objs)
        for epoch in range(1, p.epochs + 1):
            perm = rng.permutation(n)
            losses = []
            for i in range(0, n, p.batch_size):
                batch = [train_objs[k] for k in perm[i : i + p.batch_size]]
                opt.zero_grad(set_to_none=True)
                opt_null.zero_grad(set_to_none=True)
                zn = null()
                loss = torch.stack([ref_object_loss(net, zn, o, p.absent_parts) for o in batch]).mean()
                loss.backward()
                opt.step()
                opt_null.step()
                losses.append(float(loss.detach()))
            val = ref_validation_miou(net, null().detach(), val_objs) if val_objs else float("nan")
            curve.append({"epoch": epoch, "loss": float(np.mean(losses)), "val_miou": val})
            improved = bool(val_objs) and not math.isnan(val) and val > best_val
            if improved or (epoch == p.epochs and not selected):
                selected = True
                best_val, best_epoch = val, epoch
                best_state = {k: v.detach().clone().cpu() for k, v in net.state_dict().items()}
                best_theta = float(null.theta.detach())
        return TrainResult(
            state_dict=best_state,
            theta_null=best_theta,
            curve=curve,
            best_epoch=best_epoch,
            best_val_miou=float(best_val) if val_objs and best_val > -math.inf else float("nan"),
        )
    finally:
        torch.set_num_threads(old_threads)
