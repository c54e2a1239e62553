"""Probabilities of a trained weight network and their labels (SPEC §7.10-7.11)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from pipeline.model import WeightNet, z_null_value
from pipeline.partslip import threshold_labels
from pipeline.score import probabilities, scores_from_index

from .objects import TrainObject

PROB_THRESH = 0.5 - 1e-4


def forward_object(net: WeightNet, z_null: torch.Tensor | float, obj: TrainObject) -> torch.Tensor:
    """P (S, K+1) probabilities of one prepared object."""
    w = net(obj.x)
    return probabilities(scores_from_index(w, obj.index, z_null))


def labels_from_probs(P: np.ndarray, valid: np.ndarray, small_part_flags: Sequence[bool], thresh: float = PROB_THRESH) -> np.ndarray:
    """(S,) int32 labels by §7.11: invalid → −1; threshold on P[:, 1:] with the small-part rule."""
    P = np.asarray(P, dtype=np.float64)
    lab = threshold_labels(P[:, 1:], small_part_flags, thresh)
    return np.where(np.asarray(valid, bool), lab, -1).astype(np.int32)


def labels_without_threshold(P: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(S,) int32 "w/o threshold" decoding (§7.11): argmax over K+1, ties to the higher index."""
    P = np.asarray(P, dtype=np.float64)
    K1 = P.shape[1]
    idx = K1 - 1 - np.argmax(P[:, ::-1], axis=1)
    return np.where(np.asarray(valid, bool), idx - 1, -1).astype(np.int32)


def sp_miou(labels_sp: np.ndarray, counts: np.ndarray) -> float:
    """Per-object mIoU (§7.10) from superpoint labels and per-superpoint GT label counts.

    Equal to the point-level IoU since all points of a superpoint share its label.
    """
    K = counts.shape[1] - 1
    gt_tot = counts[:, 1:].sum(0)
    present = gt_tot > 0
    if not present.any():
        return float("nan")
    lab = np.asarray(labels_sp, np.int64)
    hit = lab >= 0
    size = counts.sum(1)
    pred_tot = np.bincount(lab[hit], weights=size[hit], minlength=K)
    inter = np.bincount(lab[hit], weights=counts[np.flatnonzero(hit), lab[hit] + 1], minlength=K)
    iou = inter / (gt_tot + pred_tot - inter).clip(min=1)
    return float(iou[present].mean())


@torch.no_grad()
def predict(weight_net: WeightNet, theta_null: float | torch.Tensor, obj: TrainObject) -> np.ndarray:
    """P (S, K+1) float32 numpy probabilities of one object with a trained network."""
    was_training = weight_net.training
    weight_net.eval()
    zn = theta_null if isinstance(theta_null, torch.Tensor) else z_null_value(theta_null)
    # one thread, as in training: MKL's reproducible GEMM splits its sums by thread count
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        P = forward_object(weight_net, zn, obj).cpu().numpy()
    finally:
        torch.set_num_threads(threads)
    weight_net.train(was_training)
    return P.astype(np.float32)
