"""SIMULATED part detector that sees only pixels (backend ``pixels``).

Why: without real detector weights the simulator is the only way to show what PartSTAD's box
weighting does, and a simulator whose features read the ground truth (``oracle``) lets a
network see "content does not match label" directly. This one keeps the ground truth only
where a detector's *proposals* would come from: boxes are placed by
:func:`pipeline.detect.proposals.propose_view` exactly as the oracle places them (true part
boxes with jitter, misses that grow as parts shrink, false positives, whole-object boxes).
What it says about each box is computed from the rendered RGB image and depth alone:

- the feature is a fixed random projection of the GT-free box descriptor
  (:mod:`pipeline.detect.pixel_features`, standardised as the classifier sees it), of the
  classifier's class probabilities and of the predicted label;
- label and score come from a part classifier fitted on the few-shot shapes' renders
  (:mod:`pipeline.detect.pixel_classifier`), as a detector fine-tuned on them would:
  label = the most probable part, score = ``score_threshold + (1 - score_threshold) * p(label)``
  (so every box passes the detector's threshold, GLIP-like); a box whose most probable class
  is background is dropped (``drop_background``).

So confusions follow visual similarity and scores are as (mis)calibrated as the classifier.
Permuting which part each ground-truth instance of the detected object belongs to changes
nothing here (tests/pipeline/detect/test_pixel_no_leak.py).

Randomness: the proposals use one generator per (object seed, view), as the oracle's do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from pipeline import portable as pm
from pipeline.boxes import box_iou_matrix

from .oracle_params import OracleDetectorParams
from .pixel_classifier import PixelClassifier, fit_classifier
from .pixel_features import DESCRIPTOR_DIM, box_descriptors, view_maps
from .pixel_params import PixelDetectorParams
from .proposals import propose_view
from .scene import instance_table, view_instances
from .types import Detections

#: standardised descriptors are clipped to this many standard deviations in the feature
_CLIP = 5.0


def feature_dim_in(max_parts: int) -> int:
    """Width of the projected vector: descriptor | class probabilities (max_parts + background) | label one-hot | bias."""
    return DESCRIPTOR_DIM + (max_parts + 1) + max_parts + 1


def feature_projection(max_parts: int, feat_dim: int, seed: int) -> np.ndarray:
    """The fixed (feature_dim_in, feat_dim) float64 projection (entries N(0, 1/feature_dim_in))."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x9123]))
    d = feature_dim_in(max_parts)
    return rng.standard_normal((d, int(feat_dim))) / np.sqrt(float(d))


def _check(proposal: OracleDetectorParams, n_parts: int) -> None:
    if n_parts < 1:
        raise ValueError("part_names is empty")
    if n_parts > proposal.max_parts:
        raise ValueError(f"{n_parts} parts exceed OracleDetectorParams.max_parts={proposal.max_parts}")


def _view_rng(seed: int, view: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(view)]))


