"""``partstad segment``: one mask per box -> cache/segment/<Cat>.zarr.

Per object ``mask`` (B,H,W) bool, one chunk per box. Modes: ``sam`` (segment-anything,
local checkpoint; image embeddings cached as f16 so a change of boxes only re-runs the
decoder), ``box`` (rectangles, the PartSLIP case), ``oracle`` (SIMULATED SAM from the
rendered ground truth; the ground-truth oracle for tests and comparisons) and ``pixels``
(SIMULATED SAM from the rendered rgb and depth only: segments of a ground-truth-free
over-segmentation).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import numpy as np

from pipeline.errors import BadInputError

from stages.common import ParamsError, common_options, run_object_stage
from stages.helpers import object_seed
from stages.sam_weights import file_digest, sam_path, sam_weights
from stages.runner import StageContext

_MASKERS: dict[str, Any] = {}


def _detections(ctx: StageContext, object_id: str):
    from pipeline.detect.types import Detections

    d = ctx.store("detect").read_all(object_id, ["xyxy", "view", "label", "score", "feat"])
    simulated = bool(ctx.store("detect").attrs(object_id).get("simulated", False))
    return Detections(xyxy=d["xyxy"], view=d["view"], label=d["label"], score=d["score"], feat=d["feat"].astype(np.float32), simulated=simulated)


def _cached_embeddings(ctx: StageContext, object_id: str) -> dict[int, np.ndarray] | None:
    store = ctx.store()
    render_fp = ctx.store("render").stored_fingerprint(object_id)
    try:
        attrs = store.attrs(object_id)
        if attrs.get("render_fingerprint") != render_fp or attrs.get("sam") != _sam_key(ctx):
            return None
        emb, views = store.read(object_id, "embed"), store.read(object_id, "embed_views")
    except Exception:  # noqa: BLE001 - no usable cache: encode again
        return None
    return {int(v): emb[i : i + 1] for i, v in enumerate(views)}


def _sam_key(ctx: StageContext) -> str:
    """Which SAM made cached embeddings: model type and checkpoint *content* (not its path)."""
    from pipeline.batching import resolve_precision

    sec = ctx.config.segment
    precision = resolve_precision(sec.precision, ctx.device)  # bf16 embeddings are not fp32 ones
    return f"{sec.sam_model_type}:{file_digest(sam_path(ctx.config))}" + ("" if precision == "fp32" else f":{precision}")


def segment_work(ctx: StageContext, object_id: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    sec = ctx.config.segment
    mode = sec.mode
    det = _detections(ctx, object_id)
    render = ctx.store("render")
    pix2pt = render.read(object_id, "pix2pt")
    H, W = pix2pt.shape[1:]
    attrs: dict[str, Any] = {"mode": mode, "simulated": mode in ("oracle", "pixels"), "n_boxes": int(len(det.xyxy))}
    arrays: dict[str, np.ndarray] = {}
    if mode == "box":
        from pipeline.segment.box import box_masks

        masks = box_masks(det, H, W)
    elif mode == "oracle":
        from pipeline.segment.oracle import OracleMaskParams, oracle_masks

        ing = ctx.store("ingest")
        masks = oracle_masks(det, pix2pt, ing.read(object_id, "sem"), ing.read(object_id, "ins"), OracleMaskParams(boundary_noise=sec.boundary_noise), seed=object_seed(sec.seed, object_id))
    elif mode == "pixels":
        from pipeline.segment.pixel_sam import PixelSamParams, pixel_masks

        r = render.read_all(object_id, ["rgb", "depth"])
        masks = pixel_masks(det, r["rgb"], r["depth"], PixelSamParams(**sec.pixels.model_dump()))
    elif mode == "sam":

        key = _sam_key(ctx)
        cached = _cached_embeddings(ctx, object_id)
        masks, emb = sam_masker(sec, ctx.device, sam_path(ctx.config)).masks_for_object(render.read(object_id, "rgb"), det, cached)
        views = sorted(emb)
        if views:
            arrays["embed"] = np.concatenate([emb[v] for v in views]).astype(np.float16)
            arrays["embed_views"] = np.asarray(views, dtype=np.int16)
        attrs.update({"render_fingerprint": render.stored_fingerprint(object_id), "sam": key,
                      "sam_weights": {"spec": sec.sam_checkpoint, "digest": file_digest(sam_path(ctx.config))}})
    else:
        raise BadInputError(f"segment.mode {mode!r} is not computed by `partstad segment`", object_id=object_id)
    arrays["mask"] = np.asarray(masks, dtype=bool).reshape(len(det.xyxy), H, W)
    return arrays, attrs


def sam_masker(sec: Any, device: str, path: Path | None = None):
    """The SAM of ``path`` (default ``segment.sam_checkpoint`` as a path), loaded once per process and content."""
    from pipeline.segment.sam import SamMasker

    path = Path(path if path is not None else sec.sam_checkpoint)
    key = f"{sec.sam_model_type}:{path}|{file_digest(path)}|{device}|{sec.batch_size}|{sec.precision}"
    if key not in _MASKERS:
        _MASKERS[key] = SamMasker(sec.sam_model_type, path, device=device, batch_size=sec.batch_size, precision=sec.precision)
    return _MASKERS[key]


def gpu_resources(ctx: StageContext) -> dict[str, float] | None:
    """SAM on CUDA needs a GPU worker (``dask worker --resources GPU=1``)."""
    return {"GPU": 1} if ctx.device == "cuda" and ctx.config.segment.mode == "sam" else None


def preflight(cfg: Any, device: str) -> None:
    """Before any object: the SAM checkpoint must exist and load (else exit 2, cache untouched)."""
    sec = cfg.segment
    if sec.mode == "sam":
        from stages.weights_resolve import WeightsNotFound

        try:
            rw = sam_weights(cfg)
        except WeightsNotFound as exc:
            raise ParamsError(str(exc)) from None
        ck = rw.path if rw else None
        if ck is None or not ck.is_file():
            raise ParamsError(f"segment.sam_checkpoint: {sec.sam_checkpoint!r} is not a file; give a local segment-anything checkpoint "
                              "or an official name (sam_vit_b, sam_vit_l, sam_vit_h) in params.yaml")
        try:
            sam_masker(sec, device, ck)
        except Exception as exc:  # noqa: BLE001 - truncated / wrong model type / pickle: unusable
            raise ParamsError(f"segment.sam_checkpoint: cannot load {ck} as a {sec.sam_model_type} model ({type(exc).__name__}: {exc})") from None


@click.command()
@common_options
def segment(**kw: Any) -> None:
    """Turn every detected box into a mask (SAM, box rectangle, or simulated SAM: oracle or pixels)."""
    run_object_stage("segment", segment_work, resources=gpu_resources, preflight=preflight,
                     uses_model=lambda cfg: cfg.segment.mode == "sam", **kw)
