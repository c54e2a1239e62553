"""Relaxed (soft) mIoU loss on superpoints (SPEC §7.8, `compute_riou`).

Over the valid superpoints only (§7.2), each weighted by its size n_s:

    I_k    = Σ_s n_s g[s,k] P[s,k]
    RIoU_k = I_k / (Σ_s n_s |g[s,k]| + Σ_s n_s |P[s,k]| − I_k)      (0 where Σ_s n_s P[s,k] = 0)
    L_obj  = 1/K · Σ_{k=1..K} (1 − RIoU_k)                           (null k = 0 excluded)

``absent_parts="paper"`` keeps the official average over all K parts: a part absent from
the object's GT has RIoU = 0 with zero gradient and adds a constant 1/K. ``"skip"``
averages only over the parts present in the object's GT (valid superpoints); an object
with no present part then has loss 0.
"""

from __future__ import annotations

from typing import Literal

import torch

#: how the per-object loss treats parts absent from an object's GT (see TrainParams.absent_parts)
AbsentParts = Literal["paper", "skip"]


def relaxed_iou(P: torch.Tensor, gt: torch.Tensor, n_s: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(K+1,) RIoU_k over the valid superpoints, null label included at index 0."""
    wv = (n_s.to(P.dtype) * valid.to(P.dtype))[:, None]
    g = gt.to(P.dtype)
    inter = (wv * g * P).sum(0)
    pred = (wv * P.abs()).sum(0)
    denom = (wv * g.abs()).sum(0) + pred - inter
    ok = pred != 0
    safe = torch.where(ok, denom, torch.ones_like(denom))
    return torch.where(ok, inter / safe, torch.zeros_like(inter))


def riou_loss(
    P: torch.Tensor,
    gt: torch.Tensor,
    n_s: torch.Tensor,
    valid: torch.Tensor,
    absent_parts: AbsentParts = "paper",
) -> torch.Tensor:
    """Per-object loss L_obj (scalar tensor) from probabilities P (S, K+1) and targets gt (S, K+1)."""
    riou = relaxed_iou(P, gt, n_s, valid)[1:]
    if absent_parts == "paper":
        return (1.0 - riou).mean() if riou.numel() else P.sum() * 0.0
    if absent_parts == "skip":
        wv = (n_s.to(P.dtype) * valid.to(P.dtype))[:, None]
        present = ((wv * gt.to(P.dtype)).sum(0)[1:]) > 0
        if not bool(present.any()):
            return P.sum() * 0.0
        return (1.0 - riou[present]).mean()
    raise ValueError(f"absent_parts must be 'paper' or 'skip', got {absent_parts!r}")


def losses_from_riou(riou: torch.Tensor, present: torch.Tensor, absent_parts: AbsentParts = "paper") -> torch.Tensor:
    """(n,) L_obj of n objects from their (n, K+1) RIoU and (n, K) GT-present parts, as
    :func:`riou_loss` does for one (an object with no part counted has loss 0)."""
    terms = 1.0 - riou[:, 1:]
    if absent_parts == "paper":
        return terms.mean(1) if terms.shape[1] else riou.sum(1) * 0.0
    if absent_parts == "skip":
        kept = present.to(terms.dtype)
        n_kept = kept.sum(1)
        return torch.where(n_kept > 0, (terms * kept).sum(1) / n_kept.clamp_min(1.0), riou.sum(1) * 0.0)
    raise ValueError(f"absent_parts must be 'paper' or 'skip', got {absent_parts!r}")
