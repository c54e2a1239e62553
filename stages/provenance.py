"""What produced a number: detector and weights, SAM mode and checkpoint, model directory,
params hash, and which components were simulated.

``weights`` lists every weights file the real backends load (Grounding DINO base and adapted,
SAM checkpoint) with the setting, the resolved local path (a Hugging Face id or SAM name
resolves into the local caches) and the content digest that also enters the cache keys.

Metrics, exports and the report carry this record. ``simulated_components`` lists the
simulated parts that actually produced an object's results (read from the cached results'
attrs, not from the current params): the simulated detectors (``oracle``: reads the ground
truth; ``pixels``: reads the rendered pixels, boxes placed from the ground truth), the
simulated SAMs (``oracle``, ``pixels``), the synthetic shape generator. It is empty, and no text says "simulated", when real components did it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stages.backends.detectors import DETECTORS
from stages.backends.maskers import MASKERS
from stages.backends.sources import SOURCES
from stages.config import PipelineConfig, config_hash
from stages.stage_table import dvc_params
from stages.store import CategoryStore

# The texts of the built-in simulated components (each backend's ``description``; the report names them).
DETECTOR = DETECTORS["oracle"].description
DETECTOR_PIXELS = DETECTORS["pixels"].description
SAM = MASKERS["oracle"].description
SAM_PIXELS = MASKERS["pixels"].description
SHAPES = SOURCES["synthetic"].description


def _component(registry: Any, name: Any, fallback: str) -> str:
    """The provenance text of a simulated backend recorded in a result's attrs (``fallback`` for a
    name no longer registered: the result still says it was simulated)."""
    if isinstance(name, str) and name in registry:
        return registry[name].component() or fallback
    return fallback


def object_components(cache: str, category: str, object_id: str) -> list[str]:
    """The simulated components behind one object's cached results (in pipeline order)."""
    out = []
    attrs = {}
    for stage in ("ingest", "detect", "segment"):
        st = CategoryStore(cache, stage, category)
        try:
            attrs[stage] = st.attrs(object_id) if st.is_complete(object_id) else {}
        except Exception:  # noqa: BLE001 - an unreadable record says nothing either way
            attrs[stage] = {}
    if attrs["ingest"].get("simulated", attrs["ingest"].get("source") == "synthetic"):
        out.append(_component(SOURCES, attrs["ingest"].get("source"), SHAPES))
    if attrs["detect"].get("simulated"):
        out.append(_component(DETECTORS, attrs["detect"].get("backend"), DETECTOR))
    if attrs["segment"].get("simulated"):
        out.append(_component(MASKERS, attrs["segment"].get("mode"), SAM))
    return out


def object_sources(cache: str, category: str, object_ids: list[str]) -> list[str]:
    """Where the cached shapes came from (ingest's ``source`` attribute: synthetic, files, …)."""
    st = CategoryStore(cache, "ingest", category)
    found = []
    for oid in object_ids:
        try:
            src = st.attrs(oid).get("source") if st.is_complete(oid) else None
        except Exception:  # noqa: BLE001 - an unreadable record says nothing
            src = None
        if src and src not in found:
            found.append(str(src))
    return sorted(found)


def run_components(cache: str, category: str, object_ids: list[str]) -> list[str]:
    """Union of :func:`object_components` over objects, in a fixed order."""
    found = {c for o in object_ids for c in object_components(cache, category, o)}
    order = [b.component() for reg in (SOURCES, DETECTORS, MASKERS) for b in reg.values()] + [SHAPES, DETECTOR, SAM]
    return sorted(found, key=lambda c: order.index(c) if c in order else len(order))


def weights_files(cfg: PipelineConfig, categories: list[str] | None = None) -> list[dict[str, Any]]:
    """Every weights file or directory the configured backends load (base and adapted Grounding
    DINO, SAM checkpoint), each with its setting, resolved path, source and content digest;
    [] for the simulated backends. ``categories``: whose adapted detectors (default: params)."""
    return DETECTORS.configured(cfg).weights_records(cfg, categories) + MASKERS.configured(cfg).weights_records(cfg, categories)


def provenance(
    cfg: PipelineConfig,
    components: list[str],
    models: dict[str, Any] | str | Path | None = None,
    sources: list[str] | None = None,
    categories: list[str] | None = None,
    stage: str | None = None,
) -> dict[str, Any]:
    """The provenance record (JSON-ready). ``models``: a model directory or its description;
    ``sources``: where the cached shapes came from (:func:`object_sources`; default data.source);
    ``categories``: whose adapted detector weights to name (default: every category of params)."""
    det, seg = cfg.detect, cfg.segment
    rec: dict[str, Any] = {
        # a DVC-tracked record (``stage``) hashes only the settings its stage depends on
        "params_hash": config_hash(cfg, dvc_params(stage) if stage else None),
        "data_source": ", ".join(sources) if sources else cfg.data.source,
        # the backend's own settings (weights) where it loads any; the keys stay for every backend
        "detector": {"backend": det.backend, "weights_dir": None, **DETECTORS.configured(cfg).record(cfg)},
        "sam": {"mode": seg.mode, "checkpoint": None, "model_type": None, **MASKERS.configured(cfg).record(cfg)},
        "models": str(models) if isinstance(models, (str, Path)) else models,
    }
    weights = weights_files(cfg, categories)
    if weights:
        rec["weights"] = weights
    if components:
        rec["simulated_components"] = list(components)
    return rec


def describe(rec: dict[str, Any]) -> str:
    """One human line: detector, SAM, model dir, params hash; names simulated parts if any."""
    det, sam = rec.get("detector", {}), rec.get("sam", {})
    d = det.get("backend", "?") + (f" ({det['weights_dir']})" if det.get("weights_dir") else "")
    s = sam.get("mode", "?") + (f" ({sam.get('model_type')}, {sam['checkpoint']})" if sam.get("checkpoint") else "")
    models = rec.get("models")
    mdir = models.get("dir") if isinstance(models, dict) else models
    line = f"detector {d}; masks {s}; model {mdir or 'none'}; params {rec.get('params_hash')}"
    if rec.get("simulated_components"):
        line += "; simulated: " + ", ".join(rec["simulated_components"])
    return line
