"""Evaluation metrics (SPEC §7.10, §8.1, §8.2).

Semantic (§8.1): for each object o and part c present in o's GT,
IoU_{o,c} = |pred=c ∧ gt=c| / |pred=c ∨ gt=c| over all points (−1 belongs to no part);
object-part pairs absent from GT are skipped (false positives on them are free). The
part IoU of a category is the mean over objects containing the part; the category mIoU
is the mean over parts present in at least one object.

Per-object mIoU (§7.10, validation): mean over the parts present in that object's GT.

Instance AP50 (§8.2, PartNet protocol as in PartSLIP++): per shape, predictions in
descending confidence (stable: ties keep input order) take the unused same-part GT
instance of highest IoU; TP iff IoU > 0.5 (strict). GT instances are the (ins, sem)
groups with ins ≠ −1 and sem ≥ 0; points of instances with sem < 0 ("other") are removed
from predicted masks; points with GT −1 are never in a GT instance. Per part, the
matches of all shapes are ranked by confidence, (recall 0, precision 1) is prepended and
AP = 1/101 Σ_{t=0,0.01..1} max{precision at recall ≥ t}. Thresholds are k/100 exactly
so that recall = t compares equal. Parts without GT → NaN; a part with GT but no
prediction → 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def per_object_part_iou(pred: np.ndarray, gt: np.ndarray, n_parts: int) -> np.ndarray:
    """(K,) IoU of each part in one object; NaN where the part is absent from GT."""
    pred = np.asarray(pred).astype(np.int64)
    gt = np.asarray(gt).astype(np.int64)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} != GT shape {gt.shape}")
    K = n_parts
    pv = (pred >= 0) & (pred < K)
    gv = (gt >= 0) & (gt < K)
    n_pred = np.bincount(pred[pv], minlength=K)[:K]
    n_gt = np.bincount(gt[gv], minlength=K)[:K]
    both = pv & gv & (pred == gt)
    inter = np.bincount(gt[both], minlength=K)[:K]
    union = n_pred + n_gt - inter
    return np.where(n_gt > 0, inter / np.maximum(union, 1), np.nan)


def part_iou_table(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], n_parts: int) -> np.ndarray:
    """(K,) part IoU accumulated over objects (§8.1); NaN for parts absent from every object."""
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions for {len(gts)} GT objects")
    if not len(preds):
        return np.full(n_parts, np.nan)
    table = np.stack([per_object_part_iou(p, g, n_parts) for p, g in zip(preds, gts)])
    present = ~np.isnan(table)
    total = np.where(present, table, 0.0).sum(0)
    count = present.sum(0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def category_miou(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], n_parts: int) -> float:
    """Category mIoU (§8.1): mean part IoU over parts present in ≥ 1 object (NaN if none)."""
    t = part_iou_table(preds, gts, n_parts)
    return float(np.nanmean(t)) if np.any(~np.isnan(t)) else float("nan")


def object_miou(pred: np.ndarray, gt: np.ndarray, n_parts: int) -> float:
    """Per-object mIoU (§7.10): mean over the parts present in this object's GT (NaN if none)."""
    t = per_object_part_iou(pred, gt, n_parts)
    return float(np.nanmean(t)) if np.any(~np.isnan(t)) else float("nan")


