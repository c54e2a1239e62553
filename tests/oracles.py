"""Slow, literal transcriptions of the SPEC formulas, used **only for verification**.

Every function here loops over superpoints, views, boxes (and points where the formula
does) exactly as SPEC §6.1, §6.3, §7.1, §7.7 and §7.8 are written, with no attempt at
speed. The vectorised modules (:mod:`pipeline.lift`, :mod:`pipeline.score`,
:mod:`pipeline.loss`, :mod:`pipeline.partslip`) are tested against them, and
``benchmarks/bench_method.py`` measures the speed-up over them. Never call these from
the pipeline itself.

:func:`synthetic_scene` makes random but geometrically coherent objects (points on a
sphere, Voronoi superpoints and parts, orthographic views, boxes and dilated masks around
the parts' projections, some wrong boxes) for the tests and the benchmark.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


# ----------------------------------------------------------------------------- helpers
def ref_iou(a, b) -> float:
    """IoU of two xyxy boxes with python floats (0 when the union is empty)."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def _bbox2d(uv_pts) -> tuple[float, float, float, float]:
    us = [float(p[0]) for p in uv_pts]
    vs = [float(p[1]) for p in uv_pts]
    return (min(us), min(vs), max(us), max(vs))


def _inside(u: float, v: float, b) -> bool:
    return float(b[0]) < u < float(b[2]) and float(b[1]) < v < float(b[3])


# ------------------------------------------------------------------------- §7.1 / §6.1
def ref_membership(sp, visible, uv, xyxy, box_view, masks, mode="mask", min_visible=None) -> set[tuple[int, int]]:
    """§7.1 literally: the set of (p, b) with I_b(p) = 1 (mode "box": strictly inside, §6.1)."""
    if min_visible is None:
        min_visible = 1 if mode == "mask" else 0
    V, N = visible.shape
    S = int(sp.max()) + 1 if N else 0
    out: set[tuple[int, int]] = set()
    for s in range(S):
        members = [p for p in range(N) if sp[p] == s]
        for v in range(V):
            P = [p for p in members if visible[v, p]]
            if len(P) <= min_visible:
                continue
            bb = _bbox2d([uv[v, p] for p in P])
            for b in range(len(box_view)):
                if box_view[b] != v:
                    continue
                iou = ref_iou(bb, [float(x) for x in xyxy[b]])
                if not (iou >= 1e-6 if mode == "box" else iou > 1e-6):
                    continue
                for p in P:
                    u, vv = float(uv[v, p, 0]), float(uv[v, p, 1])
                    if mode == "mask":
                        H, W = masks.shape[1], masks.shape[2]
                        r = min(max(int(math.floor(vv)), 0), H - 1)
                        c = min(max(int(math.floor(u)), 0), W - 1)
                        hit = bool(masks[b, r, c])
                    else:
                        hit = _inside(u, vv, xyxy[b])
                    if hit:
                        out.add((p, b))
    return out


def ref_whole_object_valid(uv, xyxy, box_view, thresh=0.98) -> np.ndarray:
    """§6.1 step 2 literally: fraction of all projected points strictly inside < thresh."""
    N = uv.shape[1]
    out = np.zeros(len(box_view), dtype=bool)
    for b in range(len(box_view)):
        v = int(box_view[b])
        n_in = sum(_inside(float(uv[v, p, 0]), float(uv[v, p, 1]), xyxy[b]) for p in range(N))
        out[b] = n_in / N < thresh
    return out


def ref_partslip_scores(sp, visible, uv, xyxy, box_view, box_label, box_valid, n_parts):
    """§6.1 literally. Returns (score (S, K) float64, ratios: dict c -> list of S lists).

    score[s, c] = COV[c, s] / (VIS[s] + 1e-6) (0 where VIS = 0); ratio lists are in
    view-major, box order, over the valid boxes of category c.
    """
    V, N = visible.shape
    S = int(sp.max()) + 1
    K = n_parts
    VIS = np.zeros(S)
    COV = np.zeros((K, S))
    ratios = {c: [[] for _ in range(S)] for c in range(K)}
    for v in range(V):
        for s in range(S):
            P = [p for p in range(N) if sp[p] == s and visible[v, p]]
            VIS[s] += len(P)
            in_c = {c: [False] * len(P) for c in range(K)}
            bb = _bbox2d([uv[v, p] for p in P]) if P else None
            for b in range(len(box_view)):
                if box_view[b] != v or not box_valid[b]:
                    continue
                c = int(box_label[b])
                if not P:
                    ratios[c][s].append(-1.0)
                    continue
                if ref_iou(bb, [float(x) for x in xyxy[b]]) < 1e-6:
                    ratios[c][s].append(0.0)
                    continue
                flags = [_inside(float(uv[v, p, 0]), float(uv[v, p, 1]), xyxy[b]) for p in P]
                in_c[c] = [a or f for a, f in zip(in_c[c], flags)]
                ratios[c][s].append(sum(flags) / len(P))
            for c in range(K):
                COV[c, s] += sum(in_c[c])
    score = np.where(VIS[None] > 0, COV / (VIS[None] + 1e-6), 0.0)
    return score.T, ratios


