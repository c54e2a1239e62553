"""What the report's failure gallery and box-weight figure read from the cache.

Glue only: reads the evaluate / ingest / detect / segment / render stores of one category;
the ranking, counting and drawing are in ``pipeline.report_gallery`` / ``report_boxes``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.meta import part_names
from stages.common import make_context
from stages.config import PipelineConfig
from stages.store import CategoryStore

#: PartSTAD methods of the gallery and the confusion matrices: (evaluate array suffix, title)
GALLERY_METHODS = (("partslip", "PartSLIP"), ("partstad", "PartSTAD"))


def object_labels(ing: CategoryStore, ev: CategoryStore, object_id: str, auto_method: str | None) -> dict[str, Any]:
    """What the pictures and the 3D block of one evaluated object show: "labels" and
    "instances" ({title: (N,)}: ground truth when labelled, PartSLIP, PartSTAD) and "auto"
    ({"title", "sem", "ins"} of the method evaluate's ``auto`` picked, None when unknown)."""
    from pipeline.report import METHOD_TITLES

    methods = set(ev.attrs(object_id).get("methods", []))
    labels: dict[str, np.ndarray] = {}
    instances: dict[str, np.ndarray] = {}
    if ing.attrs(object_id).get("labelled", True):
        labels["ground truth"], instances["ground truth"] = ing.read(object_id, "sem"), ing.read(object_id, "ins")
    for m, title in GALLERY_METHODS:
        if m in methods:
            labels[title], instances[title] = ev.read(object_id, f"sem_{m}"), ev.read(object_id, f"ins_{m}")
    auto = None
    if auto_method is not None and auto_method in methods:
        auto = {
            "title": f"auto: {METHOD_TITLES.get(auto_method, auto_method)}",
            "sem": ev.read(object_id, f"sem_{auto_method}"),
            "ins": ev.read(object_id, f"ins_{auto_method}"),
        }
    return {"labels": labels, "instances": instances, "auto": auto}


def auto_method(metrics: dict[str, Any]) -> str | None:
    """The method evaluate's ``auto`` picked for a category (its metrics JSON), or None."""
    auto = metrics.get("auto")
    method = auto.get("method") if isinstance(auto, dict) else None
    return method if isinstance(method, str) else None


def failure_data(cache: str, category: str, test_ids: list[str], n: int, auto: str | None = None) -> dict[str, Any]:
    """Per-object mIoU, the worst objects, their pictures' arrays and the confusion counts
    of one category, over its evaluated, labelled test objects (``auto``: the method
    evaluate's ``auto`` picked, a fourth scene of the 3D blocks)."""
    from pipeline.metrics import object_miou
    from pipeline.report_gallery import confusion_counts, worst_objects

    names = list(part_names(category))
    ev, ing = CategoryStore(cache, "evaluate", category), CategoryStore(cache, "ingest", category)
    scores: dict[str, dict[str, float]] = {}
    preds: dict[str, list[np.ndarray]] = {m: [] for m, _ in GALLERY_METHODS}
    gts: list[np.ndarray] = []
    for oid in test_ids:
        if not ev.is_complete(oid) or not ing.attrs(oid).get("labelled", True):
            continue
        methods = set(ev.attrs(oid).get("methods", []))
        if not all(m in methods for m, _ in GALLERY_METHODS):
            continue
        gt = ing.read(oid, "sem")
        gts.append(gt)
        scores[oid] = {}
        for m, _ in GALLERY_METHODS:
            p = ev.read(oid, f"sem_{m}")
            preds[m].append(p)
            scores[oid][m] = object_miou(p, gt, len(names)) * 100
    worst = worst_objects(scores, n)
    shown = list(dict.fromkeys(o for ids in worst.values() for o in ids))
    objects = {}
    for oid in shown:
        objects[oid] = {"xyz": ing.read(oid, "xyz"), **object_labels(ing, ev, oid, auto), "miou": scores[oid]}
    confusion = {t: confusion_counts(preds[m], gts, len(names)) for m, t in GALLERY_METHODS} if gts else {}
    return {"part_names": names, "scores": scores, "worst": worst, "objects": objects, "confusion": confusion}


def _weights_from_model(cfg: PipelineConfig, cache: str, category: str, object_id: str, models_root: str) -> np.ndarray | None:
    """Per-box weights recomputed from the trained network, for caches evaluated before
    evaluate stored ``box_weight_partstad`` (None when the model is missing or unusable)."""
    import torch

    from pipeline.errors import ObjectError
    from stages.evaluate import _net
    from stages.train_io import prepare_object

    path = Path(models_root) / category / "partstad.safetensors"
    try:
        net, _theta, meta = _net(path)
        ctx = make_context("evaluate", category, cache, cfg, "cpu", runtime={"models": models_root})
        obj = prepare_object(ctx, object_id, "mask", pos_enc=meta.get("pos_enc", "True") == "True")
        if int(obj.x.shape[1]) != net.in_dim:
            return None
        with torch.no_grad():
            return net(obj.x).cpu().numpy().astype(np.float32)
    except (ObjectError, OSError, KeyError, ValueError):
        return None


def box_weight_data(cfg: PipelineConfig, cache: str, category: str, object_id: str, models_root: str) -> dict[str, Any] | None:
    """Views, boxes, learned weights and SAM masks of one object, or None when a store lacks
    it. ``source`` says where the weights came from (evaluate's store or the model file)."""
    ev, det, seg, ren = (CategoryStore(cache, s, category) for s in ("evaluate", "detect", "segment", "render"))
    if not (ev.is_complete(object_id) and det.is_complete(object_id) and ren.is_complete(object_id)):
        return None
    boxes = {k: det.read(object_id, k) for k in ("xyxy", "view", "label")}
    if "box_weight_partstad" in (ev.attrs(object_id).get("stored_arrays") or {}):
        weight, source = ev.read(object_id, "box_weight_partstad"), "evaluate's stored box weights"
    else:
        w = _weights_from_model(cfg, cache, category, object_id, models_root)
        if w is None:
            return None
        weight, source = (
            w,
            f"recomputed from {models_root}/{category}/partstad.safetensors (cache evaluated before box weights were stored)",
        )
    if len(weight) != len(boxes["xyxy"]):
        return None
    mask = seg.read(object_id, "mask") if seg.is_complete(object_id) else None
    rgb = ren.read(object_id, "rgb")
    if mask is not None and mask.shape != (len(weight), *rgb.shape[1:3]):
        mask = None  # SAM ran at another image size than these views: boxes only
    return {"object": object_id, "rgb": rgb, **boxes, "weight": weight, "mask": mask, "source": source}
