"""``detect.backend: grounding_dino``: the real detector (local Grounding DINO weights, base or
adapted per category by ``partstad adapt-detector``).

Weights resolution and digests live in stages/detector_weights.py (shared with
adapt-detector); this module says what the detect stage does with them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.errors import BadInputError
from pipeline.meta import part_names
from stages.backends.base import Backend, Row, TorchModel
from stages.backends.weights_preflight import preflight_weights
from stages.detector_weights import adapted_dir, base_weights, detector_weights, dir_digest, has_adapted_model, weights_key, weights_records

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


def _grounding_dino(ctx: Any, object_id: str, sec: Any):
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


def _load_row(wd: str, device: str) -> Row:
    try:
        from pipeline.detect.grounding_dino import load_grounding_dino
        from stages.weights_resolve import resolve_detector_dir

        model, _ = load_grounding_dino(resolve_detector_dir(wd).path, device)  # a Hugging Face id: from the local cache
        n = sum(p.numel() for p in model.parameters())
        return "ok", "detect.weights_dir", f"{wd} loads ({n / 1e6:.0f} M parameters)"
    except Exception as exc:  # noqa: BLE001
        return "FAIL", "detect.weights_dir", f"{wd} does not load ({type(exc).__name__}: {exc})"


class GroundingDino(TorchModel, Backend):
    name = "grounding_dino"
    description = "grounding_dino (real)"
    package = ("transformers", "transformers")

    def record(self, cfg: Any) -> dict[str, Any]:
        return {"weights_dir": cfg.detect.weights_dir}

    def weights_key(self, cfg: Any, category: str) -> dict[str, Any]:
        return weights_key(cfg, category)

    def weights_records(self, cfg: Any, categories: list[str] | None = None) -> list[dict[str, Any]]:
        return weights_records(cfg, categories)

    def weights_deps(self, cfg: Any) -> list[str]:
        from stages.weights_resolve import resolve_detector_dir

        out = [str(resolve_detector_dir(cfg.detect.weights_dir).path)] if cfg.detect.weights_dir else []
        if cfg.adapt.enabled:
            out.append(str(Path(cfg.adapt.out_dir)) + "/{category}")
        return out

    def doctor_rows(self, cfg: Any, device: str, load: bool, active: bool) -> list[Row]:
        wd = cfg.detect.weights_dir
        if wd:
            return [_load_row(wd, device) if load else ("ok", "detect.weights_dir", f"{wd} (not loaded)")]
        return [("FAIL", "detect.weights_dir", "detect.backend grounding_dino needs detect.weights_dir")] if active else []

    def preflight(self, cfg: Any, device: str) -> None:
        """The configured model must exist and load (else exit 2, cache untouched)."""
        import click

        from stages.common import ParamsError

        sec = cfg.detect
        preflight_weights(
            "detect.weights_dir",
            sec.weights_dir,
            lambda: base_weights(cfg),
            "directory",
            "give a local Grounding DINO model directory or a Hugging Face model id (org/name) in params.yaml",
            lambda wd: grounding_dino(sec, device, wd),
            "Grounding DINO",
        )
        if cfg.adapt.enabled:  # adapted weights are used per category: a broken directory stops the run here
            from pipeline.detect.grounding_dino import check_weights_dir

            for category in cfg.categories:
                if not has_adapted_model(cfg, category):
                    click.echo(
                        f"[detect] {category}: adapt.enabled but no adapted weights in {adapted_dir(cfg, category)} "
                        "(run `partstad adapt-detector`); using detect.weights_dir",
                        err=True,
                    )
                    continue
                try:
                    check_weights_dir(adapted_dir(cfg, category))
                except FileNotFoundError as exc:
                    raise ParamsError(f"adapted detector of {category}: {exc}") from None

    def work(self, ctx: Any, object_id: str) -> tuple[Any, dict[str, Any]]:
        sec = ctx.config.detect
        det, adapted = _grounding_dino(ctx, object_id, sec)
        # provenance of these boxes: the setting (not the machine's cache path) and the content digest
        weights_path, _ = detector_weights(ctx.config, ctx.category)
        return det, {
            "adapted_weights": bool(adapted),
            "weights": {"spec": str(weights_path) if adapted else sec.weights_dir, "digest": dir_digest(weights_path)},
        }