def _match_object(
    ins_point: np.ndarray,
    inst_label: np.ndarray,
    inst_conf: np.ndarray,
    sem: np.ndarray,
    ins: np.ndarray,
    n_parts: int,
    iou_thresh: float,
) -> tuple[list[list[tuple[float, bool]]], np.ndarray]:
    """Per-part lists of (confidence, is_tp) for one shape and the per-part GT counts."""
    sem = np.asarray(sem).astype(np.int64)
    ins = np.asarray(ins).astype(np.int64)
    ip = np.asarray(ins_point).astype(np.int64).copy()
    lab = np.asarray(inst_label).astype(np.int64)
    conf = np.asarray(inst_conf, dtype=np.float64)
    M = lab.shape[0]
    if ip.shape != sem.shape or ins.shape != sem.shape:
        raise ValueError("instance prediction and GT arrays must all be (N,)")
    if ip.size and ip.max() >= M:
        raise ValueError(f"instance id {ip.max()} >= number of instances {M}")
    in_gt = (ins >= 0) & (sem >= 0)
    if in_gt.any():
        pairs, gid_pts = np.unique(np.stack([ins[in_gt], sem[in_gt]], 1), axis=0, return_inverse=True)
        gt_label = pairs[:, 1]
    else:
        pairs, gid_pts, gt_label = np.zeros((0, 2), np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    G = gt_label.shape[0]
    gid = np.full(sem.shape[0], -1, np.int64)
    gid[in_gt] = gid_pts.reshape(-1)
    ip[(ins >= 0) & (sem < 0)] = -1  # "other" GT instances are removed from predictions
    pv = ip >= 0
    psize = np.bincount(ip[pv], minlength=M).astype(np.float64)
    gsize = np.bincount(gid[gid >= 0], minlength=G).astype(np.float64)
    both = pv & (gid >= 0)
    inter = np.bincount(ip[both] * G + gid[both], minlength=M * G).reshape(M, G).astype(np.float64)
    union = psize[:, None] + gsize[None, :] - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    n_gt = np.bincount(gt_label[(gt_label >= 0) & (gt_label < n_parts)], minlength=n_parts)[:n_parts]
    used = np.zeros(G, bool)
    out: list[list[tuple[float, bool]]] = [[] for _ in range(n_parts)]
    for m in np.argsort(-conf, kind="stable"):  # loop over predicted instances of one shape
        c = int(lab[m])
        if not 0 <= c < n_parts:
            continue
        cand = np.flatnonzero((gt_label == c) & ~used)
        tp = False
        if cand.size:
            j = cand[np.argmax(iou[m, cand])]
            if iou[m, j] > iou_thresh:
                used[j] = True
                tp = True
        out[c].append((float(conf[m]), tp))
    return out, n_gt


def average_precision_101(conf: np.ndarray, tp: np.ndarray, n_gt: int) -> float:
    """101-point interpolated AP with the prepended (recall 0, precision 1) point."""
    if n_gt <= 0:
        return float("nan")
    if len(conf) == 0:
        return 0.0
    order = np.argsort(-np.asarray(conf, dtype=np.float64), kind="stable")
    t = np.asarray(tp, bool)[order]
    ctp = np.cumsum(t)
    cfp = np.cumsum(~t)
    precision = np.r_[1.0, ctp / (ctp + cfp)]
    recall = np.r_[0.0, ctp / n_gt]
    # max precision at recall >= r: suffix maximum over the ranked list
    suffix = np.maximum.accumulate(precision[::-1])[::-1]
    ts = np.arange(101) / 100.0
    idx = np.searchsorted(recall, ts, side="left")  # recall is non-decreasing
    vals = np.where(idx < recall.size, suffix[np.minimum(idx, recall.size - 1)], 0.0)
    return float(vals.mean())


def instance_ap50(
    pred_instances_per_object: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    gt_per_object: Sequence[tuple[np.ndarray, np.ndarray]],
    n_parts: int,
    iou_thresh: float = 0.5,
) -> np.ndarray:
    """(K,) AP50 per part over the objects of one category; NaN for parts without GT.

    ``pred_instances_per_object[o]`` = (ins_point (N,), instance_label (M,),
    instance_confidence (M,)) (e.g. :class:`pipeline.partslip.Instances`);
    ``gt_per_object[o]`` = (sem (N,), ins (N,)).
    """
    if len(pred_instances_per_object) != len(gt_per_object):
        raise ValueError(f"{len(pred_instances_per_object)} predictions for {len(gt_per_object)} GT objects")
    confs: list[list[float]] = [[] for _ in range(n_parts)]
    tps: list[list[bool]] = [[] for _ in range(n_parts)]
    n_gt = np.zeros(n_parts, np.int64)
    for (ip, lab, conf), (sem, ins) in zip(pred_instances_per_object, gt_per_object):
        per_part, ng = _match_object(ip, lab, conf, sem, ins, n_parts, iou_thresh)
        n_gt += ng
        for c in range(n_parts):
            confs[c].extend(x[0] for x in per_part[c])
            tps[c].extend(x[1] for x in per_part[c])
    return np.array([average_precision_101(np.array(confs[c]), np.array(tps[c], bool), int(n_gt[c])) for c in range(n_parts)])


def category_map50(
    pred_instances_per_object: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    gt_per_object: Sequence[tuple[np.ndarray, np.ndarray]],
    n_parts: int,
) -> float:
    """Category mAP50: mean AP over parts with GT (NaN if no part has GT)."""
    ap = instance_ap50(pred_instances_per_object, gt_per_object, n_parts)
    return float(np.nanmean(ap)) if np.any(~np.isnan(ap)) else float("nan")