def ref_threshold_labels(scores, small_flags, thresh) -> np.ndarray:
    """§6.2 / §7.11 label rule, one superpoint at a time."""
    S, K = scores.shape
    out = np.full(S, -1, dtype=np.int64)
    for s in range(S):
        if K == 0 or max(scores[s]) < thresh:
            continue
        chosen = -1
        for c in range(K - 1, -1, -1):
            if scores[s, c] >= thresh and small_flags[c]:
                chosen = c
                break
        if chosen < 0:
            chosen = int(np.argmax(scores[s]))
        out[s] = chosen
    return out


# ----------------------------------------------------------------------------- §7.7
def ref_scores(w, member, box_view, box_label, sp, vis_count, n_views, n_parts, z_null) -> torch.Tensor:
    """§7.7 with loops over superpoints, parts, views and boxes (points of s as a vector).

    ``member`` is the dense (B, N) bool I_b(p). Differentiable in ``w`` and ``z_null``.
    """
    S = len(vis_count)
    B = len(box_view)
    boxes_vc = {(v, c): [b for b in range(B) if box_view[b] == v and box_label[b] == c] for v in range(n_views) for c in range(n_parts)}
    member_t = torch.as_tensor(np.asarray(member, dtype=np.float64), dtype=w.dtype)
    z_null = torch.as_tensor(z_null, dtype=w.dtype)
    rows = []
    for s in range(S):
        pts = torch.as_tensor(np.flatnonzero(sp == s))
        row = [z_null]
        for c in range(n_parts):
            total = w.new_zeros(())
            for v in range(n_views):
                m = w.new_zeros(len(pts))
                for b in boxes_vc[(v, c)]:
                    m = torch.maximum(m, w[b] * member_t[b, pts])
                total = total + m.sum()
            row.append(total / (float(vis_count[s]) + 1e-6))
        rows.append(torch.stack(row))
    return torch.stack(rows) if rows else w.new_zeros((0, n_parts + 1))


# ----------------------------------------------------------------------------- §7.8
def ref_riou_loss(P, gt, n_s, valid, absent_parts="paper") -> torch.Tensor:
    """§7.8 with loops over parts and superpoints."""
    S, K1 = P.shape
    terms = []
    for k in range(1, K1):
        inter = P.new_zeros(())
        sum_g = P.new_zeros(())
        sum_p = P.new_zeros(())
        for s in range(S):
            if not bool(valid[s]):
                continue
            n = float(n_s[s])
            inter = inter + n * float(gt[s, k]) * P[s, k]
            sum_g = sum_g + n * abs(float(gt[s, k]))
            sum_p = sum_p + n * P[s, k].abs()
        riou = inter / (sum_g + sum_p - inter) if float(sum_p.detach()) != 0 else P.new_zeros(())
        if absent_parts == "skip" and float(sum_g) == 0:
            continue
        terms.append(1.0 - riou)
    if not terms:
        return P.sum() * 0.0
    return torch.stack(terms).mean()


