"""``partstad segment``: one mask per box -> cache/segment/<Cat>.zarr.

Per object ``mask`` (B,H,W) bool, one chunk per box. The masker is ``segment.mode``, looked up
in :data:`stages.backends.maskers.MASKERS`: ``sam`` (segment-anything, local checkpoint; image
embeddings cached as f16 so a change of boxes only re-runs the decoder), ``box`` (rectangles,
the PartSLIP case), ``oracle`` (SIMULATED SAM from the rendered ground truth) and ``pixels``
(SIMULATED SAM from the rendered rgb and depth only).
"""

from __future__ import annotations

from typing import Any

import click
import numpy as np

from stages.backends.maskers import masker
from stages.common import common_options, run_object_stage
from stages.runner import StageContext


def _detections(ctx: StageContext, object_id: str):
    from pipeline.detect.types import Detections

    d = ctx.store("detect").read_all(object_id, ["xyxy", "view", "label", "score", "feat"])
    simulated = bool(ctx.store("detect").attrs(object_id).get("simulated", False))
    return Detections(
        xyxy=d["xyxy"], view=d["view"], label=d["label"], score=d["score"], feat=d["feat"].astype(np.float32), simulated=simulated
    )


def segment_work(ctx: StageContext, object_id: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    backend = masker(ctx.config)
    det = _detections(ctx, object_id)
    H, W = ctx.store("render").array(object_id, "pix2pt").shape[1:]
    masks, extra = backend.work(ctx, object_id, det)
    arrays: dict[str, np.ndarray] = dict(extra.pop("arrays", {}))
    attrs: dict[str, Any] = {"mode": backend.name, "simulated": backend.simulated, "n_boxes": int(len(det.xyxy)), **extra}
    arrays["mask"] = np.asarray(masks, dtype=bool).reshape(len(det.xyxy), H, W)
    return arrays, attrs


def gpu_resources(ctx: StageContext) -> dict[str, float] | None:
    """A masker that needs a GPU on this device (SAM on CUDA) runs on a GPU worker (``dask worker --resources GPU=1``)."""
    return {"GPU": 1} if masker(ctx.config).needs_gpu(ctx.device) else None


def preflight(cfg: Any, device: str) -> None:
    """Before any object: the configured masker's weights must exist and load (else exit 2, cache untouched)."""
    masker(cfg).preflight(cfg, device)


@click.command()
@common_options
def segment(**kw: Any) -> None:
    """Turn every detected box into a mask (SAM, box rectangle, or simulated SAM: oracle or pixels)."""
    run_object_stage(
        "segment", segment_work, resources=gpu_resources, preflight=preflight, uses_model=lambda cfg: masker(cfg).uses_model(cfg), **kw
    )
