"""Lift 2D box/mask predictions onto points and superpoints (SPEC §6.1, §7.1-7.3).

The official code keeps a dense (|s|, K, B) float64 tensor per superpoint. Here the
membership I_b(p) = 1 is a sparse COO list (`point`, `box`) and everything else is a
small per-superpoint array, so an object of 20k points and 100 boxes lifts in
milliseconds and the downstream vote is a pair of scatter operations (SPEC §10).

Two membership rules share one implementation:

* ``mode="mask"`` (PartSTAD, §7.1): p is visible in view(b), |s(p) ∩ vis_view(b)| > 1,
  2D-IoU(bb_s, box_b) > 1e-6 and the mask of b contains the pixel under p
  (row = floor(v), col = floor(u), clamped to the image).
* ``mode="box"`` (PartSLIP, §6.1): the same, but "strictly inside the box"
  (x1 < u < x2, y1 < v < y2) replaces the mask test, the visible-count test is > 0, and
  the IoU gate is ``IoU >= 1e-6`` (PartSLIP records ratio 0 only when IoU < 1e-6).

``min_visible`` is an *exclusive* threshold on |s ∩ vis_v|: the superpoint takes part in
view v only if it has more than ``min_visible`` visible points there. It defaults to 1
in mask mode (> 1, PartSTAD) and 0 in box mode (> 0, PartSLIP). Pass it explicitly for
ablations (e.g. ``mode="box", min_visible=1`` = PartSTAD "weights without masks").
Single-point views still count in V_s whatever the threshold (SPEC §11.7).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from pipeline.boxes import box_iou
from pipeline.errors import BadInputError


@dataclass(frozen=True)
class LiftParams:
    """The lift settings: their one definition (``stages.config.LiftConfig`` is derived from
    these fields, and the functions below default to them)."""

    iou_gate: float = 1e-6
    """SPEC §6.1/§7.1: a box counts for a superpoint only when the 2D IoU of the superpoint's visible extent and the box exceeds this (box mode: is at least this)."""
    whole_object_thresh: float = 0.98
    """PartSLIP's whole-object box filter (baseline only): a box is dropped when the fraction of all the object's projected points, occluded ones included, strictly inside it is at least this."""


@dataclass
class LiftedObject:
    """Sparse box→point membership plus the per-superpoint arrays every method needs.

    Shapes: N points, S superpoints, V views, B boxes, K parts, nnz memberships,
    E (superpoint, box) pairs with at least one member point.
    """

    point: np.ndarray  #: (nnz,) int32 point index of each membership I_b(p) = 1
    box: np.ndarray  #: (nnz,) int32 box index of each membership; sorted by (box, point)
    sp: np.ndarray  #: (N,) int32 superpoint id of every point
    sp_size: np.ndarray  #: (S,) int32 n_s = |s| (visible or not)
    vis_count: np.ndarray  #: (S,) int32 V_s = Σ_v |s ∩ vis_v| (single-point views included)
    sp_view_count: np.ndarray  #: (S, V) int32 |s ∩ vis_v|
    valid: np.ndarray  #: (S,) bool: some point of s is a member of some box and V_s > 0 (§7.2)
    gt: np.ndarray | None  #: (S, K+1) float32 GT fractions, column 0 = "no part" (§7.3)
    box_view: np.ndarray  #: (B,) int16 view of each box
    box_label: np.ndarray  #: (B,) int16 0-based part of each box
    spbox_sp: np.ndarray  #: (E,) int32 superpoint of each (s, b) pair with members
    spbox_box: np.ndarray  #: (E,) int32 box of each pair
    spbox_count: np.ndarray  #: (E,) int32 |{p ∈ s ∩ vis_view(b) : I_b(p) = 1}|
    n_parts: int  #: K
    mode: str  #: "mask" or "box"
    min_visible: int  #: exclusive visible-count threshold used for membership

    @property
    def n_points(self) -> int:
        return int(self.sp.shape[0])

    @property
    def n_sp(self) -> int:
        return int(self.sp_size.shape[0])

    @property
    def n_views(self) -> int:
        return int(self.sp_view_count.shape[1])

    @property
    def n_boxes(self) -> int:
        return int(self.box_view.shape[0])

    def ratio_matrix(self, boxes: np.ndarray | None = None) -> np.ndarray:
        """PartSLIP ratio lists (§6.1/§6.3) as a dense (S, len(boxes)) float64 matrix.

        ratio[s, j] = fraction of s ∩ vis_view(b_j) that is a member of b_j; 0 when the
        superpoint is visible there but gated out (IoU or visible-count test); -1 when
        s has no visible point in view(b_j). Column order follows ``boxes`` (default:
        all boxes in index order, i.e. view-major then score order).
        """
        if boxes is None:
            boxes = np.arange(self.n_boxes)
        boxes = np.asarray(boxes, dtype=np.int64)
        S = self.n_sp
        col = np.full(self.n_boxes, -1, dtype=np.int64)
        col[boxes] = np.arange(boxes.shape[0])
        counts = np.zeros((S, boxes.shape[0]), dtype=np.float64)
        sel = col[self.spbox_box] >= 0
        counts[self.spbox_sp[sel], col[self.spbox_box[sel]]] = self.spbox_count[sel]
        denom = self.sp_view_count[:, self.box_view[boxes].astype(np.int64)].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(denom > 0, counts / np.maximum(denom, 1.0), -1.0)
        return ratio


