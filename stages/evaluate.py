"""``partstad evaluate``: predictions of PartSLIP, PartSTAD and the two ablations, and metrics.

Per object (cache/evaluate/<Cat>.zarr): ``sem_<method>`` (N,) i16, ``ins_<method>`` (N,)
i32, ``inst_label_<method>`` / ``inst_conf_<method>`` per predicted instance, and for
PartSTAD the superpoint probabilities ``prob_partstad`` (S,K+1) and the learned box weights
``box_weight_partstad`` (B,). Methods: ``partslip``
(box voting baseline), ``partstad`` (weighted masks), ``partstad_boxes`` (weights without
masks) and ``masks_only`` (masks without weights). Objects without ground truth get
predictions only. Metrics (semantic mIoU and instance mAP50, SPEC §8, in percent) go to
``metrics/evaluate/<Cat>.json`` (full: per part, provenance; a plain DVC out) and the
headline ``metrics/headline/{mIoU,mAP50}/<Cat>.json`` (per method only: the DVC metrics).

Method ``auto`` (metrics only): per category, whichever of PartSLIP, masks without weights,
weights on boxes and PartSTAD has the highest semantic mIoU on the labelled validation
shapes (ties keep the simpler method; without validation shapes PartSTAD, see
:func:`auto_choice`). The validation shapes are
therefore always predicted too; ``metrics[...]["auto"]`` says which method was picked and why.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click
import numpy as np

from pipeline.errors import BadInputError, ObjectError
from pipeline.headline import headline, headline_paths
from pipeline.meta import part_names, small_part_mask
from stages.common import (
    ParamsError,
    common_options,
    finish,
    key_resolver,
    load_params,
    make_context,
    resolve_categories,
    resolve_device,
    select_objects,
    write_json,
)
from stages.config import PipelineConfig
from stages.lifted_io import read_box_valid, read_lifted
from stages.model_check import check_model, check_models_dir, weights_key
from stages.parallel import effective_jobs, map_categories
from stages.provenance import object_sources, run_components
from stages.provenance import provenance as provenance_record
from stages.runner import StageContext, StageReport, run_stage
from stages.store import StoreBusyError, StoreCorruptError, store_lock
from stages.train_io import prepare_object

log = logging.getLogger("partstad")
METHODS = ("partslip", "partstad", "partstad_boxes", "masks_only")
_NETS: dict[tuple[str, int, int], Any] = {}


def _net(path: Path):
    from pipeline.train.checkpoint import WeightsFileError, load_weights

    if not path.is_file():
        raise BadInputError("trained weights not found (run `partstad train` first)", path=path)
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)  # a retrained file is a new net (long-lived workers)
    if key not in _NETS:
        try:  # safetensors only, every tensor and number finite: anything else is refused, never executed
            _NETS[key] = load_weights(path)
        except WeightsFileError as exc:
            raise BadInputError(f"cannot load trained weights ({exc.reason})", path=path) from None
    return _NETS[key]


def _predict(ctx: StageContext, object_id: str, mode: str, weights: Path):
    import torch

    from pipeline.train.decode import labels_from_probs, predict

    net, theta, meta = _net(weights)  # tau and eps as saved by train
    obj = prepare_object(ctx, object_id, mode, pos_enc=meta.get("pos_enc", "True") == "True")
    if int(obj.x.shape[1]) != net.in_dim:  # features of another detector than the model was trained on
        width = int(ctx.store("detect").read(object_id, "feat").shape[1])
        raise BadInputError(
            f"its detector features are {width}-d, and the model {weights} was trained on "
            f"{width + net.in_dim - int(obj.x.shape[1])}-d features (another detector backend or feat_dim: "
            "re-run detect with the model's settings, or retrain)",
            object_id=object_id,
            path=ctx.store("detect").path(object_id),
        )
    P = predict(net, theta, obj)
    lifted = read_lifted(ctx, object_id, mode)
    labels_sp = labels_from_probs(P, lifted.valid, small_part_mask(ctx.category))
    with torch.no_grad():  # the learned per-box weights (B,), shown by the report
        weights_box = net(obj.x).cpu().numpy().astype(np.float32)
    return lifted, P, labels_sp, weights_box


def evaluate_work(ctx: StageContext, object_id: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    from pipeline.partslip import partslip_instances, partslip_semantic, partstad_instances, semantic_scores
    from pipeline.train.ablations import masks_without_weights

    models = Path(ctx.runtime["models"]) / ctx.category
    xyz = ctx.store("ingest").read(object_id, "xyz")
    vis = ctx.store("visibility").read_all(object_id, ["uv", "visible"])
    xyxy = ctx.store("detect").read(object_id, "xyxy")
    small = small_part_mask(ctx.category)
    out: dict[str, np.ndarray] = {}

    def put(method: str, labels_point: np.ndarray, inst) -> None:
        out[f"sem_{method}"] = np.asarray(labels_point, dtype=np.int16)
        out[f"ins_{method}"] = inst.ins_point.astype(np.int32)
        out[f"inst_label_{method}"] = inst.instance_label.astype(np.int16)
        out[f"inst_conf_{method}"] = inst.instance_confidence.astype(np.float32)

    lifted_box = read_lifted(ctx, object_id, "box")
    ps = partslip_semantic(lifted_box, read_box_valid(ctx, object_id, lifted_box.n_boxes), small)  # lift's whole-object filter
    put("partslip", ps.labels_point, partslip_instances(ps, lifted_box, xyz, vis["uv"], vis["visible"], xyxy))

    lifted, P, lab, box_w = _predict(ctx, object_id, "mask", models / "partstad.safetensors")
    # Instances: PartSLIP's grouping (§6.3) on each method's labels. The ratio lists come from
    # the box membership for every method (SPEC §7.12 leaves it open): SAM masks fragment
    # the ratio lists of one part across superpoints and split instances.
    put("partstad", lab[lifted.sp], partstad_instances(lab, P, lifted_box, xyz, vis["uv"], vis["visible"], xyxy))
    out["prob_partstad"] = P.astype(np.float32)
    out["box_weight_partstad"] = box_w  # (B,) f32, 4 bytes a box: which boxes the network trusted

    if (models / "partstad_boxes.safetensors").is_file():
        lb, Pb, labb, _ = _predict(ctx, object_id, "box", models / "partstad_boxes.safetensors")
        put("partstad_boxes", labb[lb.sp], partstad_instances(labb, Pb, lifted_box, xyz, vis["uv"], vis["visible"], xyxy))

    # the threshold fitted by train on the labelled few-shot + val shapes (0.5 for older models)
    thr = float(_net(models / "partstad.safetensors")[2].get("masks_only_threshold", 0.5))
    lab_m = masks_without_weights(lifted, small, thresh=thr)
    cov = semantic_scores(lifted)
    P_m = np.concatenate([np.full((len(cov), 1), thr), cov], axis=1)
    put("masks_only", lab_m[lifted.sp], partstad_instances(lab_m, P_m, lifted_box, xyz, vis["uv"], vis["visible"], xyxy))
    # which weights computed these labels: export names exactly this model, never another
    return out, {
        "methods": [m for m in METHODS if f"sem_{m}" in out],
        "model": {"dir": str(models), "files": ctx.runtime.get("model_files") or weights_key(models)},
    }


def category_metrics(ctx: StageContext, object_ids: list[str]) -> dict[str, Any]:
    """Semantic mIoU and instance mAP50 (percent) per method over the evaluated objects with GT."""
    from pipeline.metrics import instance_ap50, part_iou_table

    names = part_names(ctx.category)
    K = len(names)
    ev, ing = ctx.store("evaluate"), ctx.store("ingest")
    gts: list[tuple[np.ndarray, np.ndarray]] = []
    preds: dict[str, list[np.ndarray]] = {m: [] for m in METHODS}
    insts: dict[str, list] = {m: [] for m in METHODS}
    for oid in object_ids:
        if not ev.is_complete(oid) or not ing.attrs(oid).get("labelled", True):
            continue
        gts.append((ing.read(oid, "sem"), ing.read(oid, "ins")))
        present = set(ev.attrs(oid).get("methods", []))
        for m in METHODS:
            if m in present:
                preds[m].append(ev.read(oid, f"sem_{m}"))
                insts[m].append((ev.read(oid, f"ins_{m}"), ev.read(oid, f"inst_label_{m}"), ev.read(oid, f"inst_conf_{m}")))
    result: dict[str, Any] = {"category": ctx.category, "n_test": len(gts), "methods": {}}
    for m in METHODS:
        if not preds[m] or len(preds[m]) != len(gts):
            continue
        iou = part_iou_table(preds[m], [g[0] for g in gts], K)
        ap = instance_ap50(insts[m], gts, K)
        result["methods"][m] = {
            "miou": float(np.nanmean(iou) * 100) if np.any(~np.isnan(iou)) else None,
            "map50": float(np.nanmean(ap) * 100) if np.any(~np.isnan(ap)) else None,
            "part_iou": {n: (None if np.isnan(v) else float(v * 100)) for n, v in zip(names, iou)},
            "part_ap50": {n: (None if np.isnan(v) else float(v * 100)) for n, v in zip(names, ap)},
        }
    return result


#: methods ``auto`` chooses among, simplest first: a tie on validation keeps the simpler one
AUTO_CANDIDATES: tuple[str, ...] = ("partslip", "masks_only", "partstad_boxes", "partstad")


def auto_choice(ctx: StageContext, val_ids: list[str]) -> dict[str, Any]:
    """Pick, per category, the method with the highest validation mIoU (method ``auto``).

    Candidates are every method evaluate computed (PartSLIP, masks without weights, weights
    on boxes, PartSTAD); a later candidate is kept only when strictly better than every
    simpler one, so a trained model that does not beat a method without training falls back
    to it. Without labelled validation shapes there is nothing to compare and PartSTAD is
    kept (the paper's method).
    """
    val: dict[str, Any] = category_metrics(ctx, val_ids) if val_ids else {"methods": {}, "n_test": 0}
    miou = {m: val["methods"][m]["miou"] for m in AUTO_CANDIDATES if val["methods"].get(m, {}).get("miou") is not None}
    if val["n_test"] == 0 or "partstad" not in miou:
        return {"method": "partstad", "reason": "no labelled validation shape: PartSTAD kept", "val_miou": miou, "n_val": val["n_test"]}
    pick = AUTO_CANDIDATES[0] if AUTO_CANDIDATES[0] in miou else next(iter(miou))
    for m in miou:
        if miou[m] > miou[pick]:
            pick = m
    why = f"highest validation mIoU of {', '.join(miou)} (ties keep the simpler method)"
    return {"method": pick, "reason": why, "val_miou": miou, "n_val": val["n_test"]}


def model_provenance(models: Path, cfg: PipelineConfig, category: str) -> dict[str, Any]:
    """What the metrics record about the weights: file hashes and the training config. Every
    file is checked against the run (raises ParamsError on a mismatch)."""
    out: dict[str, Any] = {"dir": str(models), "files": {}}
    digests = weights_key(models)
    for p in sorted(models.glob("*.safetensors")):
        net, _theta, meta = _net(p)
        check_model(p, cfg, category, net, meta)
        out["files"][p.name] = {
            "sha256_20": digests[p.name],
            "tau": meta.get("tau"),
            "config": json.loads(meta["config"]) if "config" in meta else None,
        }
    return out


def _evaluate_one(category: str, *args: Any) -> tuple[StageReport | None, list[str]]:
    """:func:`_evaluate_category`; a damaged category-wide file (the ingest manifest) fails
    this category only, the others go on."""
    try:
        return _evaluate_category(category, *args)
    except ObjectError as exc:
        return None, [f"[evaluate] {category}: {exc}"]


def _evaluate_category(
    category: str,
    cfg: PipelineConfig,
    cache: str,
    dev: str,
    objects: str | None,
    split_list: tuple[str, ...],
    models_root: str,
    metrics_root: str,
    scheduler: str,
    force: bool,
    lock_timeout: float,
) -> tuple[StageReport | None, list[str]]:
    """Evaluate one category and write its metrics: (report, problems); runs in a --jobs worker too."""
    from pipeline.meta import register_part_names

    register_part_names(cfg.data.part_names)  # a worker process starts without them
    problems: list[str] = []
    report = None
    models = Path(models_root) / category
    weights = models / "partstad.safetensors"
    ids = select_objects(cache, category, objects, split_list)
    if not ids:
        problems.append(
            f"[evaluate] {category}: {'--objects ' + repr(objects) + ' matched no' if objects else 'no'} ingested object in splits {','.join(split_list)}; metrics left as they were"
        )
        return report, problems
    val_ids = select_objects(cache, category, None, ("val",))  # method auto picks on these
    extra_val = [o for o in val_ids if o not in ids]
    ctx = make_context("evaluate", category, cache, cfg, dev, runtime={"models": models_root})
    try:
        with store_lock(f"{models}.lock", str(models), lock_timeout):  # no retraining under our feet
            if not weights.is_file():
                problems.append(
                    f"[evaluate] {category}: trained weights not found at {weights} (run `partstad train --category {category}`)"
                )
                return report, problems
            try:  # checked up front by the command too; here again under the lock (a retrain may have happened)
                provenance = model_provenance(models, cfg, category)
            except (BadInputError, ParamsError) as exc:
                problems.append(f"[evaluate] {category}: {exc.format_message() if isinstance(exc, ParamsError) else exc}")
                return report, problems
            model_files = {name: f["sha256_20"] for name, f in provenance["files"].items()}
            ctx.runtime["model_files"] = model_files
            report = run_stage(
                ctx,
                ids + extra_val,
                evaluate_work,
                keys=key_resolver(ctx, lambda stage, oid: model_files if stage == "evaluate" else None),
                scheduler=scheduler,
                force=force,
                lock_timeout=lock_timeout,
            )
    except (StoreBusyError, StoreCorruptError) as exc:
        problems.append(f"[evaluate] {category}: {exc}")
        return report, problems
    evaluated = [o for o in ids if o not in {f["object"] for f in report.failed}]
    if not evaluated:
        problems.append(f"[evaluate] {category}: every object failed; metrics left as they were")
        return report, problems
    metrics = category_metrics(ctx, evaluated)
    failed_ids = {f["object"] for f in report.failed}
    metrics["auto"] = auto_choice(ctx, [o for o in val_ids if o not in failed_ids])
    if metrics["auto"]["method"] in metrics["methods"]:
        metrics["methods"]["auto"] = {**metrics["methods"][metrics["auto"]["method"]], "picked": metrics["auto"]["method"]}
    lift = ctx.store("lift")
    components = run_components(cache, category, evaluated)  # oracle detector/SAM, synthetic shapes
    metrics["simulated"] = bool(components) or any(lift.attrs(o).get("simulated", False) for o in evaluated if lift.is_complete(o))
    metrics["failed"] = [f["object"] for f in report.failed]
    metrics["provenance"] = {
        **provenance_record(cfg, components, provenance, object_sources(cache, category, evaluated), stage="evaluate"),
        "splits": list(split_list),
        "detect_backend": cfg.detect.backend,
        "segment_mode": cfg.segment.mode,
    }
    write_json(Path(metrics_root) / "evaluate" / f"{category}.json", metrics)
    for name, values in headline(metrics["methods"]).items():  # what `dvc metrics show` prints
        write_json(Path(metrics_root) / headline_paths(category)[name], values)
    for m, v in metrics["methods"].items():
        click.echo(
            f"  {category:18s} {m:15s} mIoU {v['miou'] if v['miou'] is None else round(v['miou'], 1)}  mAP50 {v['map50'] if v['map50'] is None else round(v['map50'], 1)}"
            + ("  (simulated)" if metrics["simulated"] else "")
        )
    return report, problems


@click.command()
@common_options
@click.option("--models", "models_root", default="models", show_default=True, help="Directory with <Category>/partstad.safetensors.")
@click.option("--metrics", "metrics_root", default="metrics", show_default=True, help="Where metrics/evaluate/<Category>.json goes.")
@click.option("--splits", default=None, help="Comma-separated splits to evaluate (default: evaluate.splits in params).")
def evaluate(
    params_path: str,
    cache: str,
    categories: tuple[str, ...],
    objects: str | None,
    scheduler: str,
    device: str,
    force: bool,
    models_root: str,
    metrics_root: str,
    splits: str | None,
    jobs: str,
    keep_going: bool,
    lock_timeout: float,
) -> None:
    """Predict with PartSLIP, PartSTAD and ablations; write per-object labels and metrics.

    Metrics are written only when at least one object was evaluated; the exit code is 1
    when an object failed or nothing matched (unless --keep-going for object failures).
    """
    cfg = load_params(params_path)
    split_list = tuple(splits.split(",")) if splits else tuple(cfg.evaluate.splits)
    bad = [s for s in split_list if s not in ("fewshot", "val", "test")]
    if bad:
        raise click.BadParameter(f"unknown split(s) {', '.join(bad)} (fewshot, val, test)", param_hint="--splits")
    dev = resolve_device(device)
    cats = resolve_categories(cfg, categories)
    for cat in cats:  # unusable or mismatched weights: exit 2 naming the file and both sides, before any object
        check_models_dir(Path(models_root) / cat, cfg, cat)
    results = map_categories(
        _evaluate_one,
        cats,
        effective_jobs(jobs, scheduler, dev),
        cfg,
        cache,
        dev,
        objects,
        split_list,
        models_root,
        metrics_root,
        scheduler,
        force,
        lock_timeout,
    )
    reports = [r for r, _ in results if r is not None]
    problems = [p for _, ps in results for p in ps]
    finish(reports, problems, keep_going)