# ----------------------------------------------------------------------------- §6.3
def ref_group_instances(
    labels_sp,
    sp,
    sp_size,
    xyz,
    uv,
    visible,
    xyxy,
    box_view,
    box_label,
    ratios,
    sp_conf=None,
    conf_iou=False,
    adj_gap=0.02,
    dis_thresh=0.2,
    max_size_ratio=100.0,
    filter_iou=0.5,
):
    """§6.3 literally: union-find over adjacent same-label superpoints, then the 2D filter.

    ``ratios[j][s]`` is superpoint s's ratio list for category j (as returned by
    :func:`ref_partslip_scores`). Returns (ins_point, instance_label, instance_confidence)
    with the conventions of :func:`pipeline.partslip.group_instances`.
    """
    S = len(labels_sp)
    N = len(sp)
    V = visible.shape[0]
    K = len(ratios)
    pts_of = [[p for p in range(N) if sp[p] == s] for s in range(S)]
    lo = [[min(xyz[p][a] for p in pts_of[s]) if pts_of[s] else math.inf for a in range(3)] for s in range(S)]
    hi = [[max(xyz[p][a] for p in pts_of[s]) if pts_of[s] else -math.inf for a in range(3)] for s in range(S)]

    def gap(i, k):
        a = max(lo[i][x] - hi[k][x] for x in range(3))
        b = max(lo[k][x] - hi[i][x] for x in range(3))
        return max(a, b)

    parent = list(range(S))

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    ins_point = np.full(N, -1, dtype=np.int64)
    inst_label, inst_conf = [], []
    for j in range(K):
        nodes = [s for s in range(S) if labels_sp[s] == j]
        for i in nodes:
            for k in nodes:
                if k >= i or not gap(i, k) < adj_gap:
                    continue
                ri, rk = ratios[j][i], ratios[j][k]
                mask = [a > -1 and b > -1 for a, b in zip(ri, rk)]
                si = sum(a for a, m in zip(ri, mask) if m)
                sk = sum(b for b, m in zip(rk, mask) if m)
                if not any(mask) or max(si, sk) < 1e-3:
                    dis = 1.0
                else:
                    dis = sum(abs(a - b) for a, b, m in zip(ri, rk, mask) if m) / max(si, sk)
                size_ratio = max(sp_size[i], sp_size[k]) / min(sp_size[i], sp_size[k])
                if dis < dis_thresh and size_ratio < max_size_ratio:
                    ra, rb = find(i), find(k)
                    if ra != rb:
                        parent[max(ra, rb)] = min(ra, rb)
        groups: dict[int, list[int]] = {}
        for s in nodes:
            groups.setdefault(find(s), []).append(s)
        for root in sorted(groups, key=lambda r: min(groups[r])):
            members = groups[root]
            pts = [p for s in members for p in pts_of[s]]
            best = 0.0
            keep = False
            for v in range(V):
                vis_pts = [p for p in pts if visible[v, p]]
                if not vis_pts:
                    continue
                bb = _bbox2d([uv[v, p] for p in vis_pts])
                for b in range(len(box_view)):
                    if box_view[b] == v and box_label[b] == j:
                        iou = ref_iou(bb, [float(x) for x in xyxy[b]])
                        if iou > filter_iou:
                            keep = True
                        best = max(best, iou)
            if not keep:
                continue
            if sp_conf is None:
                conf = 1.0
            else:
                conf = sum(float(sp_conf[s]) * sp_size[s] for s in members) / sum(sp_size[s] for s in members)
            if conf_iou:
                conf *= best
            for p in pts:
                ins_point[p] = len(inst_label)
            inst_label.append(j)
            inst_conf.append(conf)
    return ins_point, np.array(inst_label, dtype=np.int64), np.array(inst_conf, dtype=np.float64)


