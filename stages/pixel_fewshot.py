"""The ``pixels`` detector's few-shot part classifier of a category: which shapes it is fitted
on, what enters the detect keys, and the fit itself (once per category and process).

Why: like a detector fine-tuned on the few-shot shapes, the simulated ``pixels`` detector
labels and scores boxes with a classifier fitted on the few-shot objects' renders
(:mod:`pipeline.detect.pixel_sim`). Every detect result of the category therefore depends
on those objects: the current keys of their ingest and render results enter each detect key
(:func:`fewshot_key`, used by ``stages.common.key_resolver``), so re-rendering or
re-ingesting a few-shot shape re-runs detect for the whole category. Shared by
stages/detect.py and the key resolver (a stage may not import another stage).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline.errors import BadInputError, ObjectError

_FITTED: dict[tuple[Any, ...], Any] = {}


def fewshot_objects(cache: str, category: str) -> list[str]:
    """The category's few-shot object ids (ingest manifest, split ``fewshot``), sorted."""
    from stages.common import manifest

    return sorted({str(r["object"]) for r in manifest(cache, category) if isinstance(r, dict) and r.get("split") == "fewshot"})


def fewshot_key(cache: str, category: str, current: Callable[[str, str], str]) -> dict[str, Any]:
    """The detect-key entry of backend pixels: the few-shot objects and the current keys of
    their ingest and render results (``current(stage, object_id)``, verified up to date)."""
    ids = fewshot_objects(cache, category)
    out = []
    for oid in ids:
        try:
            out.append([oid, current("ingest", oid), current("render", oid)])
        except ObjectError as exc:
            raise type(exc)(
                f"detect.backend pixels fits its classifier on the few-shot objects of {category}, "
                f"and few-shot object {oid} is not ready: {exc}",
                path=exc.path,
            ) from None
    return {"pixel_fewshot": out}


def detector_params(cfg: Any):
    """(proposal knobs, pixels knobs) of the detect section."""
    from pipeline.detect.oracle_params import OracleDetectorParams
    from pipeline.detect.pixel_params import PixelDetectorParams

    sec = cfg.detect
    knobs = {**sec.oracle.model_dump(), "score_threshold": sec.score_threshold, "feat_dim": sec.feat_dim, "max_per_view": sec.max_per_view}
    knobs["fp_size"] = tuple(knobs["fp_size"])
    return OracleDetectorParams(**knobs), PixelDetectorParams(**sec.pixels.model_dump())


def fewshot_classifier(ctx: Any, object_id: str):
    """The category's fitted classifier (memoised per process on the few-shot objects' stored
    keys and the detect settings) and a short record for the detect attrs."""
    from pipeline.detect.pixel_sim import fit_fewshot_classifier
    from pipeline.meta import part_names
    from stages.config import section_digest
    from stages.helpers import object_seed
    from stages.keys import digest

    cfg = ctx.config
    ids = fewshot_objects(ctx.cache, ctx.category)
    if not ids:
        raise BadInputError(
            f"detect.backend pixels fits its part classifier on the few-shot shapes, and {ctx.category} has none "
            "(split fewshot in the ingest manifest)",
            object_id=object_id,
        )
    ing, ren = ctx.store("ingest"), ctx.store("render")
    stored = [[oid, ing.stored_fingerprint(oid), ren.stored_fingerprint(oid)] for oid in ids]
    memo = (str(ctx.cache), ctx.category, digest(stored), digest(section_digest(cfg.detect)))
    if memo not in _FITTED:
        proposal, pixels = detector_params(cfg)
        objects = []
        for oid, ing_fp, ren_fp in stored:
            if ing_fp is None or ren_fp is None:
                raise BadInputError(
                    f"few-shot object {oid} has no complete ingest/render result, which the pixels detector's "
                    "classifier is fitted on: run `partstad render` first",
                    object_id=object_id,
                )
            if not ing.attrs(oid).get("labelled", True):
                raise BadInputError(
                    f"few-shot object {oid} has no part labels to fit the pixels detector's classifier on", object_id=object_id
                )
            r = ren.read_all(oid, ["rgb", "depth", "pix2pt"])
            objects.append(
                (r["rgb"], r["depth"], r["pix2pt"], ing.read(oid, "sem"), ing.read(oid, "ins"), object_seed(cfg.detect.seed, oid))
            )
        clf = fit_fewshot_classifier(objects, len(part_names(ctx.category)), proposal, pixels)
        _FITTED[memo] = (clf, {"fewshot_objects": len(ids), "classifier_digest": clf.digest()})
    return _FITTED[memo]
