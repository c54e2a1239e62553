"""The "masks without weights" ablation (SPEC §7, paper Table 4).

* "masks without weights": w ≡ 1 on mask membership, so Z[:, 1:] is PartSLIP's coverage
  fraction (:func:`pipeline.partslip.semantic_scores` on the mask lifting), decoded with the
  PartSLIP rule. PartSTAD without its weight network
  still fits its one other trained quantity, the null score, on the labelled shapes; with
  fixed weights that is a coverage threshold, chosen by :func:`fit_coverage_threshold` on the
  few-shot + validation shapes (never on test). A fixed 0.5 (PartSLIP's box threshold) is
  unfair to masks: a mask covers less of a part than its box does. ``box_valid`` can apply
  PartSLIP's whole-object filter (measured: +0.4 mIoU on the simulated benchmark, not used).
* "weights without masks" needs no code here: build the TrainObjects from a box-mode lifting
  (``lift_object(..., mode="box", min_visible=1)``) and train as usual.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.lift import LiftedObject
from pipeline.partslip import semantic_scores, threshold_labels
from pipeline.train.decode import sp_miou


def masks_without_weights(
    lifted: LiftedObject,
    small_part_flags: Sequence[bool],
    thresh: float = 0.5,
    box_valid: np.ndarray | None = None,
) -> np.ndarray:
    """(S,) int32 labels of the "masks without weights" ablation (PartSLIP rule on coverage).

    ``box_valid``: PartSLIP's whole-object filter (SPEC §6.1.2). Without learned weights nothing
    else down-weights a box that frames the whole object, so the ablation keeps PartSLIP's rule.
    """
    lab = threshold_labels(semantic_scores(lifted, box_valid), small_part_flags, thresh)
    return np.where(lifted.valid, lab, -1).astype(np.int32)


#: thresholds tried by :func:`fit_coverage_threshold`
THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))


def fit_coverage_threshold(
    coverages: Sequence[np.ndarray],
    valids: Sequence[np.ndarray],
    label_counts: Sequence[np.ndarray],
    small_part_flags: Sequence[bool],
    grid: Sequence[float] = THRESHOLD_GRID,
) -> tuple[float, float]:
    """The coverage threshold with the best mean per-object mIoU (§7.10) on labelled shapes.

    ``coverages``: (S, K) :func:`pipeline.partslip.semantic_scores` of the mask lifting per object; ``label_counts``: (S, K+1)
    GT counts per superpoint. Returns (threshold, its mean mIoU); ties go to the threshold
    closest to 0.5 (PartSLIP's); no labelled object → (0.5, NaN).
    """
    if not coverages:
        return 0.5, float("nan")
    best: tuple[float, float, float] | None = None  # (score, -distance to 0.5, t)
    for t in grid:
        vals = [sp_miou(np.where(v, threshold_labels(c, small_part_flags, t), -1), n) for c, v, n in zip(coverages, valids, label_counts)]
        vals = [x for x in vals if not np.isnan(x)]
        if not vals:
            return 0.5, float("nan")
        cand = (float(np.mean(vals)), -abs(t - 0.5), float(t))
        if best is None or cand[:2] > best[:2]:
            best = cand
    if best is None:
        raise ValueError("fit_coverage_threshold needs a non-empty threshold grid")
    return best[2], best[0]