def strictly_inside(uv: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
    """(B, n) flags: point (u, v) lies strictly inside box b (open intervals, SPEC §11.21)."""
    u = uv[None, :, 0]
    v = uv[None, :, 1]
    return (xyxy[:, None, 0] < u) & (u < xyxy[:, None, 2]) & (xyxy[:, None, 1] < v) & (v < xyxy[:, None, 3])


def whole_object_valid(
    uv: np.ndarray, xyxy: np.ndarray, box_view: np.ndarray, thresh: float = LiftParams.whole_object_thresh
) -> np.ndarray:
    """PartSLIP's whole-object filter (§6.1 step 2): (B,) bool.

    A box is valid iff the fraction of **all** N projected points (occluded ones too)
    strictly inside it is < ``thresh``. Boxes around the whole object are dropped from
    the PartSLIP vote. PartSTAD does not use this filter (§11.6).
    """
    xyxy = np.asarray(xyxy, dtype=np.float64)
    box_view = np.asarray(box_view, dtype=np.int64)
    out = np.ones(xyxy.shape[0], dtype=bool)
    n = uv.shape[1]
    if n == 0:
        return out
    for v in np.unique(box_view):  # loop over views only
        bs = np.flatnonzero(box_view == v)
        frac = strictly_inside(np.asarray(uv[v], dtype=np.float64), xyxy[bs]).mean(axis=1)
        out[bs] = frac < thresh
    return out


def gt_fractions(sp: np.ndarray, sem: np.ndarray, n_sp: int, n_parts: int) -> np.ndarray:
    """(S, K+1) float32: column 0 = fraction of s with GT -1, column c+1 = fraction with part c."""
    sem = np.asarray(sem).astype(np.int64)
    if sem.shape != sp.shape:
        raise BadInputError(f"sem has shape {sem.shape}, expected {sp.shape}")
    if sem.size and (sem.min() < -1 or sem.max() >= n_parts):
        raise BadInputError(f"sem values must be in -1..{n_parts - 1}, got {sem.min()}..{sem.max()}")
    K1 = n_parts + 1
    counts = np.bincount(sp.astype(np.int64) * K1 + sem + 1, minlength=n_sp * K1).reshape(n_sp, K1)
    size = counts.sum(axis=1, keepdims=True)
    return (counts / np.maximum(size, 1)).astype(np.float32)


def superpoint_view_boxes(sp: np.ndarray, visible: np.ndarray, uv: np.ndarray, n_sp: int) -> tuple[np.ndarray, np.ndarray]:
    """Per (superpoint, view): visible count (S, V) and 2D bbox (S, V, 4) of visible points.

    Empty (s, v) cells get bbox (inf, inf, -inf, -inf) and count 0.
    """
    V, N = visible.shape
    vv, pp = np.nonzero(visible)
    key = sp[pp].astype(np.int64) * V + vv
    count = np.bincount(key, minlength=n_sp * V).reshape(n_sp, V).astype(np.int32)
    lo = np.full((n_sp * V, 2), np.inf)
    hi = np.full((n_sp * V, 2), -np.inf)
    if key.size:
        coords = np.asarray(uv[vv, pp], dtype=np.float64)
        order = np.argsort(key, kind="stable")
        ks = key[order]
        starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
        uk = ks[starts]
        lo[uk] = np.minimum.reduceat(coords[order], starts, axis=0)
        hi[uk] = np.maximum.reduceat(coords[order], starts, axis=0)
    bbox = np.concatenate([lo, hi], axis=1).reshape(n_sp, V, 4)
    return count, bbox


def _check_inputs(sp, visible, uv, xyxy, box_view, box_label, masks, n_parts):
    if sp.ndim != 1:
        raise BadInputError(f"sp must be (N,), got shape {sp.shape}")
    N = sp.shape[0]
    if visible.ndim != 2 or visible.shape[1] != N:
        raise BadInputError(f"visible must be (V, {N}), got shape {visible.shape}")
    V = visible.shape[0]
    if uv.shape != (V, N, 2):
        raise BadInputError(f"uv must be ({V}, {N}, 2), got shape {uv.shape}")
    B = xyxy.shape[0]
    if xyxy.shape != (B, 4) or box_view.shape != (B,) or box_label.shape != (B,):
        raise BadInputError(f"boxes disagree: xyxy {xyxy.shape}, view {box_view.shape}, label {box_label.shape}")
    if B and (box_view.min() < 0 or box_view.max() >= V):
        raise BadInputError(f"box views must be in 0..{V - 1}")
    if B and (box_label.min() < 0 or box_label.max() >= n_parts):
        raise BadInputError(f"box labels must be in 0..{n_parts - 1}")
    if sp.size and sp.min() < 0:
        raise BadInputError("superpoint ids must be >= 0")
    if masks is not None and (len(masks.shape) != 3 or masks.shape[0] != B):
        raise BadInputError(f"masks must be ({B}, H, W), got shape {masks.shape}")


def lift_object(
    sp: np.ndarray,
    visible: np.ndarray,
    uv: np.ndarray,
    xyxy: np.ndarray,
    box_view: np.ndarray,
    box_label: np.ndarray,
    masks: Any | None,
    mode: Literal["mask", "box"] = "mask",
    sem: np.ndarray | None = None,
    n_parts: int | None = None,
    min_visible: int | None = None,
    n_sp: int | None = None,
    iou_gate: float = LiftParams.iou_gate,
) -> LiftedObject:
    """Compute the membership I_b(p) and per-superpoint arrays of one object.

    Args:
        sp: (N,) superpoint id per point (0..S-1).
        visible: (V, N) bool visibility (point owns >= 1 pixel of pix2pt).
        uv: (V, N, 2) float pixel coordinates (column, row) of every point.
        xyxy, box_view, box_label: (B, 4), (B,), (B,) boxes of all views.
        masks: (B, H, W) bool masks (numpy, or anything indexable per box such as a
            Zarr array); required in mask mode, ignored in box mode.
        mode: "mask" (PartSTAD §7.1) or "box" (PartSLIP §6.1), see the module docstring.
        sem: optional (N,) GT part id (-1 none) → ``gt`` fractions (§7.3).
        n_parts: K (required; box labels and sem must be < K).
        min_visible: exclusive visible-count threshold; default 1 (mask) / 0 (box).
        n_sp: S if some trailing ids are unused; default ``sp.max() + 1``.
        iou_gate: a box counts for a superpoint only when the 2D IoU of the superpoint's
            visible extent and the box exceeds this (SPEC §6.1/§7.1, :class:`LiftParams`).
    """
    if mode not in ("mask", "box"):
        raise ValueError(f"mode must be 'mask' or 'box', got {mode!r}")
    if n_parts is None:
        raise ValueError("n_parts (K) is required")
    sp = np.asarray(sp).astype(np.int64)
    visible = np.asarray(visible, dtype=bool)
    uv = np.asarray(uv)
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    box_view = np.asarray(box_view).astype(np.int64).reshape(-1)
    box_label = np.asarray(box_label).astype(np.int64).reshape(-1)
    if mode == "mask" and masks is None:
        raise ValueError("mask mode needs masks")
    mask_src = masks if mode == "mask" else None  # not None exactly in mask mode
    _check_inputs(sp, visible, uv, xyxy, box_view, box_label, mask_src, n_parts)
    if min_visible is None:
        min_visible = 1 if mode == "mask" else 0
    V, N = visible.shape
    B = xyxy.shape[0]
    S = int(n_sp) if n_sp is not None else (int(sp.max()) + 1 if N else 0)
    if N and sp.max() >= S:
        raise BadInputError(f"superpoint id {sp.max()} >= n_sp {S}")

    sp_size = np.bincount(sp, minlength=S).astype(np.int32)
    count, bbox = superpoint_view_boxes(sp, visible, uv, S)
    vis_count = count.sum(axis=1).astype(np.int32)

    # Gate per (superpoint, box): enough visible points in view(b) and 2D IoU test.
    if B:
        iou = box_iou(bbox[:, box_view], xyxy[None])  # (S, B)
        iou_ok = iou >= iou_gate if mode == "box" else iou > iou_gate
        gate = (count[:, box_view] > min_visible) & iou_ok
    else:
        gate = np.zeros((S, 0), dtype=bool)

    if mask_src is not None:
        H, W = int(mask_src.shape[1]), int(mask_src.shape[2])
    pts_out: list[np.ndarray] = []
    box_out: list[np.ndarray] = []
    for v in range(V):  # loop over views only
        bs = np.flatnonzero(box_view == v)
        if bs.size == 0:
            continue
        pts = np.flatnonzero(visible[v])
        if pts.size == 0:
            continue
        g = gate[sp[pts]][:, bs].T  # (B_v, n_v)
        if not g.any():
            continue
        if mask_src is not None:
            uvp = np.asarray(uv[v, pts], dtype=np.float64)
            cols = np.clip(np.floor(uvp[:, 0]), 0, W - 1).astype(np.int64)
            rows = np.clip(np.floor(uvp[:, 1]), 0, H - 1).astype(np.int64)
            if isinstance(mask_src, np.ndarray):
                inside = mask_src[bs[:, None], rows[None, :], cols[None, :]].astype(bool)
            else:  # lazily indexable store: one box at a time
                inside = np.stack([np.asarray(mask_src[int(b)])[rows, cols] for b in bs]).astype(bool)
        else:
            inside = strictly_inside(np.asarray(uv[v, pts], dtype=np.float64), xyxy[bs])
        bi, pi = np.nonzero(g & inside)
        box_out.append(bs[bi])
        pts_out.append(pts[pi])
    point = np.concatenate(pts_out).astype(np.int64) if pts_out else np.zeros(0, np.int64)
    box = np.concatenate(box_out).astype(np.int64) if box_out else np.zeros(0, np.int64)
    order = np.lexsort((point, box))
    point, box = point[order], box[order]

    # (superpoint, box) member counts for the PartSLIP ratio lists.
    if point.size:
        key = sp[point] * max(B, 1) + box
        uk, cnt = np.unique(key, return_counts=True)
        spbox_sp, spbox_box = uk // max(B, 1), uk % max(B, 1)
    else:
        spbox_sp = spbox_box = cnt = np.zeros(0, np.int64)
    has_member = np.zeros(S, dtype=bool)
    has_member[spbox_sp] = True
    valid = has_member & (vis_count > 0)

    gt = gt_fractions(sp, sem, S, n_parts) if sem is not None else None
    return LiftedObject(
        point=point.astype(np.int32),
        box=box.astype(np.int32),
        sp=sp.astype(np.int32),
        sp_size=sp_size,
        vis_count=vis_count,
        sp_view_count=count,
        valid=valid,
        gt=gt,
        box_view=box_view.astype(np.int16),
        box_label=box_label.astype(np.int16),
        spbox_sp=spbox_sp.astype(np.int32),
        spbox_box=spbox_box.astype(np.int32),
        spbox_count=cnt.astype(np.int32),
        n_parts=int(n_parts),
        mode=mode,
        min_visible=int(min_visible),
    )