def training_samples(
    rgb: np.ndarray,
    depth: np.ndarray,
    pix2pt: np.ndarray,
    sem: np.ndarray,
    ins: np.ndarray,
    n_parts: int,
    proposal: OracleDetectorParams | None = None,
    params: PixelDetectorParams | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Classifier examples of one few-shot object: (descriptors (n, D), classes (n,) in 0..K).

    Per view: every ground-truth part box (its part), the proposals the detector would make on
    this object (same seed as detection), and ``background_per_view`` random boxes inside the
    silhouette; a proposal or random box is an example of the part whose GT box it overlaps
    with IoU >= ``match_iou`` (the best one), else of background (class K).
    """
    prop_prm = proposal or OracleDetectorParams()
    prm = params or PixelDetectorParams()
    _check(prop_prm, n_parts)
    V, H, W = np.shape(pix2pt)
    point_inst, inst_label = instance_table(sem, ins)
    xs, ys = [], []
    fprm = prm.feature_params()
    for v in range(V):
        vi = view_instances(pix2pt[v], point_inst, inst_label)
        if vi.sil_area == 0:
            continue
        gt = vi.xyxy.astype(np.float64)
        big = ((gt[:, 2] - gt[:, 0]) >= prop_prm.min_box_px) & ((gt[:, 3] - gt[:, 1]) >= prop_prm.min_box_px)
        prop = propose_view(_view_rng(seed, v), vi, prop_prm, n_parts, H, W)
        extra = random_boxes(
            np.random.default_rng(np.random.SeedSequence([int(seed), int(v), 0xB6])),
            vi.fg,
            vi.sil_xyxy,
            prm.background_per_view,
            prop_prm.fp_size,
            H,
            W,
        )
        cand = np.concatenate([prop.xyxy[prop.ok], extra]).reshape(-1, 4)
        cls = np.full(cand.shape[0], n_parts, np.int64)
        if gt.shape[0] and cand.shape[0]:
            iou = box_iou_matrix(cand, gt)
            best = np.argmax(iou, axis=1)
            hit = iou[np.arange(cand.shape[0]), best] >= prm.match_iou
            cls = np.where(hit, vi.label[best].astype(np.int64), n_parts)
        boxes = np.concatenate([gt[big], cand]).reshape(-1, 4)
        labels = np.concatenate([vi.label[big].astype(np.int64), cls])
        if boxes.shape[0]:
            xs.append(box_descriptors(view_maps(rgb[v], depth[v], fprm), boxes, fprm))
            ys.append(labels)
    if not xs:
        return np.zeros((0, DESCRIPTOR_DIM)), np.zeros(0, np.int64)
    return np.concatenate(xs), np.concatenate(ys)


def random_boxes(
    rng: np.random.Generator, fg: np.ndarray, sil_xyxy: np.ndarray, n: int, size: tuple[float, float], height: int, width: int
) -> np.ndarray:
    """``n`` boxes centred on random foreground pixels, sides a uniform fraction of the silhouette's."""
    fr, fc = np.nonzero(fg)
    if n <= 0 or fr.size == 0:
        return np.zeros((0, 4))
    sx0, sy0, sx1, sy1 = np.asarray(sil_xyxy, np.float64)
    pick = rng.integers(0, fr.shape[0], size=n)
    cx = fc[pick] + rng.random(n)
    cy = fr[pick] + rng.random(n)
    bw = rng.uniform(size[0], size[1], n) * (sx1 - sx0)
    bh = rng.uniform(size[0], size[1], n) * (sy1 - sy0)
    out = np.stack(
        [np.maximum(cx - bw / 2, sx0), np.maximum(cy - bh / 2, sy0), np.minimum(cx + bw / 2, sx1), np.minimum(cy + bh / 2, sy1)], 1
    )
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height)
    return out


def fit_fewshot_classifier(
    objects: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]],
    n_parts: int,
    proposal: OracleDetectorParams | None = None,
    params: PixelDetectorParams | None = None,
) -> PixelClassifier:
    """Fit the part classifier on few-shot objects, each (rgb, depth, pix2pt, sem, ins, seed), in the given order."""
    prm = params or PixelDetectorParams()
    xs, ys = [], []
    for rgb, depth, pix2pt, sem, ins, seed in objects:
        x, y = training_samples(rgb, depth, pix2pt, sem, ins, n_parts, proposal, prm, seed)
        xs.append(x)
        ys.append(y)
    x = np.concatenate(xs) if xs else np.zeros((0, DESCRIPTOR_DIM))
    y = np.concatenate(ys) if ys else np.zeros(0, np.int64)
    if x.shape[0] == 0:
        raise ValueError("the few-shot objects show no part boxes to fit the pixels detector's classifier on")
    return fit_classifier(x, y, n_parts, prm.classifier_params())


@dataclass
class PixelDiagnostics:
    """Ground truth behind each kept box (for tests and benchmarks; never used for the output)."""

    kind: list[np.ndarray] = field(default_factory=list)  # per view (n,) int8 proposal kind
    true_label: list[np.ndarray] = field(default_factory=list)  # per view (n,) int16, -1 for FP / whole object


