"""Validation of many network states at once: one forward pass for a run of epochs.

The loop used to validate after every epoch: one small forward pass over the validation
shapes and a per-epoch mIoU, a few dozen tensor operations each time, so that 400 epochs
were 400 rounds of Python overhead. The validation never feeds back into training (it only
selects a checkpoint), so the loop keeps a copy of each epoch's weights and scores a run of
epochs here at once: the context normalisation, output layer, scores, softmax, labels and
per-object mIoU are each one batched operation over the epochs; only the three matrix
products stay one call per epoch (MKL rounds a wider, batched or unaligned product otherwise). Each
epoch's values equal :meth:`ObjectStack.probabilities` / :meth:`ObjectStack.mious` bit for
bit, so deferring the validation changes no curve, selection or model byte.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .stack import ObjectStack


def probabilities_many(
    W: torch.Tensor,
    w_out: torch.Tensor,
    b_out: torch.Tensor,
    z_null: torch.Tensor,
    st: ObjectStack,
    tau: float,
    eps: float,
    skip: bool = True,
) -> torch.Tensor:
    """P (E, S, K+1) of the stacked superpoints for E network states: ``W`` (E, C, C) the cn
    weights, ``w_out`` (E, C), ``b_out`` (E,), ``z_null`` (E,)."""
    E = int(W.shape[0])
    g, S, K = st.groups, st.groups.n_sp, st.groups.n_parts
    dt = st.x.dtype
    B = int(st.x.shape[0])
    flat = torch.zeros(E, S * K, dtype=dt, device=st.x.device)
    if B and g.box.numel():
        # The three matrix products one epoch at a time, each on fresh (64-byte aligned)
        # tensors: MKL blocks a wider or batched product differently, and its reproducible
        # mode rounds an unaligned operand otherwise. So every value is the single-epoch
        # pass's (:func:`stacked_forward`), bit for bit.
        cs = [torch.mm(st.x_centred, W[e].clone().t()) for e in range(E)]
        var = torch.stack([torch.mm(st.obj_mean, ce * ce) for ce in cs])
        c = torch.stack(cs)
        r = (var.clamp_min_(1e-30).sqrt_() + eps).reciprocal_()
        xp = c.mul_(r.index_select(1, st.box_obj)).clamp_min_(0.0)
        if skip:
            xp += st.x
        bias = b_out + tau
        pre = torch.stack([torch.addmv(bias[e : e + 1].clone(), xp[e].clone(), w_out[e].clone()) for e in range(E)])
        e_w = pre.clamp_min_(0.0).index_select(1, g.box)  # (E, entries)
        m = e_w.new_zeros(E, g.n_groups).scatter_reduce_(1, g.group.expand(E, -1), e_w, "amax", include_self=True)
        flat.index_add_(1, g.target, m * g.coef.to(dt))
    Z = torch.cat([z_null.to(dt)[:, None, None].expand(E, S, 1), flat.view(E, S, K)], dim=2)
    return torch.softmax(Z, dim=2)


@torch.inference_mode()
def mious_many(
    stacks: Sequence[tuple[list[int], ObjectStack]],
    W: torch.Tensor,
    w_out: torch.Tensor,
    b_out: torch.Tensor,
    z_null: torch.Tensor,
    tau: float,
    eps: float,
    skip: bool = True,
) -> np.ndarray:
    """(E, n) per-object validation mIoU of the objects stacked by
    :func:`pipeline.train.stack.stacks_by_parts` (in their order) for E network states."""
    out = np.empty((int(W.shape[0]), sum(len(pos) for pos, _ in stacks)))
    for pos, st in stacks:
        out[:, pos] = st.mious(probabilities_many(W, w_out, b_out, z_null, st, tau, eps, skip))
    return out
