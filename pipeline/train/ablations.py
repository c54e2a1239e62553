"""The "masks without weights" ablation (SPEC §7, paper Table 4).

* "masks without weights": w ≡ 1 on mask membership, so Z[:, 1:] is a PartSLIP-style
  coverage fraction, decoded with the PartSLIP rule at 0.5. ``box_valid`` can apply
  PartSLIP's whole-object filter (measured: +0.4 mIoU on the simulated benchmark, not used).
* "weights without masks" needs no code here: build the TrainObjects from a box-mode lifting
  (``lift_object(..., mode="box", min_visible=1)``) and train as usual.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from pipeline.lift import LiftedObject
from pipeline.partslip import threshold_labels
from pipeline.score import ScoreIndex, scores_from_index


def unweighted_coverage(lifted: LiftedObject, box_valid: np.ndarray | None = None) -> np.ndarray:
    """(S, K) float64 Z[:, 1:] of §7.7 with w ≡ 1 (0 for boxes not in ``box_valid``):
    the mask-coverage fraction per part."""
    index = ScoreIndex.from_lifted(lifted)
    if box_valid is None:
        w = torch.ones(lifted.n_boxes, dtype=torch.float64)
    else:
        w = torch.as_tensor(np.asarray(box_valid, dtype=np.float64).reshape(lifted.n_boxes))
    return scores_from_index(w, index, 0.0)[:, 1:].numpy()


def masks_without_weights(
    lifted: LiftedObject, small_part_flags: Sequence[bool], thresh: float = 0.5,
    box_valid: np.ndarray | None = None,
) -> np.ndarray:
    """(S,) int32 labels of the "masks without weights" ablation (PartSLIP rule on coverage).

    ``box_valid``: PartSLIP's whole-object filter (SPEC §6.1.2). Without learned weights nothing
    else down-weights a box that frames the whole object, so the ablation keeps PartSLIP's rule.
    """
    lab = threshold_labels(unweighted_coverage(lifted, box_valid), small_part_flags, thresh)
    return np.where(lifted.valid, lab, -1).astype(np.int32)
