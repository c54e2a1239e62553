"""``partstad detect``: text-prompted 2D part boxes per view -> cache/detect/<Cat>.zarr.

Flat arrays over all views: ``xyxy`` (B,4) f32, ``view`` (B,) i16, ``label`` (B,) i16,
``score`` (B,) f32, ``feat`` (B,D) f16 and ``offsets`` (V+1,) i64 (boxes of view v are
``offsets[v]:offsets[v+1]``). The detector is ``detect.backend``, looked up in
:data:`stages.backends.detectors.DETECTORS`: ``oracle`` (SIMULATED ground-truth oracle),
``pixels`` (SIMULATED from the rendered pixels, classifier fitted on the few-shot renders),
``grounding_dino`` (real, local weights) and ``import`` (written by ``partstad import-partstad``).
"""

from __future__ import annotations

from typing import Any

import click
import numpy as np

from stages.backends.detectors import detector
from stages.common import common_options, run_object_stage
from stages.runner import StageContext


def detect_work(ctx: StageContext, object_id: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    backend = detector(ctx.config)
    det, extra = backend.work(ctx, object_id)
    n_views = ctx.store("render").array(object_id, "pix2pt").shape[0]
    arrays = {
        "xyxy": det.xyxy.astype(np.float32),
        "view": det.view.astype(np.int16),
        "label": det.label.astype(np.int16),
        "score": det.score.astype(np.float32),
        "feat": det.feat.astype(np.float16),
        "offsets": det.offsets(n_views).astype(np.int64),
    }
    attrs = {"backend": backend.name, "simulated": bool(det.simulated), "n_boxes": int(len(det.xyxy)), **extra}
    return arrays, attrs


def gpu_resources(ctx: StageContext) -> dict[str, float] | None:
    """A detector that needs a GPU on this device (Grounding DINO on CUDA) runs on a GPU worker (``dask worker --resources GPU=1``)."""
    return {"GPU": 1} if detector(ctx.config).needs_gpu(ctx.device) else None


def preflight(cfg: Any, device: str) -> None:
    """Before any object: the configured detector's weights must exist and load (else exit 2, cache untouched)."""
    detector(cfg).preflight(cfg, device)


@click.command()
@common_options
def detect(**kw: Any) -> None:
    """Detect part boxes in every rendered view (simulated: oracle or pixels; real: Grounding DINO)."""
    run_object_stage(
        "detect", detect_work, resources=gpu_resources, preflight=preflight, uses_model=lambda cfg: detector(cfg).uses_model(cfg), **kw
    )