# ----------------------------------------------------------------------------- scenes
@dataclass
class Scene:
    """One synthetic object with every array the method consumes (CONTRIBUTING layout)."""

    xyz: np.ndarray  # (N, 3) f32
    sp: np.ndarray  # (N,) int32
    sem: np.ndarray  # (N,) int16
    ins: np.ndarray  # (N,) int32
    uv: np.ndarray  # (V, N, 2) f32
    visible: np.ndarray  # (V, N) bool
    view_dirs: np.ndarray  # (V, 3) f32
    xyxy: np.ndarray  # (B, 4) f32
    box_view: np.ndarray  # (B,) int16
    box_label: np.ndarray  # (B,) int16
    wrong: np.ndarray  # (B,) bool: the box was deliberately mislabelled or misplaced
    feat: np.ndarray  # (B, D) f32
    masks: np.ndarray  # (B, H, W) bool
    n_parts: int
    H: int
    W: int


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def synthetic_scene(
    seed: int = 0,
    n_points: int = 2000,
    n_sp: int = 40,
    n_views: int = 10,
    n_parts: int = 3,
    boxes_per_view: int = 5,
    H: int = 64,
    W: int = 64,
    feat_dim: int = 8,
    wrong_frac: float = 0.2,
    unlabeled_frac: float = 0.15,
    dilate: int = 1,
    drop_visible: float = 0.3,
    wrong_kind: str = "mixed",
) -> Scene:
    """Random coherent object: a sphere split into Voronoi superpoints grouped into parts.

    Each view is a random orthographic camera; the front hemisphere is visible with
    random drop-outs. Boxes tightly enclose a part's visible projection (jittered); a
    ``wrong_frac`` share of them get a wrong label (``wrong_kind="label"``), a wrong place
    (``"place"``) or either (``"mixed"``), and feature channel 0 reveals it (1 = wrong). Masks paint the box's target points, dilated by ``dilate``
    pixels and clipped to the box. Part -1 = the unlabeled Voronoi cells.
    """
    rng = np.random.default_rng(seed)
    xyz = rng.normal(size=(n_points, 3))
    xyz /= np.linalg.norm(xyz, axis=1, keepdims=True)
    seeds = rng.normal(size=(n_sp, 3))
    seeds /= np.linalg.norm(seeds, axis=1, keepdims=True)
    sp = np.argmax(xyz @ seeds.T, axis=1)
    _, sp = np.unique(sp, return_inverse=True)  # contiguous ids
    S = int(sp.max()) + 1
    sp_centre = np.stack([xyz[sp == s].mean(0) for s in range(S)])
    # parts (and instances): each superpoint goes to the nearest of 2K centres (2 instances per part)
    centres = rng.normal(size=(2 * n_parts, 3))
    inst_of_sp = np.argmax(sp_centre @ centres.T, axis=1)
    part_of_inst = np.arange(2 * n_parts) % n_parts
    sem_sp = part_of_inst[inst_of_sp]
    unl = rng.random(S) < unlabeled_frac
    sem_sp = np.where(unl, -1, sem_sp)
    sem = sem_sp[sp].astype(np.int16)
    ins = np.where(sem >= 0, inst_of_sp[sp], -1).astype(np.int32)

    uv = np.zeros((n_views, n_points, 2), np.float32)
    visible = np.zeros((n_views, n_points), bool)
    dirs = np.zeros((n_views, 3), np.float32)
    scale = 0.45 * min(H, W)
    for v in range(n_views):
        R = _rotation(rng)
        cam = xyz @ R.T
        uv[v, :, 0] = W / 2 + scale * cam[:, 0]
        uv[v, :, 1] = H / 2 - scale * cam[:, 1]
        visible[v] = (cam[:, 2] > 0.05) & (rng.random(n_points) > drop_visible)
        dirs[v] = -R[2]  # camera looks along -z of its frame towards the origin
    xyxy, bview, blabel, wrong, masks = [], [], [], [], []
    for v in range(n_views):
        for _ in range(boxes_per_view):
            inst = rng.integers(2 * n_parts)
            target = visible[v] & (ins == inst)
            is_wrong = rng.random() < wrong_frac
            label = part_of_inst[inst]
            wrong_label = wrong_kind == "label" or (wrong_kind == "mixed" and rng.random() < 0.5)
            if is_wrong and n_parts > 1 and wrong_label:
                label = (label + rng.integers(1, n_parts)) % n_parts
            elif is_wrong:
                target = visible[v] & (ins == (inst + 1) % (2 * n_parts))
            if target.sum() < 2:
                continue
            pu = uv[v, target]
            x1, y1 = pu.min(0) - rng.uniform(0, 2, 2)
            x2, y2 = pu.max(0) + rng.uniform(0, 2, 2)
            m = np.zeros((H, W), bool)
            r = np.clip(np.floor(pu[:, 1]).astype(int), 0, H - 1)
            c = np.clip(np.floor(pu[:, 0]).astype(int), 0, W - 1)
            for dr in range(-dilate, dilate + 1):
                for dc in range(-dilate, dilate + 1):
                    m[np.clip(r + dr, 0, H - 1), np.clip(c + dc, 0, W - 1)] = True
            ys, xs = np.mgrid[0:H, 0:W]
            m &= (xs + 0.5 > x1) & (xs + 0.5 < x2) & (ys + 0.5 > y1) & (ys + 0.5 < y2)
            xyxy.append([x1, y1, x2, y2])
            bview.append(v)
            blabel.append(label)
            wrong.append(is_wrong)
            masks.append(m)
    B = len(xyxy)
    feat = rng.normal(size=(B, feat_dim)).astype(np.float32)
    wrong_arr = np.array(wrong, dtype=bool)
    if feat_dim:
        feat[:, 0] = wrong_arr
    return Scene(
        xyz=xyz.astype(np.float32),
        sp=sp.astype(np.int32),
        sem=sem,
        ins=ins,
        uv=uv,
        visible=visible,
        view_dirs=dirs,
        xyxy=np.array(xyxy, np.float32).reshape(B, 4),
        box_view=np.array(bview, np.int16),
        box_label=np.array(blabel, np.int16),
        wrong=wrong_arr,
        feat=feat,
        masks=np.array(masks, bool).reshape(B, H, W),
        n_parts=n_parts,
        H=H,
        W=W,
    )
