"""Training objects from the caches (used by train and evaluate).

Training and inference read only cache/lift and the detector features in cache/detect,
never images: this module is that boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.lift import LiftedObject
from pipeline.meta import small_part_mask
from stages.lifted_io import read_lifted


@dataclass
class ReadOnce:
    """Reads that the two variants of a category (mask and box membership) and the masks-only
    fit share, kept for one category's run: each object's detector features, boxes, view
    directions and labels are read once instead of twice, its mask lifting once instead of
    twice (the stage's reading took about a third of its CPU time besides training)."""

    side: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, int, int, np.ndarray | None]] = field(default_factory=dict)
    lifted: dict[tuple[str, str], LiftedObject] = field(default_factory=dict)

    def lifting(self, ctx: Any, object_id: str, mode: str) -> LiftedObject:
        """The object's lifting in ``mode`` (read on first use)."""
        got = self.lifted.get((object_id, mode))
        if got is None:
            got = self.lifted[(object_id, mode)] = read_lifted(ctx, object_id, mode)
        return got


def _side_inputs(ctx: Any, object_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int, np.ndarray | None]:
    """(feat, xyxy, view_dirs, H, W, sem or None): everything but the lifting."""
    lift = ctx.store("lift")
    detect = ctx.store("detect")  # NaN/inf features or boxes: BadInputError naming object and file
    feat, xyxy = detect.read(object_id, "feat", finite=True), detect.read(object_id, "xyxy", finite=True)
    attrs = lift.attrs(object_id)
    H, W = attrs.get("image_size") or [800, 800]
    sem = lift.read(object_id, "sem") if attrs.get("labelled", True) else None
    return feat.astype(np.float32), xyxy, lift.read(object_id, "view_dirs"), int(H), int(W), sem


def prepare_object(ctx: Any, object_id: str, mode: str, pos_enc: bool, device: str = "cpu", reads: ReadOnce | None = None):
    """A TrainObject from cache/lift and cache/detect only (``reads``: share reads between calls)."""
    from pipeline.train.objects import TrainObject

    lifted = reads.lifting(ctx, object_id, mode) if reads is not None else read_lifted(ctx, object_id, mode)
    side = reads.side.get(object_id) if reads is not None else None
    if side is None:
        side = _side_inputs(ctx, object_id)
        if reads is not None:
            reads.side[object_id] = side
    feat, xyxy, view_dirs, H, W, sem = side
    return TrainObject.from_lifted(
        lifted,
        feat,
        view_dirs,
        xyxy,
        H,
        W,
        pos_enc=pos_enc,
        sem=sem,
        small_part_flags=small_part_mask(ctx.category),
        device=device,
        object_id=object_id,
    )