class PixelDetector:
    """SIMULATED detector for one object: GT-placed proposals, pixel-read features/labels/scores.

    rgb (V,H,W,3) uint8 and depth (V,H,W) (0 = background) are the renders; pix2pt, sem and
    ins place the proposals only.
    """

    simulated = True

    def __init__(
        self,
        rgb: np.ndarray,
        depth: np.ndarray,
        pix2pt: np.ndarray,
        sem: np.ndarray,
        ins: np.ndarray,
        classifier: PixelClassifier,
        proposal: OracleDetectorParams | None = None,
        params: PixelDetectorParams | None = None,
        seed: int = 0,
        score_threshold: float = 0.5,
    ):
        self.rgb, self.depth, self.pix2pt = np.asarray(rgb), np.asarray(depth), np.asarray(pix2pt)
        if self.pix2pt.ndim != 3 or self.rgb.shape[:3] != self.pix2pt.shape or self.depth.shape != self.pix2pt.shape:
            raise ValueError(f"rgb {self.rgb.shape}, depth {self.depth.shape} and pix2pt {self.pix2pt.shape} do not match")
        self.clf = classifier
        self.proposal = proposal or OracleDetectorParams()
        self.params = params or PixelDetectorParams()
        self.seed = int(seed)
        self.score_threshold = float(score_threshold)
        self.point_inst, self.inst_label = instance_table(sem, ins)
        self._proj = feature_projection(self.proposal.max_parts, self.proposal.feat_dim, self.params.feat_seed)
        self.diagnostics = PixelDiagnostics()

    @property
    def feat_dim(self) -> int:
        return self.proposal.feat_dim

    def detect_view(self, image: np.ndarray | None, part_names: Sequence[str], view: int):
        """Boxes of one view; ``image`` (if given) must be this view's render."""
        K = len(part_names)
        _check(self.proposal, K)
        if K != self.clf.n_parts:
            raise ValueError(f"the classifier knows {self.clf.n_parts} parts, part_names has {K}")
        V, H, W = self.pix2pt.shape
        rgb = self.rgb[view] if image is None else np.asarray(image)
        if rgb.shape[:2] != (H, W):
            raise ValueError(f"image {rgb.shape[:2]} does not match pix2pt {(H, W)}")
        vi = view_instances(self.pix2pt[view], self.point_inst, self.inst_label)
        prop = propose_view(_view_rng(self.seed, view), vi, self.proposal, K, H, W)
        keep = np.flatnonzero(prop.ok)
        xyxy = prop.xyxy[keep]
        fprm = self.params.feature_params()
        desc = box_descriptors(view_maps(rgb, self.depth[view], fprm), xyxy, fprm)
        proba = self.clf.proba(desc)
        part_p = proba[:, :K]
        label = np.argmax(part_p, axis=1) if K else np.zeros(0, np.int64)
        p_label = part_p[np.arange(label.shape[0]), label]
        if self.params.drop_background:
            is_part = p_label >= proba[:, K]
            keep, xyxy, desc, proba, label, p_label = (
                keep[is_part],
                xyxy[is_part],
                desc[is_part],
                proba[is_part],
                label[is_part],
                p_label[is_part],
            )
        thr = self.score_threshold
        score = thr + (1.0 - thr) * np.maximum(p_label, 1e-3)
        feat = pm.matmul(self._describe(desc, proba, label, K), self._proj)
        order = np.argsort(-score, kind="stable")[: self.proposal.max_per_view]
        self.diagnostics.kind.append(prop.kind[keep][order])
        self.diagnostics.true_label.append(prop.true_label[keep][order])
        return (
            xyxy[order].astype(np.float32),
            label[order].astype(np.int16),
            score[order].astype(np.float32),
            feat[order].astype(np.float32),
        )

    def _describe(self, desc: np.ndarray, proba: np.ndarray, label: np.ndarray, K: int) -> np.ndarray:
        B = desc.shape[0]
        mp = self.proposal.max_parts
        full = np.zeros((B, feature_dim_in(mp)))
        std = self.clf.standardised(desc)
        full[:, :DESCRIPTOR_DIM] = np.clip(std, -_CLIP, _CLIP)
        full[:, DESCRIPTOR_DIM : DESCRIPTOR_DIM + K] = 2.0 * proba[:, :K]
        full[:, DESCRIPTOR_DIM + mp] = 2.0 * proba[:, K]  # background probability
        o = DESCRIPTOR_DIM + mp + 1
        full[np.arange(B), o + label] = 2.0
        full[:, -1] = 1.0
        return full


def pixel_detect(
    rgb: np.ndarray,
    depth: np.ndarray,
    pix2pt: np.ndarray,
    sem: np.ndarray,
    ins: np.ndarray,
    part_names: Sequence[str],
    classifier: PixelClassifier,
    proposal: OracleDetectorParams | None = None,
    params: PixelDetectorParams | None = None,
    seed: int = 0,
    score_threshold: float = 0.5,
) -> Detections:
    """SIMULATED detections of one object (all views) from its renders (see the module docstring)."""
    det = PixelDetector(rgb, depth, pix2pt, sem, ins, classifier, proposal, params, seed, score_threshold)
    per_view = [det.detect_view(None, part_names, v) for v in range(det.pix2pt.shape[0])]
    return Detections.concat(per_view, det.feat_dim, simulated=True)
