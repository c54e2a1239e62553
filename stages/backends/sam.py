"""``segment.mode: sam``: segment-anything from a local checkpoint. Image embeddings are cached
(f16) with the segment result, so a change of boxes only re-runs the mask decoder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from stages.backends.base import Masker, Row, TorchModel
from stages.backends.weights_preflight import preflight_weights
from stages.sam_weights import file_digest, sam_path, sam_weights, weights_key, weights_records

_MASKERS: dict[str, Any] = {}


def sam_masker(sec: Any, device: str, path: Path | None = None):
    """The SAM of ``path`` (default ``segment.sam_checkpoint`` as a path), loaded once per process and content."""
    from pipeline.segment.sam import SamMasker

    path = Path(path if path is not None else sec.sam_checkpoint)
    key = f"{sec.sam_model_type}:{path}|{file_digest(path)}|{device}|{sec.batch_size}|{sec.precision}"
    if key not in _MASKERS:
        _MASKERS[key] = SamMasker(sec.sam_model_type, path, device=device, batch_size=sec.batch_size, precision=sec.precision)
    return _MASKERS[key]


def _sam_key(ctx: Any) -> str:
    """Which SAM made cached embeddings: model type and checkpoint *content* (not its path)."""
    from pipeline.batching import resolve_precision

    sec = ctx.config.segment
    precision = resolve_precision(sec.precision, ctx.device)  # bf16 embeddings are not fp32 ones
    return f"{sec.sam_model_type}:{file_digest(sam_path(ctx.config))}" + ("" if precision == "fp32" else f":{precision}")


def _cached_embeddings(ctx: Any, object_id: str) -> dict[int, np.ndarray] | None:
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


def _load_row(model_type: str, ck: str, device: str) -> Row:
    try:
        from pipeline.segment.sam import SamMasker
        from stages.weights_resolve import resolve_sam_checkpoint

        path = resolve_sam_checkpoint(ck).path  # an official name (sam_vit_b): from the torch hub directory
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {ck}")
        SamMasker(model_type, path, device=device)
        return "ok", "segment.sam_checkpoint", f"{ck} loads as {model_type}"
    except Exception as exc:  # noqa: BLE001
        return "FAIL", "segment.sam_checkpoint", f"{ck} does not load as {model_type} ({type(exc).__name__}: {exc})"


class Sam(TorchModel, Masker):
    name = "sam"
    description = "sam (real)"
    package = ("segment_anything", "segment-anything")

    def describe(self, cfg: Any) -> str:
        return f"sam (real, {cfg.segment.sam_model_type})"

    def record(self, cfg: Any) -> dict[str, Any]:
        return {"checkpoint": cfg.segment.sam_checkpoint, "model_type": cfg.segment.sam_model_type}

    def weights_key(self, cfg: Any, category: str) -> dict[str, Any]:
        return weights_key(cfg)

    def weights_records(self, cfg: Any, categories: list[str] | None = None) -> list[dict[str, Any]]:
        return weights_records(cfg)

    def weights_deps(self, cfg: Any) -> list[str]:
        from stages.weights_resolve import resolve_sam_checkpoint

        return [str(resolve_sam_checkpoint(cfg.segment.sam_checkpoint).path)] if cfg.segment.sam_checkpoint else []

    def doctor_rows(self, cfg: Any, device: str, load: bool, active: bool) -> list[Row]:
        ck = cfg.segment.sam_checkpoint
        if ck:
            return [_load_row(cfg.segment.sam_model_type, ck, device) if load else ("ok", "segment.sam_checkpoint", f"{ck} (not loaded)")]
        return [("FAIL", "segment.sam_checkpoint", "segment.mode sam needs segment.sam_checkpoint")] if active else []

    def preflight(self, cfg: Any, device: str) -> None:
        """The SAM checkpoint must exist and load (else exit 2, cache untouched)."""
        sec = cfg.segment
        preflight_weights(
            "segment.sam_checkpoint",
            sec.sam_checkpoint,
            lambda: sam_weights(cfg),
            "file",
            "give a local segment-anything checkpoint or an official name (sam_vit_b, sam_vit_l, sam_vit_h) in params.yaml",
            lambda ck: sam_masker(sec, device, ck),
            f"a {sec.sam_model_type} model",
        )

    def work(self, ctx: Any, object_id: str, det: Any = None) -> tuple[Any, dict[str, Any]]:
        sec = ctx.config.segment
        render = ctx.store("render")
        key = _sam_key(ctx)
        cached = _cached_embeddings(ctx, object_id)
        masks, emb = sam_masker(sec, ctx.device, sam_path(ctx.config)).masks_for_object(render.read(object_id, "rgb"), det, cached)
        views = sorted(emb)
        arrays: dict[str, np.ndarray] = {}
        if views:
            arrays["embed"] = np.concatenate([emb[v] for v in views]).astype(np.float16)
            arrays["embed_views"] = np.asarray(views, dtype=np.int16)
        return masks, {
            "arrays": arrays,
            "render_fingerprint": render.stored_fingerprint(object_id),
            "sam": key,
            "sam_weights": {"spec": sec.sam_checkpoint, "digest": file_digest(sam_path(ctx.config))},
        }
