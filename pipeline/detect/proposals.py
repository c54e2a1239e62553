"""Where the simulated detectors put their boxes: candidate placement from rendered geometry.

Why: a simulated detector needs proposals that behave like a real detector's (true part
boxes with jitter, misses that grow as parts shrink, false positives on the object, boxes
around the whole object). Both simulated backends share this placement: ``oracle`` (which
then reads labels, scores and features from the ground truth) and ``pixels`` (which
computes them from the rendered image alone). Only *where* boxes go uses the ground-truth
instances; the proposal's ``label`` is the oracle's noisy label (the true label, sometimes
confused with another part), which the ``pixels`` backend ignores.

Random draws happen in a fixed order from the caller's generator, so the oracle's outputs
depend only on its seed (and the pixels backend, drawing the same proposals from the same
seed, places the same boxes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline import portable as pm

from .oracle_params import OracleDetectorParams
from .scene import ViewInstances

#: proposal kinds
TRUE_POSITIVE, FALSE_POSITIVE, WHOLE_OBJECT = 0, 1, 2


@dataclass
class ViewProposals:
    """Candidate boxes of one view (before any score, sort or per-view cap)."""

    xyxy: np.ndarray  # (n,4) float64, clipped to the image
    label: np.ndarray  # (n,) int64 the oracle's noisy label (true label or a confusion; random for FP / whole object)
    kind: np.ndarray  # (n,) int8 TRUE_POSITIVE / FALSE_POSITIVE / WHOLE_OBJECT
    inst: np.ndarray  # (n,) int32 GT instance of a true positive, -1 otherwise
    true_label: np.ndarray  # (n,) int16 label of that instance, -1 otherwise
    confused: np.ndarray  # (n,) bool the oracle label differs from the true one
    gt_xyxy: np.ndarray  # (n,4) float32 GT box of a true positive, NaN otherwise
    ok: np.ndarray  # (n,) bool wide and tall enough (min_box_px) after clipping
    area_frac: np.ndarray  # (k,) float64 area fraction of each visible instance (detection opportunities)
    p_detect: np.ndarray  # (k,) float64 detection probability of each visible instance
    n_tp: int  # the first n_tp rows are true positives


def jitter_boxes(rng: np.random.Generator, xyxy: np.ndarray, jitter: float) -> np.ndarray:
    """Gaussian offsets of each edge (std = jitter x box width / height), edges re-sorted."""
    if xyxy.shape[0] == 0:
        return xyxy.astype(np.float64)
    w = xyxy[:, 2] - xyxy[:, 0]
    h = xyxy[:, 3] - xyxy[:, 1]
    scale = np.stack([w, h, w, h], 1) * jitter
    out = xyxy + rng.standard_normal(xyxy.shape) * scale
    x = np.sort(out[:, [0, 2]], axis=1)
    y = np.sort(out[:, [1, 3]], axis=1)
    return np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], 1)


def propose_view(
    rng: np.random.Generator, vi: ViewInstances, prm: OracleDetectorParams, n_parts: int, height: int, width: int
) -> ViewProposals:
    """Candidate boxes of one view from its visible ground-truth instances ``vi``.

    1. each visible instance is found with probability p_max (1 - exp(-area_frac / area_scale)),
       its box jittered, its oracle label confused with probability ``confusion``;
    2. Poisson(fp_rate) false positives inside the silhouette; 3. with probability
       ``whole_object_prob`` a jittered box around the whole silhouette.
    """
    K = int(n_parts)
    area_frac = vi.area / max(vi.sil_area, 1)
    p = prm.p_max * (1.0 - pm.exp(-area_frac / prm.area_scale))
    hit = rng.random(p.shape[0]) < p
    tp_idx = np.flatnonzero(hit)
    tp_box = jitter_boxes(rng, vi.xyxy[tp_idx].astype(np.float64), prm.jitter)
    true_lab = vi.label[tp_idx].astype(np.int64)
    confused = np.zeros(tp_idx.shape[0], bool)
    lab = true_lab.copy()
    if K > 1 and tp_idx.size:
        confused = rng.random(tp_idx.shape[0]) < prm.confusion
        shift = rng.integers(1, K, size=tp_idx.shape[0])  # uniform over the other parts
        lab = np.where(confused, (true_lab + shift) % K, true_lab)

    boxes = [tp_box]
    labels = [lab]
    kinds = [np.full(tp_idx.shape[0], TRUE_POSITIVE, np.int8)]
    if vi.sil_area:
        n_fp = int(rng.poisson(prm.fp_rate))
        sx0, sy0, sx1, sy1 = vi.sil_xyxy.astype(np.float64)
        fr, fc = np.nonzero(vi.fg)
        pick = rng.integers(0, fr.shape[0], size=n_fp)
        cx = fc[pick] + rng.random(n_fp)
        cy = fr[pick] + rng.random(n_fp)
        bw = rng.uniform(prm.fp_size[0], prm.fp_size[1], n_fp) * (sx1 - sx0)
        bh = rng.uniform(prm.fp_size[0], prm.fp_size[1], n_fp) * (sy1 - sy0)
        fp = np.stack(
            [
                np.maximum(cx - bw / 2, sx0),
                np.maximum(cy - bh / 2, sy0),
                np.minimum(cx + bw / 2, sx1),
                np.minimum(cy + bh / 2, sy1),
            ],
            1,
        ).reshape(n_fp, 4)
        boxes.append(fp)
        labels.append(rng.integers(0, K, size=n_fp))
        kinds.append(np.full(n_fp, FALSE_POSITIVE, np.int8))
        if rng.random() < prm.whole_object_prob:
            boxes.append(jitter_boxes(rng, vi.sil_xyxy[None].astype(np.float64), prm.jitter))
            labels.append(rng.integers(0, K, size=1))
            kinds.append(np.full(1, WHOLE_OBJECT, np.int8))
    xyxy = np.concatenate(boxes).reshape(-1, 4)
    label = np.concatenate(labels).astype(np.int64)
    kind = np.concatenate(kinds)
    n_tp = tp_idx.shape[0]
    n_rest = xyxy.shape[0] - n_tp
    inst = np.concatenate([vi.inst[tp_idx], np.full(n_rest, -1, np.int32)]).astype(np.int32)
    tlab = np.concatenate([true_lab, np.full(n_rest, -1)]).astype(np.int16)
    conf = np.concatenate([confused, np.zeros(n_rest, bool)])
    gt = np.full((xyxy.shape[0], 4), np.nan, np.float32)
    gt[:n_tp] = vi.xyxy[tp_idx]

    # clip, flag tiny boxes
    xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, width)
    xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, height)
    ok = ((xyxy[:, 2] - xyxy[:, 0]) >= prm.min_box_px) & ((xyxy[:, 3] - xyxy[:, 1]) >= prm.min_box_px)
    return ViewProposals(
        xyxy=xyxy,
        label=label,
        kind=kind,
        inst=inst,
        true_label=tlab,
        confused=conf,
        gt_xyxy=gt,
        ok=ok,
        area_frac=area_frac,
        p_detect=p,
        n_tp=n_tp,
    )
