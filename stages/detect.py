"""``partstad detect``: text-prompted 2D part boxes per view -> cache/detect/<Cat>.zarr.

Flat arrays over all views: ``xyxy`` (B,4) f32, ``view`` (B,) i16, ``label`` (B,) i16,
``score`` (B,) f32, ``feat`` (B,D) f16 and ``offsets`` (V+1,) i64 (boxes of view v are
``offsets[v]:offsets[v+1]``). Backends: ``oracle`` (SIMULATED from ground truth, for tests
and the demo) and ``grounding_dino`` (real, local weights).
"""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import click
import numpy as np

from pipeline.errors import BadInputError
from pipeline.meta import part_names
from stages.common import common_options, run_object_stage
from stages.runner import StageContext

CODE_VERSION = "1"


def object_seed(base: int, object_id: str) -> int:
    """A per-object seed that does not depend on processing order."""
    return (int(base) * 1_000_003 + zlib.crc32(object_id.encode())) % (2**31)


def _oracle(ctx: StageContext, object_id: str, sec: dict[str, Any]):
    from pipeline.detect.oracle import OracleDetectorParams, oracle_detect

    ing = ctx.store("ingest")
    if not ing.attrs(object_id).get("labelled", True):
        raise BadInputError("the oracle (simulated) detector needs ground-truth labels and this object has none; "
                            "use detect.backend: grounding_dino for unlabelled shapes", object_id=object_id, path=ing.url)
    sem, ins = ing.read(object_id, "sem"), ing.read(object_id, "ins")
    pix2pt = ctx.store("render").read(object_id, "pix2pt")
    knobs = {"score_threshold": float(sec.get("score_threshold", 0.5)), "feat_dim": int(sec.get("feat_dim", 256)), "max_per_view": int(sec.get("max_per_view", 100))}
    knobs.update(sec.get("oracle") or {})
    if "fp_size" in knobs:
        knobs["fp_size"] = tuple(knobs["fp_size"])
    det, _diagnostics = oracle_detect(pix2pt, sem, ins, part_names(ctx.category), OracleDetectorParams(**knobs), seed=object_seed(sec.get("seed", 0), object_id))
    return det


_DETECTORS: dict[str, Any] = {}


def _grounding_dino(ctx: StageContext, object_id: str, sec: dict[str, Any]):
    from pipeline.detect.types import detect_object
    from pipeline.detect.grounding_dino import GroundingDinoDetector

    key = str(sec.get("weights_dir"))
    if key not in _DETECTORS:  # one model per worker process
        _DETECTORS[key] = GroundingDinoDetector(Path(key), score_threshold=float(sec.get("score_threshold", 0.3)), max_per_view=int(sec.get("max_per_view", 100)), device=ctx.device)
    images = ctx.store("render").read(object_id, "rgb")
    return detect_object(_DETECTORS[key], images, part_names(ctx.category))


def detect_work(ctx: StageContext, object_id: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    sec = ctx.section()
    backend = sec.get("backend", "oracle")
    if backend == "oracle":
        det = _oracle(ctx, object_id, sec)
    elif backend == "grounding_dino":
        det = _grounding_dino(ctx, object_id, sec)
    else:
        raise ValueError(f"unknown detect backend {backend!r} (oracle, grounding_dino; use `partstad import-partstad` for import)")
    n_views = ctx.store("render").read(object_id, "pix2pt").shape[0] if backend != "oracle" else None
    n_views = n_views or len(ctx.section("render").get("views") or range(10))
    arrays = {
        "xyxy": det.xyxy.astype(np.float32), "view": det.view.astype(np.int16), "label": det.label.astype(np.int16),
        "score": det.score.astype(np.float32), "feat": det.feat.astype(np.float16), "offsets": det.offsets(n_views).astype(np.int64),
    }
    return arrays, {"backend": backend, "simulated": bool(det.simulated), "n_boxes": int(len(det.xyxy))}


def gpu_resources(ctx: StageContext) -> dict[str, float] | None:
    """Grounding DINO on CUDA needs a GPU worker (``dask worker --resources GPU=1``)."""
    return {"GPU": 1} if ctx.device == "cuda" and ctx.section().get("backend", "oracle") == "grounding_dino" else None


def check_weights(params_path: str) -> None:
    """Fail before any work when a configured model directory does not exist."""
    from stages.common import load_params

    sec = load_params(params_path).get("detect") or {}
    if sec.get("backend") == "grounding_dino":
        wd = sec.get("weights_dir")
        if not wd or not Path(wd).is_dir():
            raise click.UsageError(f"detect.weights_dir {wd!r} is not a directory: give a local Grounding DINO model directory in params.yaml")


@click.command()
@common_options
def detect(**kw: Any) -> None:
    """Detect part boxes in every rendered view (simulated oracle or Grounding DINO)."""
    check_weights(kw["params_path"])
    run_object_stage("detect", detect_work, upstream=["ingest", "render"], code_version=CODE_VERSION, resources=gpu_resources, **kw)
