"""One object prepared for training and inference (SPEC §7.9).

Everything that does not depend on the network weights is prepared once per object in a
:class:`TrainObject` (network inputs, the compressed score index of :mod:`pipeline.score`,
targets), so a training step is: WeightNet forward, one gather, one scatter-amax, one
index_add, a softmax and the relaxed-IoU loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.lift import LiftedObject, gt_fractions
from pipeline.posenc import box_inputs
from pipeline.score import ScoreIndex


@dataclass
class TrainObject:
    """One object prepared for training / inference (all torch tensors on one device)."""

    x: torch.Tensor  #: (B, C) float32 network input [feat ‖ γ(q)]
    index: ScoreIndex  #: compressed membership for §7.7
    n_s: torch.Tensor  #: (S,) float32 superpoint sizes
    valid: torch.Tensor  #: (S,) bool validity (§7.2)
    gt: torch.Tensor | None  #: (S, K+1) float32 targets (§7.3), None without GT
    label_counts: np.ndarray | None  #: (S, K+1) int64 GT point counts (col 0 = -1), for mIoU
    small_flags: np.ndarray  #: (K,) bool small-part priority flags (§6.2)
    n_parts: int
    object_id: str = ""

    @classmethod
    def from_lifted(
        cls,
        lifted: LiftedObject,
        feat: np.ndarray,
        view_dirs: np.ndarray,
        xyxy: np.ndarray,
        H: int,
        W: int,
        pos_enc: bool = True,
        sem: np.ndarray | None = None,
        small_part_flags: Sequence[bool] | None = None,
        device: str | torch.device = "cpu",
        object_id: str = "",
    ) -> TrainObject:
        """Prepare an object; ``sem`` (N,) gives targets and validation counts."""
        K = lifted.n_parts
        x = box_inputs(feat, view_dirs, xyxy, lifted.box_view, H, W, pos_enc)
        index = ScoreIndex.from_lifted(lifted, device).to(torch.float32)
        counts = None
        gt = lifted.gt
        if sem is not None:
            sem = np.asarray(sem).astype(np.int64)
            K1 = K + 1
            counts = np.bincount(lifted.sp.astype(np.int64) * K1 + sem + 1, minlength=lifted.n_sp * K1).reshape(lifted.n_sp, K1)
            if gt is None:
                gt = gt_fractions(lifted.sp, sem, lifted.n_sp, K)
        small = np.zeros(K, bool) if small_part_flags is None else np.asarray(small_part_flags, bool)
        return cls(
            x=torch.as_tensor(x, dtype=torch.float32, device=device),
            index=index,
            n_s=torch.as_tensor(lifted.sp_size, dtype=torch.float32, device=device),
            valid=torch.as_tensor(lifted.valid, dtype=torch.bool, device=device),
            gt=None if gt is None else torch.as_tensor(gt, dtype=torch.float32, device=device),
            label_counts=counts,
            small_flags=small,
            n_parts=K,
            object_id=object_id,
        )
