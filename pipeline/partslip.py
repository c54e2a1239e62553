"""PartSLIP label lifting (SPEC §6) and the instance grouping shared with PartSTAD (§6.3, §7.12).

Semantic scores (§6.1), from a box-mode :class:`~pipeline.lift.LiftedObject`:

    score[s, c] = COV[c, s] / (VIS[s] + 1e-6),   0 where VIS[s] = 0

COV[c, s] counts the visible point-observations (p, v) of s that lie strictly inside at
least one *valid* (whole-object filter) box of category c in that same view and pass the
IoU gate, i.e. the number of distinct (p, v, c) among the box-mode memberships of valid
boxes. It is computed with one ``np.unique`` and one ``bincount``.

Labels (§6.2, and §7.11 with another threshold): :func:`threshold_labels`.

Instances (§6.3): :func:`group_instances`, driven by any per-superpoint labels and any
lifted membership (PartSLIP: box mode + whole-object-valid boxes; PartSTAD: its own
semantic labels, see the function's docstring for the confidence definition).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from pipeline.boxes import box_iou
from pipeline.lift import LiftedObject
from pipeline.score import V_EPS

SCORE_THRESH = 0.5
ADJ_GAP = 0.02
DIS_THRESH = 0.2
MAX_SIZE_RATIO = 100.0
FILTER_IOU = 0.5


def semantic_scores(lifted: LiftedObject, box_valid: np.ndarray | None = None) -> np.ndarray:
    """(S, K) float64 PartSLIP coverage score of §6.1: the one implementation of the coverage.

    On a box-mode lifting it is PartSLIP's score; on a mask-mode lifting it is the "masks
    without weights" coverage (:mod:`pipeline.train.ablations`), i.e. Z[:, 1:] of §7.7 with
    every weight 1 (to float rounding). ``box_valid`` (B,) restricts the vote to the boxes
    passing the whole-object filter (:func:`pipeline.lift.whole_object_valid`); default all boxes.
    """
    S, K, V = lifted.n_sp, lifted.n_parts, lifted.n_views
    point = lifted.point.astype(np.int64)
    box = lifted.box.astype(np.int64)
    if box_valid is not None:
        keep = np.asarray(box_valid, dtype=bool)[box]
        point, box = point[keep], box[keep]
    cov = np.zeros(S * K, dtype=np.float64)
    if point.size:
        view = lifted.box_view.astype(np.int64)[box]
        label = lifted.box_label.astype(np.int64)[box]
        key = np.unique((point * V + view) * K + label)  # distinct (p, v, c): the OR over boxes
        p = key // (V * K)
        c = key % K
        cov = np.bincount(lifted.sp.astype(np.int64)[p] * K + c, minlength=S * K).astype(np.float64)
    vis = lifted.vis_count.astype(np.float64)
    score = cov.reshape(S, K) / (vis[:, None] + V_EPS)
    score[vis == 0] = 0.0
    return score


def threshold_labels(scores: np.ndarray, small_flags: Sequence[bool], thresh: float) -> np.ndarray:
    """(S,) int32 labels by the §6.2 / §7.11 rule, vectorised.

    −1 if max_c score < thresh; else the highest-index small part with score ≥ thresh;
    else argmax_c score (first index on ties).
    """
    scores = np.asarray(scores, dtype=np.float64)
    S, K = scores.shape
    if K == 0:
        return np.full(S, -1, dtype=np.int32)
    small = np.asarray(small_flags, dtype=bool).reshape(K)
    above = scores >= thresh
    lab = np.argmax(scores, axis=1)
    small_above = above & small[None]
    last_small = K - 1 - np.argmax(small_above[:, ::-1], axis=1)
    lab = np.where(small_above.any(axis=1), last_small, lab)
    lab = np.where(above.any(axis=1), lab, -1)
    return lab.astype(np.int32)


class PartSlipSemantic(NamedTuple):
    labels_point: np.ndarray  #: (N,) int16 part id or -1
    labels_sp: np.ndarray  #: (S,) int32
    score: np.ndarray  #: (S, K) float64 coverage scores
    box_valid: np.ndarray  #: (B,) bool whole-object filter


def partslip_semantic(
    lifted_box: LiftedObject,
    box_valid: np.ndarray,
    small_flags: Sequence[bool],
    thresh: float = SCORE_THRESH,
) -> PartSlipSemantic:
    """PartSLIP semantic segmentation of one object (§6.1 + §6.2) from box-mode membership.

    ``box_valid`` (B,) is the whole-object filter of :func:`pipeline.lift.whole_object_valid`,
    computed once by lift (it needs every projected point, which lift has at hand).
    """
    box_valid = np.asarray(box_valid, dtype=bool)
    if box_valid.shape != (lifted_box.n_boxes,):
        raise ValueError(f"box_valid has shape {box_valid.shape}, expected ({lifted_box.n_boxes},)")
    score = semantic_scores(lifted_box, box_valid)
    labels_sp = threshold_labels(score, small_flags, thresh)
    return PartSlipSemantic(labels_sp[lifted_box.sp].astype(np.int16), labels_sp, score, box_valid)


class Instances(NamedTuple):
    ins_point: np.ndarray  #: (N,) int32 instance id 0..M-1 or -1
    instance_label: np.ndarray  #: (M,) int16 part id of each instance
    instance_confidence: np.ndarray  #: (M,) float32


def _groupwise_bbox(key: np.ndarray, coords: np.ndarray, n: int) -> np.ndarray:
    """(n, 4) bbox (min u, min v, max u, max v) of coords grouped by key; empty → (inf, inf, -inf, -inf)."""
    out = np.concatenate([np.full((n, 2), np.inf), np.full((n, 2), -np.inf)], axis=1)
    if key.size == 0:
        return out
    order = np.argsort(key, kind="stable")
    ks = key[order]
    starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    c = coords[order]
    out[ks[starts], :2] = np.minimum.reduceat(c, starts, axis=0)
    out[ks[starts], 2:] = np.maximum.reduceat(c, starts, axis=0)
    return out


def group_instances(
    labels_sp: np.ndarray,
    lifted: LiftedObject,
    xyz: np.ndarray,
    uv: np.ndarray,
    visible: np.ndarray,
    xyxy: np.ndarray,
    ratio_boxes: np.ndarray | None = None,
    filter_boxes: np.ndarray | None = None,
    sp_conf: np.ndarray | None = None,
    conf_iou: bool = False,
    adj_gap: float = ADJ_GAP,
    dis_thresh: float = DIS_THRESH,
    max_size_ratio: float = MAX_SIZE_RATIO,
    filter_iou: float = FILTER_IOU,
) -> Instances:
    """Instance segmentation of §6.3, per category j, vectorised (no pair loops at all).

    1. Superpoints i, k are adjacent if their 3D axis-aligned boxes are closer than
       ``adj_gap`` on every axis (A = max over axes of min_i − max_k, symmetrised).
    2. Adjacent label-j superpoints are merged (union-find = connected components) if
       the distance of their ratio lists over the category-j boxes of ``ratio_boxes``
       (entries where both are visible) is < ``dis_thresh`` and their size ratio is
       < ``max_size_ratio``. Ratios come from ``lifted`` (:meth:`LiftedObject.ratio_matrix`),
       so box-mode membership reproduces PartSLIP and mask-mode membership gives the
       PartSTAD variant (§7.12).
    3. A candidate is kept if, in some view, the 2D box of its visible points has IoU
       > ``filter_iou`` with some category-j box of ``filter_boxes`` (default: **all**
       boxes, as in PartSLIP). Dropped candidates get instance −1 (their semantic
       labels are untouched by this function).

    Confidence of an instance = size-weighted mean of ``sp_conf`` over its superpoints
    (i.e. the mean over its points of their superpoint's score; 1 when ``sp_conf`` is
    None), multiplied by the best 2D IoU of step 3 when ``conf_iou``. PartSLIP: pass
    ``sp_conf = score[s, label_s]`` and ``conf_iou=False`` (mean semantic score).
    PartSTAD: ``sp_conf = P[s, label_s + 1]`` and ``conf_iou=True``.

    Instance ids are consecutive, ordered by category, then by smallest superpoint id.
    """
    labels_sp = np.asarray(labels_sp).astype(np.int64)
    sp = lifted.sp.astype(np.int64)
    S, K, V = lifted.n_sp, lifted.n_parts, lifted.n_views
    N = sp.shape[0]
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    B = xyxy.shape[0]
    if B != lifted.n_boxes:
        raise ValueError(f"{B} boxes given for a lifting with {lifted.n_boxes} boxes")
    box_view = lifted.box_view.astype(np.int64)
    box_label = lifted.box_label.astype(np.int64)
    ratio_boxes = np.ones(B, bool) if ratio_boxes is None else np.asarray(ratio_boxes, bool)
    filter_boxes = np.ones(B, bool) if filter_boxes is None else np.asarray(filter_boxes, bool)
    sizes = lifted.sp_size.astype(np.float64)
    conf_sp = np.ones(S) if sp_conf is None else np.asarray(sp_conf, dtype=np.float64)

    xyz = np.asarray(xyz, dtype=np.float64)
    lo = np.full((S, 3), np.inf)
    hi = np.full((S, 3), -np.inf)
    np.minimum.at(lo, sp, xyz)
    np.maximum.at(hi, sp, xyz)

    vv_all, pp_all = np.nonzero(np.asarray(visible, dtype=bool))
    uv_vis = np.asarray(uv, dtype=np.float64)[vv_all, pp_all]

    ins_sp = np.full(S, -1, dtype=np.int64)
    inst_label: list[np.ndarray] = []
    inst_conf: list[np.ndarray] = []
    n_inst = 0
    for j in range(K):  # loop over categories only
        nodes = np.flatnonzero(labels_sp == j)
        L = nodes.size
        if L == 0:
            continue
        # 1. adjacency of 3D boxes
        lo_j, hi_j = lo[nodes], hi[nodes]
        A = lo_j[:, None, 0] - hi_j[None, :, 0]  # (L, L), built axis by axis to save memory
        for ax in (1, 2):
            np.maximum(A, lo_j[:, None, ax] - hi_j[None, :, ax], out=A)
        A = np.maximum(A, A.T)
        ii, kk = np.nonzero(np.tril(A < adj_gap, k=-1))  # pairs with k < i
        # 2. ratio-list distance and size ratio per adjacent pair
        if ii.size:
            bj = np.flatnonzero(ratio_boxes & (box_label == j))
            R = lifted.ratio_matrix(bj)[nodes]
            ri, rk = R[ii], R[kk]
            both = (ri > -1) & (rk > -1)
            si = np.where(both, ri, 0).sum(1)
            sk = np.where(both, rk, 0).sum(1)
            den = np.maximum(si, sk)
            num = np.where(both, np.abs(ri - rk), 0).sum(1)
            ok = both.any(1) & (den >= 1e-3)
            dis = np.where(ok, num / np.where(ok, den, 1.0), 1.0)
            s_i, s_k = sizes[nodes[ii]], sizes[nodes[kk]]
            ratio = np.maximum(s_i, s_k) / np.maximum(np.minimum(s_i, s_k), 1e-12)
            merge = (dis < dis_thresh) & (ratio < max_size_ratio)
            ii, kk = ii[merge], kk[merge]
        graph = coo_matrix((np.ones(ii.size), (ii, kk)), shape=(L, L))
        _, comp = connected_components(graph, directed=False)
        # order candidates by their smallest superpoint id (nodes are sorted)
        _, first = np.unique(comp, return_index=True)
        rank = np.empty(first.size, np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(first.size)
        comp = rank[comp]
        C = first.size
        # 3. 2D filter: bbox of each candidate's visible points per view vs category-j boxes
        cand_of_sp = np.full(S, -1, np.int64)
        cand_of_sp[nodes] = comp
        cand = cand_of_sp[sp[pp_all]]
        sel = cand >= 0
        bb = _groupwise_bbox(cand[sel] * V + vv_all[sel], uv_vis[sel], C * V).reshape(C, V, 4)
        fb = np.flatnonzero(filter_boxes & (box_label == j))
        if fb.size:
            iou = box_iou(bb[:, box_view[fb]], xyxy[fb][None])  # (C, |fb|)
            best = iou.max(axis=1)
            keep = (iou > filter_iou).any(axis=1)
        else:
            best = np.zeros(C)
            keep = np.zeros(C, bool)
        # confidence
        w = sizes[nodes]
        num_c = np.bincount(comp, weights=w * conf_sp[nodes], minlength=C)
        den_c = np.bincount(comp, weights=w, minlength=C)
        conf = num_c / np.maximum(den_c, 1e-12)
        if conf_iou:
            conf = conf * best
        new_id = np.full(C, -1, np.int64)
        new_id[keep] = n_inst + np.arange(int(keep.sum()))
        n_inst += int(keep.sum())
        ins_sp[nodes] = new_id[comp]
        inst_label.append(np.full(int(keep.sum()), j, np.int64))
        inst_conf.append(conf[keep])
    labels = np.concatenate(inst_label) if inst_label else np.zeros(0, np.int64)
    confs = np.concatenate(inst_conf) if inst_conf else np.zeros(0)
    ins_point = ins_sp[sp] if N else np.zeros(0, np.int64)
    return Instances(ins_point.astype(np.int32), labels.astype(np.int16), confs.astype(np.float32))


def partslip_instances(
    sem: PartSlipSemantic,
    lifted_box: LiftedObject,
    xyz: np.ndarray,
    uv: np.ndarray,
    visible: np.ndarray,
    xyxy: np.ndarray,
) -> Instances:
    """PartSLIP instances (§6.3): ratio lists over whole-object-valid boxes, filter over all
    boxes, confidence = size-weighted mean semantic score of the instance's superpoints."""
    lab = sem.labels_sp.astype(np.int64)
    conf = np.where(lab >= 0, sem.score[np.arange(lab.size), np.maximum(lab, 0)], 0.0) if lab.size else lab
    return group_instances(lab, lifted_box, xyz, uv, visible, xyxy, ratio_boxes=sem.box_valid, sp_conf=conf, conf_iou=False)


def partstad_instances(
    labels_sp: np.ndarray,
    P: np.ndarray,
    lifted: LiftedObject,
    xyz: np.ndarray,
    uv: np.ndarray,
    visible: np.ndarray,
    xyxy: np.ndarray,
) -> Instances:
    """PartSTAD instances (our reading of §7.12): §6.3 grouping on PartSTAD's semantic labels.

    Ratio lists and the 2D filter use all boxes of ``lifted`` (mask or box membership, the
    caller decides); confidence = size-weighted mean of P[s, label_s + 1] over the
    instance's superpoints × the best 2D IoU with a same-label box.
    """
    lab = np.asarray(labels_sp).astype(np.int64)
    P = np.asarray(P, dtype=np.float64)
    conf = np.where(lab >= 0, P[np.arange(lab.size), np.maximum(lab, 0) + 1], 0.0) if lab.size else np.zeros(0)
    return group_instances(lab, lifted, xyz, uv, visible, xyxy, sp_conf=conf, conf_iou=True)
