"""SIMULATED part detector that reads the ground truth: the *ground-truth oracle* (backend
``oracle``), kept for tests and for comparisons with the ``pixels`` backend
(:mod:`pipeline.detect.pixel_sim`), which says what it says about a box from the rendered
image alone.

It is not a model: each visible ground-truth part instance is "detected" with a probability
that falls for small parts, its box is jittered, its label is sometimes confused with another
part of the category (a coin flip, independent of appearance), and false positives and
whole-object boxes are added (the placement is :func:`pipeline.detect.proposals.propose_view`,
shared with the pixels backend). Every output says ``simulated=True``. Because its labels,
scores and features read the ground truth, a network can learn "content does not match label"
from them directly (benchmarks/probe_box_features.py measures how much).

What the box feature may know (the calibration of issue 11): the feature is a fixed random
projection of a descriptor plus Gaussian noise. The descriptor holds the box's predicted label,
its view, and box quality only through two partial, realistic channels: a noisy objectness
term (score-like) and the appearance of what the box really covers (the fraction of its pixels
on each ground-truth part label, on unlabelled surface and on background). No correctness flag
(GT IoU, false positive, confused label, whole-object box) enters it. The box geometry is not
in the feature either: PartSTAD already feeds it to the network through the positional
encoding. ``OracleDetectorParams.informativeness`` mixes both quality channels with random
values drawn independently of the box (0: the feature says nothing about quality).

Randomness: one generator per (object seed, view), so views are independent of call order
and the same seed gives identical output. The feature projection has its own run-level seed
(``OracleDetectorParams.feat_seed``), shared by all objects of a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline import portable as pm
from pipeline.boxes import box_iou_matrix as box_iou_np

from .oracle_params import OracleDetectorParams
from .proposals import propose_view
from .scene import ViewInstances, instance_table, view_instances
from .types import Detections


#: descriptor = label one-hot | view one-hot | 1 objectness | appearance (parts, unlabelled, background) | 1 bias
def descriptor_dim(params: OracleDetectorParams) -> int:
    return params.max_parts + params.max_views + 1 + (params.max_parts + 2) + 1


def box_appearance(label_map: np.ndarray, xyxy: np.ndarray, max_parts: int) -> np.ndarray:
    """(B, max_parts+2) float64: the fraction of each box's pixels (pixel centre inside the box)
    on each part label, on unlabelled surface (column max_parts) and on background (last).

    ``label_map`` (H,W) int: part label per pixel, -1 unlabelled surface, -2 background.
    Boxes without a pixel centre count as all background. Integral images: O(H·W·parts present).
    """
    H, W = label_map.shape
    n_ch = max_parts + 2
    ch = np.where(label_map >= 0, label_map, np.where(label_map == -1, max_parts, max_parts + 1))
    xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
    # pixel (r, c) has its centre (c + .5, r + .5): inside iff x0 <= c + .5 < x1
    c0 = np.clip(np.ceil(xyxy[:, 0] - 0.5), 0, W).astype(np.int64)
    c1 = np.clip(np.ceil(xyxy[:, 2] - 0.5), 0, W).astype(np.int64)
    r0 = np.clip(np.ceil(xyxy[:, 1] - 0.5), 0, H).astype(np.int64)
    r1 = np.clip(np.ceil(xyxy[:, 3] - 0.5), 0, H).astype(np.int64)
    c1, r1 = np.maximum(c1, c0), np.maximum(r1, r0)
    # One int32 integral image per channel present in this view (a few of max_parts + 2);
    # absent channels count 0 in every box.
    counts = np.zeros((xyxy.shape[0], n_ch), np.int64)
    integral = np.zeros((H + 1, W + 1), np.int32)
    for k in np.flatnonzero(np.bincount(ch.ravel(), minlength=n_ch)):
        integral[1:, 1:] = (ch == k).cumsum(0, dtype=np.int32).cumsum(1, dtype=np.int32)
        counts[:, k] = integral[r1, c1] - integral[r0, c1] - integral[r1, c0] + integral[r0, c0]
    tot = counts.sum(1, keepdims=True)
    out = np.zeros(counts.shape, np.float64)
    out[:, -1] = 1.0
    return np.where(tot > 0, counts / np.maximum(tot, 1), out)


def feature_projection(params: OracleDetectorParams) -> np.ndarray:
    """The fixed (descriptor_dim, feat_dim) float32 projection; depends only on feat_seed."""
    rng = np.random.default_rng(np.random.SeedSequence([params.feat_seed, 0x0F3A7]))
    return rng.standard_normal((descriptor_dim(params), params.feat_dim)).astype(np.float32)


@dataclass
class OracleDiagnostics:
    """Ground truth behind each simulated box, plus every detection opportunity.

    Box rows are aligned with the returned :class:`Detections` (same order).
    """

    instance: np.ndarray  # (B,) int32 matched GT instance, -1 for false positives / whole-object
    true_label: np.ndarray  # (B,) int16 label of that instance, -1 if none
    is_fp: np.ndarray  # (B,) bool
    is_confused: np.ndarray  # (B,) bool
    is_whole_object: np.ndarray  # (B,) bool
    iou_gt: np.ndarray  # (B,) float32 IoU with the GT instance box (FP: best same-label IoU)
    gt_xyxy: np.ndarray  # (B,4) float32 GT instance box, NaN for FP / whole-object
    # detection opportunities: one row per (view, visible GT instance)
    cand_view: np.ndarray  # (C,) int16
    cand_instance: np.ndarray  # (C,) int32
    cand_area_frac: np.ndarray  # (C,) float32
    cand_p: np.ndarray  # (C,) float32 detection probability used
    cand_detected: np.ndarray  # (C,) bool a box of this instance is in the output
    n_views_with_object: int = 0

    @staticmethod
    def concat(parts: Sequence[OracleDiagnostics]) -> OracleDiagnostics:
        if not parts:
            return _empty_diag()
        names = [f for f in OracleDiagnostics.__dataclass_fields__ if f != "n_views_with_object"]
        out = {n: np.concatenate([getattr(p, n) for p in parts]) for n in names}
        return OracleDiagnostics(**out, n_views_with_object=sum(p.n_views_with_object for p in parts))

    def miss_rate(self) -> float:
        return float(1.0 - self.cand_detected.mean()) if self.cand_detected.size else 0.0

    def confusion_rate(self) -> float:
        tp = ~self.is_fp & ~self.is_whole_object
        return float(self.is_confused[tp].mean()) if tp.any() else 0.0

    def fp_per_view(self) -> float:
        return float(self.is_fp.sum() / max(self.n_views_with_object, 1))


def _empty_diag() -> OracleDiagnostics:
    z = np.zeros(0)
    return OracleDiagnostics(
        instance=z.astype(np.int32),
        true_label=z.astype(np.int16),
        is_fp=z.astype(bool),
        is_confused=z.astype(bool),
        is_whole_object=z.astype(bool),
        iou_gt=z.astype(np.float32),
        gt_xyxy=np.zeros((0, 4), np.float32),
        cand_view=z.astype(np.int16),
        cand_instance=z.astype(np.int32),
        cand_area_frac=z.astype(np.float32),
        cand_p=z.astype(np.float32),
        cand_detected=z.astype(bool),
    )


class OracleDetector:
    """SIMULATED detector for one object, from its rendered ground truth.

    pix2pt (V,H,W) int32 (-1 background), sem (N,) part id or -1, ins (N,) instance id or -1.
    """

    simulated = True

    def __init__(
        self,
        pix2pt: np.ndarray,
        sem: np.ndarray,
        ins: np.ndarray,
        params: OracleDetectorParams | None = None,
        seed: int = 0,
    ):
        self.pix2pt = np.asarray(pix2pt)
        if self.pix2pt.ndim != 3:
            raise ValueError(f"pix2pt must be (V,H,W), got {self.pix2pt.shape}")
        self.params = params or OracleDetectorParams()
        self.seed = int(seed)
        self.point_inst, self.inst_label = instance_table(sem, ins)
        n = self.point_inst.shape[0]
        if self.pix2pt.size and int(self.pix2pt.max()) >= n:
            raise ValueError(f"pix2pt refers to point {int(self.pix2pt.max())} but there are {n} points")
        self._proj = feature_projection(self.params)
        self.diagnostics: dict[int, OracleDiagnostics] = {}

    @property
    def feat_dim(self) -> int:
        return self.params.feat_dim

    def view_instances(self, view: int) -> ViewInstances:
        return view_instances(self.pix2pt[view], self.point_inst, self.inst_label)

    def detect_view(self, image: np.ndarray | None, part_names: Sequence[str], view: int):
        """Simulated boxes of one view; ``image`` is only checked for its size."""
        prm = self.params
        V, H, W = self.pix2pt.shape
        if image is not None and tuple(np.shape(image)[:2]) != (H, W):
            raise ValueError(f"image {np.shape(image)[:2]} does not match pix2pt {(H, W)}")
        K = len(part_names)
        if K < 1:
            raise ValueError("part_names is empty")
        if K > prm.max_parts:
            raise ValueError(f"{K} parts exceed OracleDetectorParams.max_parts={prm.max_parts}")
        if view >= prm.max_views:
            raise ValueError(f"view {view} exceeds OracleDetectorParams.max_views={prm.max_views}")
        if self.inst_label.size and int(self.inst_label.max()) >= K:
            raise ValueError(f"ground-truth label {int(self.inst_label.max())} outside the {K} part names")
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, int(view)]))
        vi = self.view_instances(view)

        # 1. true positives, 2. false positives inside the silhouette, 3. whole-object box
        prop = propose_view(rng, vi, prm, K, H, W)
        xyxy, label, kind, inst, tlab, conf, gt, ok = (
            prop.xyxy,
            prop.label,
            prop.kind,
            prop.inst,
            prop.true_label,
            prop.confused,
            prop.gt_xyxy,
            prop.ok,
        )
        n_tp, area_frac, p = prop.n_tp, prop.area_frac, prop.p_detect

        # quality: IoU with the own GT box; FP/whole-object: best IoU with a GT box of its label
        iou = np.zeros(xyxy.shape[0])
        if n_tp:
            iou[:n_tp] = np.diag(box_iou_np(xyxy[:n_tp], gt[:n_tp]))
        if xyxy.shape[0] > n_tp and vi.inst.size:
            m = box_iou_np(xyxy[n_tp:], vi.xyxy)
            same = label[n_tp:, None] == vi.label[None, :].astype(np.int64)
            iou[n_tp:] = np.where(same, m, 0.0).max(1)
        q_base = iou * np.where(conf, prm.confused_confidence, 1.0)
        q = np.clip(q_base + prm.score_noise * rng.standard_normal(q_base.shape), 0.02, 1.0)
        score = prm.score_threshold + (1.0 - prm.score_threshold) * q

        # features: fixed projection of a descriptor, plus noise. Quality reaches the descriptor
        # only through two partial channels, each mixed with an independent random draw
        # (informativeness a). The draws happen for every a, so boxes and scores do not depend on a.
        B = xyxy.shape[0]
        a = float(prm.informativeness)
        objectness = np.clip(q_base + prm.objectness_noise * rng.standard_normal(B), 0.0, 1.0)
        label_map = np.where(
            vi.inst_map >= 0, self.inst_label[np.maximum(vi.inst_map, 0)] if self.inst_label.size else -1, np.where(vi.fg, -1, -2)
        )
        appearance = box_appearance(label_map, xyxy, prm.max_parts)
        obj_rand = rng.random(B)
        app_rand = np.zeros_like(appearance)
        cols = np.r_[np.arange(K), prm.max_parts, prm.max_parts + 1]
        app_rand[:, cols] = rng.dirichlet(np.ones(cols.size), size=B) if B else app_rand[:, cols]
        desc = np.zeros((B, descriptor_dim(prm)), np.float32)
        desc[np.arange(B), label] = 1.0
        v0 = prm.max_parts
        desc[:, v0 + view] = 1.0
        o0 = v0 + prm.max_views
        desc[:, o0] = a * objectness + (1.0 - a) * obj_rand
        a0 = o0 + 1
        desc[:, a0 : a0 + prm.max_parts + 2] = a * appearance + (1.0 - a) * app_rand
        desc[:, -1] = 1.0
        # float64 in a fixed order, rounded once: the same bits on every CPU (BLAS sgemm is not)
        feat = pm.matmul(desc, self._proj) + prm.feat_noise * rng.standard_normal((B, prm.feat_dim))

        # keep, sort by score, cap per view
        keep = np.flatnonzero(ok)
        keep = keep[np.argsort(-score[keep], kind="stable")][: prm.max_per_view]
        detected_inst = set(inst[keep][kind[keep] == 0].tolist())
        self.diagnostics[int(view)] = OracleDiagnostics(
            instance=inst[keep],
            true_label=tlab[keep],
            is_fp=kind[keep] == 1,
            is_confused=conf[keep],
            is_whole_object=kind[keep] == 2,
            iou_gt=iou[keep].astype(np.float32),
            gt_xyxy=gt[keep],
            cand_view=np.full(vi.inst.shape[0], view, np.int16),
            cand_instance=vi.inst.astype(np.int32),
            cand_area_frac=area_frac.astype(np.float32),
            cand_p=p.astype(np.float32),
            cand_detected=np.array([i in detected_inst for i in vi.inst.tolist()], bool),
            n_views_with_object=int(vi.sil_area > 0),
        )
        return (
            xyxy[keep].astype(np.float32),
            label[keep].astype(np.int16),
            score[keep].astype(np.float32),
            feat[keep].astype(np.float32),
        )


def oracle_detect(
    pix2pt: np.ndarray,
    sem: np.ndarray,
    ins: np.ndarray,
    part_names: Sequence[str],
    params: OracleDetectorParams | None = None,
    seed: int = 0,
) -> tuple[Detections, OracleDiagnostics]:
    """SIMULATED detections for one object (all views) and their ground-truth diagnostics."""
    det = OracleDetector(pix2pt, sem, ins, params, seed)
    per_view = [det.detect_view(None, part_names, v) for v in range(det.pix2pt.shape[0])]
    out = Detections.concat(per_view, det.feat_dim, simulated=True)
    diag = OracleDiagnostics.concat([det.diagnostics[v] for v in range(det.pix2pt.shape[0])])
    return out, diag
