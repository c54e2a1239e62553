"""``partstad detect``: text-prompted 2D part boxes per view -> cache/detect/<Cat>.zarr.

Flat arrays over all views: ``xyxy`` (B,4) f32, ``view`` (B,) i16, ``label`` (B,) i16,
``score`` (B,) f32, ``feat`` (B,D) f16 and ``offsets`` (V+1,) i64 (boxes of view v are
``offsets[v]:offsets[v+1]``). Backends: ``oracle`` (SIMULATED ground-truth oracle: labels,
scores and features read from the ground truth; for tests and comparisons), ``pixels``
(SIMULATED from the rendered pixels: ground-truth-placed proposals described, labelled and
scored from the image by a classifier fitted on the category's few-shot renders) and
``grounding_dino`` (real, local weights).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import numpy as np

from pipeline.errors import BadInputError
from pipeline.meta import part_names
from stages.common import ParamsError, common_options, run_object_stage
from stages.detector_weights import adapted_dir, base_weights, detector_weights, dir_digest, has_adapted_model
from stages.helpers import object_seed
from stages.runner import StageContext


def _oracle(ctx: StageContext, object_id: str, sec: Any):
    from pipeline.detect.oracle import OracleDetectorParams, oracle_detect

    ing = ctx.store("ingest")
    if not ing.attrs(object_id).get("labelled", True):
        raise BadInputError("the oracle (simulated) detector needs ground-truth labels and this object has none; "
                            "use detect.backend: grounding_dino for unlabelled shapes", object_id=object_id, path=ing.url)
    sem, ins = ing.read(object_id, "sem"), ing.read(object_id, "ins")
    pix2pt = ctx.store("render").read(object_id, "pix2pt")
    knobs = {**sec.oracle.model_dump(), "score_threshold": sec.score_threshold, "feat_dim": sec.feat_dim, "max_per_view": sec.max_per_view}
    knobs["fp_size"] = tuple(knobs["fp_size"])
    det, _diagnostics = oracle_detect(pix2pt, sem, ins, part_names(ctx.category), OracleDetectorParams(**knobs), seed=object_seed(sec.seed, object_id))
    return det


def _pixels(ctx: StageContext, object_id: str, sec: Any):
    from pipeline.detect.pixel_sim import pixel_detect
    from stages.pixel_fewshot import detector_params, fewshot_classifier

    ing = ctx.store("ingest")
    if not ing.attrs(object_id).get("labelled", True):
        raise BadInputError("the pixels (simulated) detector places its boxes from ground-truth parts and this object has none; "
                            "use detect.backend: grounding_dino for unlabelled shapes", object_id=object_id, path=ing.url)
    clf, record = fewshot_classifier(ctx, object_id)
    proposal, pixels = detector_params(ctx.config)
    r = ctx.store("render").read_all(object_id, ["rgb", "depth", "pix2pt"])
    det = pixel_detect(r["rgb"], r["depth"], r["pix2pt"], ing.read(object_id, "sem"), ing.read(object_id, "ins"), part_names(ctx.category),
                       clf, proposal, pixels, seed=object_seed(sec.seed, object_id), score_threshold=sec.score_threshold)
    return det, record


_DETECTORS: dict[str, Any] = {}


def grounding_dino(sec: Any, device: str, weights_dir: Path | None = None):
    """The Grounding DINO of ``weights_dir`` (default ``detect.weights_dir``), loaded once per
    process and weights content."""
    from pipeline.detect.grounding_dino import GroundingDinoDetector

    path = Path(weights_dir if weights_dir is not None else sec.weights_dir)
    settings = dict(score_threshold=sec.score_threshold, max_per_view=sec.max_per_view, batch_size=sec.batch_size, precision=sec.precision)
    key = f"{path}|{dir_digest(path)}|{device}|{sorted(settings.items())}"
    if key not in _DETECTORS:
        _DETECTORS[key] = GroundingDinoDetector(path, device=device, **settings)
    return _DETECTORS[key]


def _grounding_dino(ctx: StageContext, object_id: str, sec: Any):
    """Detections with the category's adapted weights (adapt.enabled and adapted) or the base ones."""
    path, adapted = detector_weights(ctx.config, ctx.category)
    if path is None:
        raise BadInputError("detect.weights_dir is not set and there are no adapted weights for this category", object_id=object_id)
    try:
        model = grounding_dino(sec, ctx.device, path)
    except (OSError, ValueError) as exc:
        what = f"adapted Grounding DINO of {ctx.category}" if adapted else "Grounding DINO"
        raise BadInputError(f"cannot load the {what}: {exc}", object_id=object_id, path=str(path)) from None
    images = ctx.store("render").read(object_id, "rgb")
    return model.detect_object(images, part_names(ctx.category)), adapted  # views batched per forward


