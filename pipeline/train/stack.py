"""Several prepared objects as one problem: one forward pass, per-object losses and mIoU.

A training step over a mini-batch and the validation over all validation shapes used to
loop over objects in Python (one small forward, score and loss per object, then numpy per
object for the mIoU). Here the objects of a call are stacked (boxes after boxes,
superpoints after superpoints) and every per-object quantity becomes a segment-wise one:
the context normalisation uses each object's own box statistics, Z uses block-diagonal
score groups (:class:`GroupScores`), the relaxed IoU and the validation mIoU are per-object
sums (the forward pass and its gradient: :mod:`pipeline.train.stacked_grad`).
Objects never mix, so every value equals the per-object loop's up to float rounding
(``tests/oracle_train.py`` keeps that loop). Everything constant is prepared once in
:class:`ObjectStack` (training reuses the stacks of its mini-batches every epoch). Objects
with different part counts K go into separate stacks (:func:`stacks_by_parts`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.loss import AbsentParts
from pipeline.model import WeightNet
from pipeline.score import GroupScores, ScoreIndex

from .decode import PROB_THRESH
from .objects import TrainObject
from .stacked_grad import StackedLosses, stacked_forward


@dataclass
class ObjectStack:
    """Objects with the same K stacked, with every constant of the forward pass, the loss and
    the mIoU prepared once."""

    n_objects: int
    x: torch.Tensor  #: (B, C) inputs of all boxes
    x_centred: torch.Tensor  #: (B, C) x minus its object's mean box input
    box_obj: torch.Tensor  #: (B,) long object of each box
    obj_onehot: torch.Tensor  #: (n, B) row i sums object i's boxes
    obj_mean: torch.Tensor  #: (n, B) row i averages object i's boxes
    groups: GroupScores  #: block-diagonal score groups, S = all superpoints
    sp_obj: torch.Tensor  #: (S,) long object of each superpoint
    sp_onehot: torch.Tensor  #: (n, S) superpoint s belongs to object i
    sp_wv: torch.Tensor  #: (n, S) sp_onehot · n_s · valid
    wg: torch.Tensor | None  #: (S, K+1) n_s · valid · gt (None without GT)
    g_sum: torch.Tensor | None  #: (n, K+1) Σ n_s · valid · |gt| per object
    present: torch.Tensor | None  #: (n, K) part present in the object's GT (valid superpoints)
    valid: torch.Tensor  #: (S,) bool
    small: torch.Tensor  #: (S, K) bool small-part flag of each superpoint's object
    counts: torch.Tensor | None  #: (S, K+1) float64 GT point counts (None unless all have them)
    size: torch.Tensor | None  #: (S,) float64 points per superpoint (from the counts)
    gt_tot: torch.Tensor | None  #: (n, K) float64 GT points per part and object

    @classmethod
    def stack(cls, objs: Sequence[TrainObject]) -> ObjectStack:
        """Stack objects that share K (targets only if all have them)."""
        if not objs:
            raise ValueError("no objects to stack")
        dev, dt = objs[0].x.device, objs[0].x.dtype
        n, K = len(objs), objs[0].n_parts
        n_box = torch.tensor([int(o.x.shape[0]) for o in objs], device=dev)
        n_sp = torch.tensor([int(o.index.n_sp) for o in objs], device=dev)
        box_obj = torch.repeat_interleave(torch.arange(n, device=dev), n_box)
        sp_obj = torch.repeat_interleave(torch.arange(n, device=dev), n_sp)
        x = torch.cat([o.x for o in objs])
        x_centred = torch.cat([o.x - o.x.mean(0, keepdim=True) if o.x.shape[0] else o.x for o in objs])
        obj_onehot = _onehot(box_obj, n, dt)
        wv = torch.cat([o.n_s for o in objs]).to(dt) * torch.cat([o.valid for o in objs]).to(dt)
        sp_onehot = _onehot(sp_obj, n, dt)
        wg = g_sum = present = None
        gts = [o.gt for o in objs if o.gt is not None]
        if len(gts) == n:
            gt = torch.cat(gts).to(dt)
            wg = wv[:, None] * gt
            g_sum = sp_onehot @ (wv[:, None] * gt.abs())
            present = (sp_onehot @ wg)[:, 1:] > 0
        counts = size = gt_tot = None
        if all(o.label_counts is not None for o in objs):
            counts = torch.as_tensor(np.concatenate([o.label_counts for o in objs]), dtype=torch.float64, device=dev)
            size = counts.sum(1)
            gt_tot = counts.new_zeros(n, K).index_add(0, sp_obj, counts[:, 1:])
        small = torch.as_tensor(np.stack([np.asarray(o.small_flags, bool).reshape(K) for o in objs]), device=dev)[sp_obj]
        index = ScoreIndex.concat([o.index for o in objs], n_box.tolist())
        return cls(
            n_objects=n,
            x=x,
            x_centred=x_centred,
            box_obj=box_obj,
            obj_onehot=obj_onehot,
            obj_mean=obj_onehot / n_box.clamp_min(1).to(dt)[:, None],
            groups=GroupScores.from_index(index, dt),
            sp_obj=sp_obj,
            sp_onehot=sp_onehot,
            sp_wv=sp_onehot * wv[None],
            wg=wg,
            g_sum=g_sum,
            present=present,
            valid=torch.cat([o.valid for o in objs]),
            small=small,
            counts=counts,
            size=size,
            gt_tot=gt_tot,
        )

    def probabilities(self, net: WeightNet, z_null: torch.Tensor | float) -> torch.Tensor:
        """P (S, K+1) of all stacked superpoints (no gradient)."""
        with torch.no_grad():
            return stacked_forward(net.cn.weight, net.out.weight, net.out.bias, z_null, self, net.tau, net.eps, net.skip).P

    def losses(self, net: WeightNet, z_null: torch.Tensor, absent_parts: AbsentParts = "paper") -> torch.Tensor:
        """(n,) L_obj of §7.8 of every object (needs GT), differentiable in the network's
        weights and ``z_null`` (the cn bias cancels: it gets no gradient)."""
        if self.wg is None:
            raise ValueError("a stacked object has no GT targets")
        return StackedLosses.apply(net.cn.weight, net.out.weight, net.out.bias, z_null, self, absent_parts, net.tau, net.eps, net.skip)

    def labels(self, P: torch.Tensor, thresh: float = PROB_THRESH) -> torch.Tensor:
        """(..., S) long labels of §7.11 (as :func:`labels_from_probs`, compared in float64) of
        P (..., S, K+1): one state of the network or several (leading dimensions)."""
        scores = P[..., 1:].double()
        K = scores.shape[-1]
        if K == 0:
            return torch.full(scores.shape[:-1], -1, dtype=torch.long, device=P.device)
        above = scores >= thresh
        parts = torch.arange(K, device=P.device)
        last_small = torch.where(above & self.small, parts, -1).amax(-1)
        lab = torch.where(last_small >= 0, last_small, scores.argmax(-1))
        return torch.where(above.any(-1) & self.valid, lab, -1)

    def mious(self, P: torch.Tensor) -> np.ndarray:
        """(..., n) float64 per-object mIoU of §7.10 of the thresholded labels (NaN: no GT part)
        of P (..., S, K+1); every leading index (a network state) is scored on its own."""
        counts, size, gt_tot = self.counts, self.size, self.gt_tot  # set together by stack()
        if counts is None or size is None or gt_tot is None:
            raise ValueError("a stacked object has no GT counts")
        n, K = gt_tot.shape
        lab = self.labels(P)
        lead = lab.shape[:-1]
        lab = lab.reshape(-1, lab.shape[-1])  # (E, S)
        E = lab.shape[0]
        e_idx, s_idx = torch.nonzero(lab >= 0, as_tuple=True)  # epoch-major, superpoints in order
        lab_h = lab[e_idx, s_idx]
        flat = (e_idx * n + self.sp_obj[s_idx]) * K + lab_h
        pred_tot = counts.new_zeros(E * n * K).index_add(0, flat, size[s_idx]).view(E, n, K)
        inter = counts.new_zeros(E * n * K).index_add(0, flat, counts[s_idx, lab_h + 1]).view(E, n, K)
        iou = inter / (gt_tot + pred_tot - inter).clamp(min=1)
        present = gt_tot > 0
        n_present = present.sum(1)
        miou = torch.where(present, iou, 0.0).sum(2) / n_present.clamp_min(1)
        return torch.where(n_present > 0, miou, math.nan).reshape(*lead, n).cpu().numpy()


def _onehot(idx: torch.Tensor, n: int, dtype: torch.dtype) -> torch.Tensor:
    """(n, len(idx)) with a 1 at (idx[j], j): per-object sums as one small matrix product."""
    out = torch.zeros(n, idx.shape[0], dtype=dtype, device=idx.device)
    out[idx, torch.arange(idx.shape[0], device=idx.device)] = 1.0
    return out


def stacks_by_parts(objs: Sequence[TrainObject], max_objects: int = 32) -> list[tuple[list[int], ObjectStack]]:
    """The objects stacked per part count K, at most ``max_objects`` per stack (the per-object
    sums are small dense matrices, quadratic in the stack's size): [(positions in ``objs``, stack)]."""
    by_k: dict[int, list[int]] = {}
    for i, o in enumerate(objs):
        by_k.setdefault(int(o.n_parts), []).append(i)
    chunks = [pos[j : j + max_objects] for pos in by_k.values() for j in range(0, len(pos), max_objects)]
    return [(pos, ObjectStack.stack([objs[i] for i in pos])) for pos in chunks]


def stacked_losses(
    net: WeightNet, z_null: torch.Tensor, stacks: Sequence[tuple[list[int], ObjectStack]], absent_parts: AbsentParts
) -> torch.Tensor:
    """(n,) L_obj of the objects stacked by :func:`stacks_by_parts`, in their original order."""
    if len(stacks) == 1:
        return stacks[0][1].losses(net, z_null, absent_parts)
    losses = torch.cat([s.losses(net, z_null, absent_parts) for _, s in stacks])
    order = torch.as_tensor(np.argsort(np.concatenate([pos for pos, _ in stacks]), kind="stable"), device=losses.device)
    return losses[order]


@torch.no_grad()
def stacked_mious(net: WeightNet, z_null: torch.Tensor | float, stacks: Sequence[tuple[list[int], ObjectStack]]) -> np.ndarray:
    """(n,) per-object validation mIoU of the objects stacked by :func:`stacks_by_parts`, in order."""
    out = np.empty(sum(len(pos) for pos, _ in stacks))
    for pos, s in stacks:
        out[pos] = s.mious(s.probabilities(net, z_null))
    return out
