"""Model files against the run that wants them: loaded, checked, compared, before any work.

Shared by evaluate, predict, export and train (a stage may not import another stage). The
pure comparison lives in :mod:`pipeline.train.model_card`; here the run side is read from the
params (category, part names, detector backend, the detector's feature width) and a mismatch
becomes exit code 2 naming the file and both values. :func:`evaluation_problem` says whether
a cached evaluate result was computed with exactly the weights (and inputs) in use now, so an
export never writes labels of another model than the one it names.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pipeline.errors import ObjectError
from pipeline.meta import part_names
from pipeline.train.model_card import RunSpec, card_metadata, layout_problems, mismatches, model_card, unrecorded
from stages.common import ParamsError
from stages.keys import files_digest

log = logging.getLogger("partstad")
_WARNED: set[str] = set()


def detector_feat_dim(cfg: Any, category: str) -> int | None:
    """Width of the features detect will write for ``category`` (None: unknown before it runs)."""
    backend = cfg.detect.backend
    if backend in ("oracle", "pixels"):
        return int(cfg.detect.feat_dim)
    if backend == "grounding_dino":
        from stages.detector_weights import detector_weights

        path, _adapted = detector_weights(cfg, category)
        try:
            d = json.loads((Path(path) / "config.json").read_text())["d_model"] if path is not None else None
        except (OSError, ValueError, KeyError, TypeError):
            return None  # detect's own preflight names the broken directory
        return int(d) if isinstance(d, int) and not isinstance(d, bool) else None
    return None  # import: whatever the imported features hold (checked per object by evaluate)


def run_spec(cfg: Any, category: str) -> RunSpec:
    """What this run feeds a model of ``category``."""
    return RunSpec(
        category=category,
        part_names=tuple(part_names(category)),
        detect_backend=cfg.detect.backend,
        feat_dim=detector_feat_dim(cfg, category),
    )


def model_metadata(cfg: Any, category: str) -> dict[str, str]:
    """Metadata train writes beside the weights so later loads can check them."""
    return card_metadata(category, part_names(category), cfg.detect.backend)


def load_model(path: Path) -> tuple[Any, float, dict[str, str]]:
    """(network, θ_null, metadata) of a weights file; any problem is exit 2 naming the file."""
    from pipeline.train.checkpoint import WeightsFileError, load_weights

    try:
        return load_weights(path)
    except WeightsFileError as exc:
        raise ParamsError(f"cannot load trained weights {exc}") from None


def check_model(path: Path, cfg: Any, category: str, net: Any = None, meta: dict[str, str] | None = None) -> None:
    """Refuse (exit 2) a weights file that is unusable or was trained for something else than
    this run: other category, part names, detector backend or feature width, or a file whose
    own records disagree. Properties an older file does not record are warned about once."""
    if net is None or meta is None:
        net, _theta, meta = load_model(path)
    card = model_card(meta, int(net.in_dim))
    problems = layout_problems(card, Path(path).name) + mismatches(card, run_spec(cfg, category))
    if problems:
        raise ParamsError(
            f"trained weights {path} do not fit this run ({'; '.join(problems)})"
            + (f": use the model trained for {card.category}" if card.category and card.category != category else "")
        )
    missing = unrecorded(card)
    if missing and str(path) not in _WARNED:
        _WARNED.add(str(path))
        log.warning(
            "%s does not record its %s (trained by an older version); only what it records is checked; retrain to record them",
            path,
            ", ".join(missing),
        )


def check_models_dir(models: Path, cfg: Any, category: str) -> None:
    """:func:`check_model` for every weights file of a category's model directory."""
    for p in sorted(Path(models).glob("*.safetensors")):
        check_model(p, cfg, category)


def weights_key(models: Path) -> dict[str, str]:
    """{file name: content hash} of a model directory's weights: evaluate's key extra."""
    return {p.name: files_digest([p]) for p in sorted(Path(models).glob("*.safetensors"))}


def evaluation_problem(cache: str, cfg: Any, category: str, object_id: str, models: Path) -> str | None:
    """None when the cached evaluate result of ``object_id`` is what evaluate would compute now
    with the weights in ``models`` (same key); else why it is not."""
    from stages.common import key_resolver, make_context
    from stages.store import CategoryStore

    stored = CategoryStore(cache, "evaluate", category).stored_fingerprint(object_id)
    if stored is None:
        return "evaluate has no complete result for this object"
    wk = weights_key(models)
    resolver = key_resolver(make_context("evaluate", category, cache, cfg), lambda stage, oid: wk if stage == "evaluate" else None)
    try:
        expected = resolver.key("evaluate", object_id)
    except ObjectError as exc:
        return str(exc)
    if stored != expected:
        return f"the cached labels were not computed with the weights in {models} and the current inputs and settings (run `partstad evaluate`)"
    return None
