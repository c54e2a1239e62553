"""The forward pass of stacked objects and its gradient written out (one autograd node).

Training runs 1,600 steps per model, each a few dozen small tensor operations besides two
(B×403)·(403×403) matrix products. Recorded by autograd, every operation adds a graph node
and a backward call, which cost more than the arithmetic of the small ones; the gradient
below is the same chain rule with one node per step (:class:`StackedLosses`) and fewer,
partly in-place operations (measured on the demo: training 1.5× → 1.8× as fast as the
per-object loop). It is checked against autograd through the per-object loop
(``tests/pipeline/test_train_stack.py``).

The forward pass (for one :class:`pipeline.train.stack.ObjectStack`):

    c = x̃ Wᵀ                   x̃: inputs minus their object's mean (the cn bias cancels)
    r = 1 / (sqrt(mean_obj c²) + ε);  a = ReLU(c · r);  w = ReLU(τ + b_o + (x + a)·w_o)
    Z = [z_null | scores of §7.7 from w];  P = softmax(Z)
    L_i = mean_k (1 − RIoU_ik)   (``absent_parts="skip"``: over the parts present in object i)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch

from pipeline.loss import AbsentParts, losses_from_riou
from pipeline.score import group_maxima, scores_from_maxima

if TYPE_CHECKING:
    from .stack import ObjectStack


class _Forward(NamedTuple):
    """Intermediate values of :func:`stacked_forward` that the gradient needs."""

    c: torch.Tensor | None  #: (B, C)
    var: torch.Tensor | None  #: (n, C) mean of c² per object
    std: torch.Tensor | None  #: (n, C)
    r: torch.Tensor | None  #: (n, C)
    rb: torch.Tensor | None  #: (B, C) r of each box's object
    u: torch.Tensor | None  #: (B, C) c · rb
    xp: torch.Tensor | None  #: (B, C) x + ReLU(u)
    pre: torch.Tensor | None  #: (B,) τ + o
    e: torch.Tensor | None  #: (E,) w of each score-group entry
    m: torch.Tensor | None  #: (G,) max of each group
    P: torch.Tensor  #: (S, K+1)


def stacked_forward(
    W: torch.Tensor,
    w_out: torch.Tensor,
    b_out: torch.Tensor,
    z_null: torch.Tensor | float,
    st: ObjectStack,
    tau: float,
    eps: float,
    skip: bool = True,
) -> _Forward:
    """P (S, K+1) of all stacked superpoints, with what the gradient needs.

    ``W`` (C, C) is ``cn.weight``, ``w_out`` (1, C) and ``b_out`` (1,) the output layer; the
    values equal :meth:`WeightNet.forward` + :func:`scores_from_index` + softmax per object
    up to float rounding.
    """
    g = st.groups
    c = var = std = r = rb = u = xp = pre = e = m = None
    if st.x.shape[0]:
        c = torch.mm(st.x_centred, W.t())
        var = torch.mm(st.obj_mean, c * c)
        std = var.clamp_min(1e-30).sqrt_()  # as WeightNet.forward: a constant channel (one box) has c = 0
        r = (std + eps).reciprocal_()
        rb = r.index_select(0, st.box_obj)
        u = c * rb
        xp = u.clamp_min(0.0)
        if skip:
            xp += st.x
        pre = torch.addmv(b_out + tau, xp, w_out[0])
        if g.box.numel():
            e, m = group_maxima(pre.clamp_min(0.0), g)
    P = torch.softmax(scores_from_maxima(m, g, z_null).to(st.x.dtype), dim=1)
    return _Forward(c, var, std, r, rb, u, xp, pre, e, m, P)


def _riou(P: torch.Tensor, st: ObjectStack) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(RIoU, pred ≠ 0, safe denominators), each (n, K+1): :func:`pipeline.loss.relaxed_iou` per
    object, its sums over superpoints as two small matrix products (P >= 0, so |P| = P)."""
    assert st.wg is not None and st.g_sum is not None, "GT targets are checked by ObjectStack.losses"
    inter = torch.mm(st.sp_onehot, st.wg * P)
    pred = torch.mm(st.sp_wv, P)
    ok = pred != 0
    safe = torch.where(ok, st.g_sum + pred - inter, 1.0)
    return torch.where(ok, inter / safe, 0.0), ok, safe


def _d_riou(g_loss: torch.Tensor, st: ObjectStack, absent_parts: AbsentParts) -> torch.Tensor:
    """dL/dRIoU (n, K+1) of the per-object losses, for upstream gradients ``g_loss`` (n,)."""
    assert st.present is not None, "GT targets are checked by ObjectStack.losses"
    n, K = st.present.shape
    d = g_loss.new_zeros(n, K + 1)
    if K == 0:
        return d
    if absent_parts == "paper":
        d[:, 1:] = -(g_loss / K)[:, None]
    else:
        kept = st.present.to(g_loss.dtype)
        d[:, 1:] = -(g_loss / kept.sum(1).clamp_min(1.0))[:, None] * kept
    return d