def detect_work(ctx: StageContext, object_id: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    sec = ctx.config.detect
    record: dict[str, Any] = {}
    if sec.backend == "oracle":
        det = _oracle(ctx, object_id, sec)
    elif sec.backend == "pixels":
        det, record = _pixels(ctx, object_id, sec)
    elif sec.backend == "grounding_dino":
        det, adapted = _grounding_dino(ctx, object_id, sec)
    else:
        raise BadInputError(f"detect.backend {sec.backend!r} is filled by `partstad import-partstad`, not by `partstad detect`", object_id=object_id)
    n_views = ctx.store("render").array(object_id, "pix2pt").shape[0]
    arrays = {
        "xyxy": det.xyxy.astype(np.float32), "view": det.view.astype(np.int16), "label": det.label.astype(np.int16),
        "score": det.score.astype(np.float32), "feat": det.feat.astype(np.float16), "offsets": det.offsets(n_views).astype(np.int64),
    }
    attrs = {"backend": sec.backend, "simulated": bool(det.simulated), "n_boxes": int(len(det.xyxy))}
    if sec.backend == "grounding_dino":
        attrs["adapted_weights"] = bool(adapted)
        # provenance of these boxes: the setting (not the machine's cache path) and the content digest
        weights_path, _ = detector_weights(ctx.config, ctx.category)
        attrs["weights"] = {"spec": str(weights_path) if adapted else sec.weights_dir, "digest": dir_digest(weights_path)}
    attrs.update(record)
    return arrays, attrs


def gpu_resources(ctx: StageContext) -> dict[str, float] | None:
    """Grounding DINO on CUDA needs a GPU worker (``dask worker --resources GPU=1``)."""
    return {"GPU": 1} if ctx.device == "cuda" and ctx.config.detect.backend == "grounding_dino" else None


def preflight(cfg: Any, device: str) -> None:
    """Before any object: the configured model must exist and load (else exit 2, cache untouched)."""
    sec = cfg.detect
    if sec.backend == "import":
        raise ParamsError("detect.backend: 'import' results are written by `partstad import-partstad`; `partstad detect` would overwrite them")
    if sec.backend == "grounding_dino":
        from stages.weights_resolve import WeightsNotFound

        try:
            rw = base_weights(cfg)
        except WeightsNotFound as exc:
            raise ParamsError(str(exc)) from None
        wd = rw.path if rw else None
        if wd is None or not wd.is_dir():
            raise ParamsError(f"detect.weights_dir: {sec.weights_dir!r} is not a directory; give a local Grounding DINO model directory "
                              "or a Hugging Face model id (org/name) in params.yaml")
        try:
            grounding_dino(sec, device, wd)
        except Exception as exc:  # noqa: BLE001 - any load failure means unusable weights
            raise ParamsError(f"detect.weights_dir: cannot load Grounding DINO from {wd} ({type(exc).__name__}: {exc})") from None
        if cfg.adapt.enabled:  # adapted weights are used per category: a broken directory stops the run here
            from pipeline.detect.grounding_dino import check_weights_dir

            for category in cfg.categories:
                if not has_adapted_model(cfg, category):
                    click.echo(f"[detect] {category}: adapt.enabled but no adapted weights in {adapted_dir(cfg, category)} "
                               "(run `partstad adapt-detector`); using detect.weights_dir", err=True)
                    continue
                try:
                    check_weights_dir(adapted_dir(cfg, category))
                except FileNotFoundError as exc:
                    raise ParamsError(f"adapted detector of {category}: {exc}") from None


@click.command()
@common_options
def detect(**kw: Any) -> None:
    """Detect part boxes in every rendered view (simulated: oracle or pixels; real: Grounding DINO)."""
    run_object_stage("detect", detect_work, resources=gpu_resources, preflight=preflight,
                     uses_model=lambda cfg: cfg.detect.backend == "grounding_dino", **kw)
