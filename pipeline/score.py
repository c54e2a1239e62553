"""Weighted superpoint scores Z and probabilities P (SPEC §7.7), with scatter operations.

    Z[s, c+1] = 1/(V_s + 1e-6) · Σ_v Σ_{p∈s} max_{b: v(b)=v, c(b)=c} w_b · I_b(p),   Z[s, 0] = z_null

The membership is the sparse COO list (point, box) of :mod:`pipeline.lift`. Computing
m[p, v, c] = max over the COO entries of key (p, v, c) is a scatter-amax; the sum over
points of s is a scatter-add. Both are differentiable in w; the gradient of the max goes
to the arg-max box (split evenly between exactly tied boxes, as torch's ``amax`` does).

:class:`ScoreIndex` compresses the COO once per object: every key (p, v, c) is a group of
boxes; groups of the same superpoint with the **same box set** always have the same max,
so they collapse into one group with a multiplicity. For a realistic object this turns
~10⁵ entries into a few thousand, and a training step is one gather, one scatter-amax
over multi-box groups and one index_add.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

V_EPS = 1e-6


def _box_hashes(n_boxes: int) -> tuple[np.ndarray, np.ndarray]:
    # Two independent random 63-bit codes per box: a set of boxes hashes to the wrapping
    # sums, so equal sets give equal keys and distinct sets collide with prob. ~2^-120.
    rng = np.random.default_rng(12345)
    h = rng.integers(1, 2**63 - 1, size=(2, max(n_boxes, 1)), dtype=np.int64).astype(np.uint64)
    return h[0], h[1]


@dataclass
class ScoreIndex:
    """Precomputed index tensors of §7.7 for one object (built once, reused every step)."""

    n_sp: int
    n_parts: int
    single_box: torch.Tensor  #: (G1,) long box of each single-box group
    single_target: torch.Tensor  #: (G1,) long flat target s*K + c
    single_count: torch.Tensor  #: (G1,) float multiplicity (number of (p, v) collapsed)
    multi_box: torch.Tensor  #: (E2,) long box of each entry of a multi-box group
    multi_group: torch.Tensor  #: (E2,) long group of each such entry (0..G2-1)
    multi_target: torch.Tensor  #: (G2,) long flat target s*K + c
    multi_count: torch.Tensor  #: (G2,) float multiplicity
    inv_vis: torch.Tensor  #: (S,) 1 / (V_s + 1e-6), float64

    @classmethod
    def build(
        cls,
        point: np.ndarray,
        box: np.ndarray,
        box_view: np.ndarray,
        box_label: np.ndarray,
        sp: np.ndarray,
        vis_count: np.ndarray,
        n_views: int,
        n_parts: int,
        device: str | torch.device = "cpu",
    ) -> ScoreIndex:
        point = np.asarray(point, dtype=np.int64)
        box = np.asarray(box, dtype=np.int64)
        box_view = np.asarray(box_view, dtype=np.int64)
        box_label = np.asarray(box_label, dtype=np.int64)
        sp = np.asarray(sp, dtype=np.int64)
        S, K, V = int(np.asarray(vis_count).shape[0]), int(n_parts), int(n_views)
        B = int(box_view.shape[0])
        inv_vis = torch.as_tensor(1.0 / (np.asarray(vis_count, dtype=np.float64) + V_EPS), device=device)
        empty_l = torch.zeros(0, dtype=torch.long, device=device)
        empty_f = torch.zeros(0, dtype=torch.float64, device=device)
        if point.size == 0:
            return cls(S, K, empty_l, empty_l, empty_f, empty_l, empty_l, empty_l, empty_f, inv_vis)

        # 1. group the COO entries by key (p, v, c); duplicates of (p, b) are harmless (max).
        key = (point * V + box_view[box]) * K + box_label[box]
        order = np.lexsort((box, key))
        key, bx = key[order], box[order]
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        gkey = key[starts]
        g_point = gkey // (V * K)
        g_label = gkey % K
        g_target = sp[g_point] * K + g_label

        # 2. collapse groups of the same superpoint with the same box set.
        h1, h2 = _box_hashes(B)
        with np.errstate(over="ignore"):
            s1 = np.add.reduceat(h1[bx], starts)
            s2 = np.add.reduceat(h2[bx], starts)
        gsize = np.diff(np.r_[starts, key.size])
        # a box set fixes (v, c), so (target, hash) identifies (s, v, c, set)
        order2 = np.lexsort((s2, s1, g_target))
        t_, a_, b_ = g_target[order2], s1[order2], s2[order2]
        new = np.r_[True, (t_[1:] != t_[:-1]) | (a_[1:] != a_[:-1]) | (b_[1:] != b_[:-1])]
        rep = order2[new]  # one representative group per super-group
        mult = np.diff(np.r_[np.flatnonzero(new), order2.size])  # groups collapsed into it
        # representative group of each super-group and its entries
        rep_size = gsize[rep]
        rep_target = g_target[rep]
        single = rep_size == 1
        s_groups = rep[single]
        single_box = bx[starts[s_groups]]
        m_idx = np.flatnonzero(~single)
        m_groups = rep[m_idx]
        m_sizes = gsize[m_groups]
        entry_group = np.repeat(np.arange(m_idx.size), m_sizes)
        offsets = np.cumsum(m_sizes) - m_sizes  # first entry of each multi group, packed
        entry_pos = np.repeat(starts[m_groups] - offsets, m_sizes) + np.arange(entry_group.size)
        multi_box = bx[entry_pos]

        def lt(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(a, dtype=np.int64), device=device)

        def ft(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(a, dtype=np.float64), device=device)

        return cls(
            n_sp=S,
            n_parts=K,
            single_box=lt(single_box),
            single_target=lt(rep_target[single]),
            single_count=ft(mult[single]),
            multi_box=lt(multi_box),
            multi_group=lt(entry_group),
            multi_target=lt(rep_target[m_idx]),
            multi_count=ft(mult[m_idx]),
            inv_vis=inv_vis,
        )

    @classmethod
    def from_lifted(cls, lifted, device: str | torch.device = "cpu") -> ScoreIndex:
        """Build from a :class:`pipeline.lift.LiftedObject`."""
        return cls.build(
            lifted.point,
            lifted.box,
            lifted.box_view,
            lifted.box_label,
            lifted.sp,
            lifted.vis_count,
            lifted.n_views,
            lifted.n_parts,
            device,
        )

    def to(self, dtype: torch.dtype) -> ScoreIndex:
        """Copy with the float tensors cast (float32 for training speed)."""
        return ScoreIndex(
            self.n_sp,
            self.n_parts,
            self.single_box,
            self.single_target,
            self.single_count.to(dtype),
            self.multi_box,
            self.multi_group,
            self.multi_target,
            self.multi_count.to(dtype),
            self.inv_vis.to(dtype),
        )

    @classmethod
    def concat(cls, indices: Sequence[ScoreIndex], n_boxes: Sequence[int]) -> ScoreIndex:
        """Block-diagonal index of several objects with the same K (boxes and superpoints
        numbered object after object), so one :func:`scores_from_index` call scores them all.

        Each target still receives its own object's terms in the same order, so every
        object's rows of Z equal its own :func:`scores_from_index` bit for bit.
        """
        if not indices:
            raise ValueError("no score index to concatenate")
        K = indices[0].n_parts
        if any(i.n_parts != K for i in indices):
            raise ValueError(f"cannot concatenate score indices with different part counts {[i.n_parts for i in indices]}")
        sp_off = np.cumsum([0] + [i.n_sp for i in indices])
        box_off = np.cumsum([0] + [int(b) for b in n_boxes])
        grp_off = np.cumsum([0] + [int(i.multi_target.shape[0]) for i in indices])

        def cat(name: str, off: np.ndarray | None = None) -> torch.Tensor:
            parts = [getattr(i, name) for i in indices]
            if off is not None:
                parts = [t + int(o) for t, o in zip(parts, off)]
            return torch.cat(parts)

        return cls(
            n_sp=int(sp_off[-1]),
            n_parts=K,
            single_box=cat("single_box", box_off),
            single_target=cat("single_target", sp_off * K),
            single_count=cat("single_count"),
            multi_box=cat("multi_box", box_off),
            multi_group=cat("multi_group", grp_off),
            multi_target=cat("multi_target", sp_off * K),
            multi_count=cat("multi_count"),
            inv_vis=cat("inv_vis"),
        )

    @property
    def n_groups(self) -> int:
        return int(self.single_box.shape[0] + self.multi_target.shape[0])


def scores_from_index(w: torch.Tensor, index: ScoreIndex, z_null: torch.Tensor | float) -> torch.Tensor:
    """Z (S, K+1) from box weights w (B,) and a prebuilt :class:`ScoreIndex`.

    Assumes w >= 0 (the network ends in a ReLU): the scatter-amax starts from 0, which is
    the value of max_b w_b·I_b(p) for boxes that do not contain p.
    """
    S, K = index.n_sp, index.n_parts
    dtype = w.dtype
    flat = w.new_zeros(S * K)
    if index.single_box.numel():
        flat = flat.index_add(0, index.single_target, w[index.single_box] * index.single_count.to(dtype))
    if index.multi_box.numel():
        g2 = index.multi_target.shape[0]
        m = w.new_zeros(g2).scatter_reduce(0, index.multi_group, w[index.multi_box], "amax", include_self=True)
        flat = flat.index_add(0, index.multi_target, m * index.multi_count.to(dtype))
    parts = flat.view(S, K) * index.inv_vis.to(dtype)[:, None]
    zn = torch.as_tensor(z_null, dtype=dtype, device=w.device).reshape(1, 1).expand(S, 1)
    return torch.cat([zn, parts], dim=1)


def superpoint_scores(
    w: torch.Tensor,
    point: np.ndarray,
    box: np.ndarray,
    box_view: np.ndarray,
    box_label: np.ndarray,
    sp: np.ndarray,
    vis_count: np.ndarray,
    n_views: int,
    n_parts: int,
    z_null: torch.Tensor | float,
) -> torch.Tensor:
    """Z (S, K+1) of §7.7 for one object (builds the index; use :class:`ScoreIndex` in loops)."""
    index = ScoreIndex.build(point, box, box_view, box_label, sp, vis_count, n_views, n_parts, w.device)
    return scores_from_index(w, index, z_null)


def probabilities(Z: torch.Tensor) -> torch.Tensor:
    """P = softmax(Z) over the K+1 labels (temperature 1; the weights set the scale)."""
    return torch.softmax(Z, dim=-1)


@dataclass
class GroupScores:
    """A :class:`ScoreIndex` flattened for the training loop: single-box groups are groups of
    one, and each group's multiplicity is folded with 1/(V_s + 1e-6) into one coefficient.

    Z is then one gather, one scatter-amax, one multiply and one index_add (instead of two
    branches and a final row scaling), which matters when it runs 1,600 times per model.
    The values equal :func:`scores_from_index` up to float rounding (the scaling by
    1/(V_s + 1e-6) happens per group instead of per superpoint).
    """

    n_sp: int
    n_parts: int
    box: torch.Tensor  #: (E,) long box of each entry
    group: torch.Tensor  #: (E,) long group of each entry (0..G-1)
    target: torch.Tensor  #: (G,) long flat target s*K + c
    coef: torch.Tensor  #: (G,) multiplicity / (V_s + 1e-6)

    @classmethod
    def from_index(cls, index: ScoreIndex, dtype: torch.dtype = torch.float32) -> GroupScores:
        g1 = int(index.single_box.shape[0])
        target = torch.cat([index.single_target, index.multi_target])
        count = torch.cat([index.single_count, index.multi_count]).to(torch.float64)
        inv = index.inv_vis.to(torch.float64)[torch.div(target, max(index.n_parts, 1), rounding_mode="floor")]
        dev = index.single_box.device
        return cls(
            n_sp=index.n_sp,
            n_parts=index.n_parts,
            box=torch.cat([index.single_box, index.multi_box]),
            group=torch.cat([torch.arange(g1, device=dev), index.multi_group + g1]),
            target=target,
            coef=(count * inv).to(dtype),
        )

    @property
    def n_groups(self) -> int:
        return int(self.target.shape[0])


def group_maxima(w: torch.Tensor, groups: GroupScores) -> tuple[torch.Tensor, torch.Tensor]:
    """(w of each entry (E,), max of each group (G,)) for box weights w (B,) >= 0."""
    e = w.index_select(0, groups.box)
    return e, w.new_zeros(groups.n_groups).scatter_reduce(0, groups.group, e, "amax", include_self=True)


def scores_from_maxima(m: torch.Tensor | None, groups: GroupScores, z_null: torch.Tensor | float) -> torch.Tensor:
    """Z (S, K+1) from the group maxima of :func:`group_maxima` (None: no group)."""
    S, K = groups.n_sp, groups.n_parts
    dtype = groups.coef.dtype if m is None else m.dtype
    flat = groups.coef.new_zeros(S * K, dtype=dtype)
    if m is not None:
        flat = flat.index_add(0, groups.target, m * groups.coef.to(dtype))
    zn = torch.as_tensor(z_null, dtype=dtype, device=flat.device).reshape(1, 1).expand(S, 1)
    return torch.cat([zn, flat.view(S, K)], dim=1)


def scores_from_groups(w: torch.Tensor, groups: GroupScores, z_null: torch.Tensor | float) -> torch.Tensor:
    """Z (S, K+1) from box weights w (B,) >= 0, as :func:`scores_from_index`."""
    m = group_maxima(w, groups)[1] if groups.box.numel() else None
    return scores_from_maxima(m, groups, z_null).to(w.dtype)