class Saved(NamedTuple):
    """What :func:`loss_gradients` needs from :func:`forward_losses`."""

    f: _Forward
    riou: torch.Tensor  #: (n, K+1)
    ok: torch.Tensor  #: (n, K+1) pred ≠ 0
    safe: torch.Tensor  #: (n, K+1) safe denominators


def forward_losses(
    W: torch.Tensor,
    w_out: torch.Tensor,
    b_out: torch.Tensor,
    z_null: torch.Tensor | float,
    st: ObjectStack,
    absent_parts: AbsentParts,
    tau: float,
    eps: float,
    skip: bool = True,
) -> tuple[torch.Tensor, Saved]:
    """(n,) L_obj of the stacked objects and what their gradient needs (no autograd: the
    training loop calls this and :func:`loss_gradients` directly, one Python call each)."""
    if st.wg is None or st.present is None:
        raise ValueError("a stacked object has no GT targets")
    f = stacked_forward(W, w_out, b_out, z_null, st, tau, eps, skip)
    riou, ok, safe = _riou(f.P, st)
    return losses_from_riou(riou, st.present, absent_parts), Saved(f, riou, ok, safe)


def loss_gradients(
    g_loss: torch.Tensor, w_out: torch.Tensor, st: ObjectStack, saved: Saved, absent_parts: AbsentParts
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
    """(dW, dw_out, db_out, dz_null) for upstream gradients ``g_loss`` (n,) of the losses;
    the first three are None when no box scored anything (the network took no part)."""
    f, riou, ok, safe = saved
    assert st.wg is not None, "GT targets are checked by forward_losses"
    # relaxed IoU: riou = inter / (g_sum + pred − inter) where pred ≠ 0
    d_q = torch.where(ok, _d_riou(g_loss, st, absent_parts) / safe, 0.0)
    d_den = -d_q * riou
    d_P = st.wg * (d_q - d_den).index_select(0, st.sp_obj) + torch.mm(st.sp_wv.t(), d_den)
    P = f.P
    d_Z = P * (d_P - (d_P * P).sum(1, keepdim=True))  # softmax
    d_zn = d_Z[:, 0].sum()
    if f.e is None:
        return None, None, None, d_zn
    # boxes were scored: stacked_forward set every intermediate
    assert f.m is not None and f.pre is not None and f.xp is not None and f.u is not None and f.rb is not None
    assert f.c is not None and f.r is not None and f.std is not None and f.var is not None
    g = st.groups
    # scores: scatter-amax, ties share the gradient equally (as torch's amax)
    d_m = d_Z[:, 1:].reshape(-1).index_select(0, g.target) * g.coef
    tie = (f.e == f.m.index_select(0, g.group)).to(P.dtype)
    n_tie = (f.m == 0).to(P.dtype).index_add_(0, g.group, tie)  # the zero start of amax ties too
    d_w = torch.zeros(st.x.shape[0], dtype=P.dtype, device=P.device)
    d_w.index_add_(0, g.box, (d_m / n_tie).index_select(0, g.group) * tie)
    d_pre = d_w * (f.pre > 0)
    d_b = d_pre.sum().reshape(1)
    d_wout = torch.mm(d_pre[None], f.xp)
    d_u = torch.outer(d_pre, w_out[0]).mul_(f.u > 0)
    d_c = d_u * f.rb
    d_r = torch.mm(st.obj_onehot, d_u.mul_(f.c))
    # r = 1/(√max(var, 1e-30) + ε): no gradient where the clamp holds
    d_var = d_r.mul_(f.r).mul_(f.r).div_(f.std).mul_(-0.5).mul_(f.var >= 1e-30)
    d_c.addcmul_(f.c, torch.mm(st.obj_mean.t(), d_var), value=2.0)
    d_W = torch.mm(d_c.t(), st.x_centred)
    return d_W, d_wout, d_b, d_zn


class StackedLosses(torch.autograd.Function):
    """(n,) L_obj of the stacked objects; backward gives dW, dw_out, db_out and dz_null."""

    @staticmethod
    def forward(ctx, W, w_out, b_out, z_null, st, absent_parts: AbsentParts, tau: float, eps: float, skip: bool):
        losses, saved = forward_losses(W, w_out, b_out, z_null, st, absent_parts, tau, eps, skip)
        ctx.st, ctx.absent_parts, ctx.saved = st, absent_parts, saved
        ctx.save_for_backward(w_out)
        return losses

    @staticmethod
    def backward(ctx, g_loss):
        (w_out,) = ctx.saved_tensors
        d_W, d_wout, d_b, d_zn = loss_gradients(g_loss, w_out, ctx.st, ctx.saved, ctx.absent_parts)
        return d_W, d_wout, d_b, d_zn, None, None, None, None, None
