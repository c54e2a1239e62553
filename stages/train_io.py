"""Training objects from the caches (used by train and evaluate).

Training and inference read only cache/lift and the detector features in cache/detect,
never images: this module is that boundary.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.meta import small_part_mask
from stages.lifted_io import read_lifted


def prepare_object(ctx: Any, object_id: str, mode: str, pos_enc: bool, device: str = "cpu"):
    """A TrainObject from cache/lift and cache/detect only."""
    from pipeline.train.objects import TrainObject

    lifted = read_lifted(ctx, object_id, mode)
    lift = ctx.store("lift")
    detect = ctx.store("detect")  # NaN/inf features or boxes: BadInputError naming object and file
    det = {"feat": detect.read(object_id, "feat", finite=True), "xyxy": detect.read(object_id, "xyxy", finite=True)}
    H, W = lift.attrs(object_id).get("image_size") or [800, 800]
    sem = lift.read(object_id, "sem") if lift.attrs(object_id).get("labelled", True) else None
    return TrainObject.from_lifted(
        lifted,
        det["feat"].astype(np.float32),
        lift.read(object_id, "view_dirs"),
        det["xyxy"],
        int(H),
        int(W),
        pos_enc=pos_enc,
        sem=sem,
        small_part_flags=small_part_mask(ctx.category),
        device=device,
        object_id=object_id,
    )
