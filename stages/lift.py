"""``partstad lift``: everything training and inference need, so they never touch images.

Per object, for each membership rule (``mask_``: SAM masks, SPEC §7.1; ``box_``: PartSLIP's
strictly-inside-the-box rule, §6.1) the sparse COO membership ``point``/``box``, the
per-superpoint sizes, visible counts, validity and ground-truth targets, and the
(superpoint, box) counts the instance grouping needs. Also the PartSLIP whole-object box
filter ``whole_object_valid`` (computed here once, from every projected point; evaluate's
PartSLIP baseline reads it), the per-point part labels and the view directions (copied so
`train` reads only cache/lift and the detector features).
"""

from __future__ import annotations

from typing import Any

import click
import numpy as np

from pipeline.lift import lift_object, whole_object_valid
from pipeline.meta import part_names
from stages.common import common_options, run_object_stage
from stages.lifted_io import lifted_to_arrays
from stages.runner import StageContext


def lift_work(ctx: StageContext, object_id: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    sec = ctx.config.lift
    vis = ctx.store("visibility").read_all(object_id, ["uv", "visible"])
    sp = ctx.store("superpoints").read(object_id, "sp")
    detect = ctx.store("detect")
    det = {
        "xyxy": detect.read(object_id, "xyxy", finite=True),
        "view": detect.read(object_id, "view"),
        "label": detect.read(object_id, "label"),
    }
    H, W = ctx.store("render").array(object_id, "pix2pt").shape[1:]
    # read box by box, never all at once; a (B,H,W) mismatch with boxes/renders is bad input
    masks = ctx.store("segment").array(object_id, "mask", expect_shape=(len(det["xyxy"]), H, W))
    ing = ctx.store("ingest")
    labelled = bool(ing.attrs(object_id).get("labelled", True))
    sem = ing.read(object_id, "sem") if labelled else None
    K = len(part_names(ctx.category))
    common = dict(
        iou_gate=sec.iou_gate,
        sp=sp,
        visible=vis["visible"],
        uv=vis["uv"],
        xyxy=det["xyxy"],
        box_view=det["view"],
        box_label=det["label"],
        sem=sem,
        n_parts=K,
    )
    by_mask = lift_object(masks=masks, mode="mask", **common)
    by_box = lift_object(masks=None, mode="box", **common)
    arrays = {**lifted_to_arrays(by_mask, "mask_"), **lifted_to_arrays(by_box, "box_")}
    arrays["whole_object_valid"] = whole_object_valid(vis["uv"], det["xyxy"], det["view"], thresh=sec.whole_object_thresh)
    if sem is not None:
        arrays["sem"] = sem.astype(np.int16)  # train's targets; evaluate reads ground truth from ingest
    arrays["view_dirs"] = ctx.store("render").read(object_id, "view_dirs")
    image_size = ctx.store("render").attrs(object_id).get("image_size")
    attrs = {
        "arrays": sorted(arrays),
        "labelled": labelled,
        "image_size": image_size,
        "n_members_mask": int(len(by_mask.point)),
        "n_members_box": int(len(by_box.point)),
        "n_superpoints": by_mask.n_sp,
        "simulated": bool(
            ctx.store("detect").attrs(object_id).get("simulated", False) or ctx.store("segment").attrs(object_id).get("simulated", False)
        ),
    }
    return arrays, attrs


@click.command()
@common_options
def lift(**kw: Any) -> None:
    """Lift masks and boxes onto points/superpoints (sparse COO membership + targets)."""
    run_object_stage("lift", lift_work, **kw)
