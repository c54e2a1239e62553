"""``partstad train``: fit the per-box weight network and the null logit of one category.

Reads only cache/lift (membership, targets, view directions) and the detector features in
cache/detect. Writes ``models/<Cat>/partstad.safetensors`` (and, with
``train.ablation_boxes``, ``partstad_boxes.safetensors`` trained on box membership: the
"weights without masks" ablation), the curve ``plots/train/<Cat>.csv`` and
``metrics/train/<Cat>.json``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import click

from pipeline.errors import ObjectError
from stages.common import (
    StageFailed,
    check_cache,
    device_option,
    finish,
    keep_going_options,
    load_params,
    make_context,
    params_option,
    resolve_categories,
    resolve_device,
    select_objects,
    write_json,
)
from stages.config import PipelineConfig, TrainConfig, config_hash
from stages.parallel import effective_jobs, jobs_option, map_categories
from stages.runner import StageContext
from stages.stage_table import dvc_params
from stages.store import StoreBusyError, atomic_write_text, replace_dir, store_lock
from stages.train_io import ReadOnce, prepare_object

log = logging.getLogger("partstad")


def train_params(sec: TrainConfig, device: str):
    """The pipeline's TrainParams from the validated train section (the same field names)."""
    return sec.params(device)


def diverged_message(category: str, variant: str, exc: Any, models_dir: Path) -> str:
    """What a researcher needs when training went non-finite: where, and which settings steer
    the arithmetic (the inputs were checked finite when read, see :mod:`stages.train_io`)."""
    return (
        f"[train] {category} {variant}: {exc}; the settings that steer it are train.lr, train.lr_null, train.weight_decay "
        f"and train.tau; nothing was written, the previous model in {models_dir} is kept"
    )


def load_split(
    ctx: StageContext, ids: list[str], mode: str, pos_enc: bool, device: str, skipped: list[dict[str, str]], reads: ReadOnce | None = None
):
    objs = []
    for oid in ids:
        try:
            objs.append(prepare_object(ctx, oid, mode, pos_enc, device, reads))
        except ObjectError as exc:
            if not any(s["object"] == oid for s in skipped):
                skipped.append({"object": oid, "error": str(exc)})
            log.error("skipping %s", exc)
    return objs


def _fit_masks_only_threshold(ctx: StageContext, objs: list, reads: ReadOnce) -> tuple[float, float]:
    """The "masks without weights" ablation's one fitted number (its null score = a coverage
    threshold), on the labelled few-shot + validation shapes."""
    from pipeline.meta import small_part_mask
    from pipeline.partslip import semantic_scores
    from pipeline.train.ablations import fit_coverage_threshold

    lifted = [reads.lifting(ctx, o.object_id, "mask") for o in objs]
    return fit_coverage_threshold(
        [semantic_scores(L) for L in lifted], [L.valid for L in lifted], [o.label_counts for o in objs], small_part_mask(ctx.category)
    )


def _curve_csv(curve: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    wr = csv.DictWriter(buf, fieldnames=["epoch", "loss", "val_miou"], lineterminator="\n")
    wr.writeheader()
    wr.writerows(curve)
    return buf.getvalue()


def train_category(
    category: str, cfg: PipelineConfig, cache: str, device: str, models_dir: Path, out_metrics: Path, out_plots: Path
) -> dict[str, Any]:
    """Train every variant in memory, then swap the new model directory in (old one kept on failure)."""
    from pipeline.train.checkpoint import save_weights
    from pipeline.train.loop import NonFiniteTraining, train_weight_net
    from stages.model_check import model_metadata  # what every later load checks against its run
    from stages.progress import Progress

    sec = cfg.train
    tp = train_params(sec, device)
    ctx = make_context("train", category, cache, cfg, device)
    skipped: list[dict[str, str]] = []
    provenance = {
        "category": category,
        "train_config": sec.model_dump(mode="json"),
        "params_hash": config_hash(cfg, dvc_params("train")),  # the settings this output depends on
        "lift_stores": f"{cache}/lift/{category}.zarr",
    }
    result_summary: dict[str, Any] = {"category": category, "epochs": tp.epochs, "config": provenance}
    variants = [("partstad", "mask")] + ([("partstad_boxes", "box")] if sec.ablation_boxes else [])
    results = {}
    fewshot, val = select_objects(cache, category, None, ("fewshot",)), select_objects(cache, category, None, ("val",))
    if not fewshot:
        raise StageFailed(f"[train] {category}: no few-shot objects in the ingest manifest of {cache} (run `partstad ingest` first)")
    reads = ReadOnce()  # the variants share each object's reads
    for name, mode in variants:
        train_objs = load_split(ctx, fewshot, mode, tp.pos_enc, tp.device, skipped, reads)
        # checkpoint selection uses every labelled validation shape (an unlabelled one cannot score)
        val_objs = [o for o in load_split(ctx, val, mode, tp.pos_enc, tp.device, skipped, reads) if o.label_counts is not None]
        if not train_objs:
            raise StageFailed(
                f"[train] {category}: none of the {len(fewshot)} few-shot objects is usable in {cache}/lift/{category}.zarr "
                f"(first problem: {skipped[0]['error'] if skipped else 'unknown'}); the previous model is kept"
            )
        if not any(int(o.x.shape[0]) for o in train_objs):
            click.echo(
                f"[train] {category} {name}: WARNING no boxes in any few-shot object (the detector found nothing); "
                "only the null logit is fitted and every point will be predicted as 'no part'",
                err=True,
            )
        t0 = time.perf_counter()
        bar = Progress(tp.epochs, f"train {category} {name}", unit="ep")

        def progress(entry: dict[str, Any], bar: Progress = bar) -> None:
            bar.set_postfix(loss=f"{entry['loss']:.3f}", val=f"{entry['val_miou']:.3f}")
            bar.update(1)

        try:
            res = train_weight_net(train_objs, val_objs, tp, progress=progress)
        except NonFiniteTraining as exc:
            raise StageFailed(diverged_message(category, name, exc, models_dir)) from None
        finally:
            bar.close()
        seconds = time.perf_counter() - t0
        results[name] = (res, mode)
        if mode == "mask":
            train_objs_mask, val_objs_mask = train_objs, val_objs
        # no wall time here: metrics/train is a DVC output and must be the same bytes on every run
        result_summary[name] = {
            "best_epoch": res.best_epoch,
            "best_val_miou": res.best_val_miou,
            "final_loss": res.curve[-1]["loss"],
            "theta_null": res.theta_null,
            "n_train": len(train_objs),
            "n_val": len(val_objs),
        }
        click.echo(f"[train] {category} {name}: best epoch {res.best_epoch}, val mIoU {res.best_val_miou:.3f}, {seconds:.1f} s")
    threshold, thr_miou = _fit_masks_only_threshold(ctx, [o for o in train_objs_mask + val_objs_mask if o.label_counts is not None], reads)
    result_summary["masks_only"] = {
        "coverage_threshold": threshold,
        "fit_miou": thr_miou,
        "n_objects": sum(o.label_counts is not None for o in train_objs_mask + val_objs_mask),
    }
    click.echo(f"[train] {category} masks_only: coverage threshold {threshold:.2f} (mean mIoU {thr_miou:.3f} on few-shot + val)")
    # Every variant trained: only now does anything on disk change.
    models_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = models_dir.with_name(f".staging-{models_dir.name}-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        for name, (res, mode) in results.items():
            save_weights(
                staging / f"{name}.safetensors",
                res,
                {
                    "variant": name,
                    "membership": mode,
                    "pos_enc": str(tp.pos_enc),
                    "tau": repr(float(tp.tau)),
                    "eps": repr(float(tp.eps)),
                    "masks_only_threshold": repr(float(threshold)),
                    "config": json.dumps(provenance, sort_keys=True),
                    **model_metadata(cfg, category),
                },
            )
        replace_dir(staging, models_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    atomic_write_text(out_plots, _curve_csv(results["partstad"][0].curve))
    result_summary["skipped"] = skipped
    write_json(out_metrics, result_summary)
    return result_summary


def _train_one(
    category: str, cfg: PipelineConfig, cache: str, device: str, models_root: str, metrics_root: str, plots_root: str, lock_timeout: float
) -> tuple[dict[str, Any] | None, str | None]:
    """One category under its model-directory lock: (summary, None) or (None, problem)."""
    from pipeline.meta import register_part_names

    register_part_names(cfg.data.part_names)  # a worker process starts without them
    target = Path(models_root) / category
    try:
        with store_lock(f"{target}.lock", str(target), lock_timeout):
            return train_category(
                category,
                cfg,
                cache,
                device,
                target,
                Path(metrics_root) / "train" / f"{category}.json",
                Path(plots_root) / "train" / f"{category}.csv",
            ), None
    except (StageFailed, StoreBusyError) as exc:
        return None, exc.message if isinstance(exc, StageFailed) else f"[train] {category}: {exc}"
    except ObjectError as exc:  # a damaged category-wide file (the ingest manifest): this category only
        return None, f"[train] {category}: {exc}"


@click.command()
@params_option
@click.option("--cache", default="cache", show_default=True, callback=check_cache, help="Cache root.")
@click.option("--category", "categories", multiple=True, help="Category to train (repeatable). Default: all in params.")
@device_option
@click.option("--models", "models_root", default="models", show_default=True, help="Where models/<Category>/*.safetensors go.")
@click.option("--metrics", "metrics_root", default="metrics", show_default=True, help="Where metrics/train/<Category>.json goes.")
@click.option("--plots", "plots_root", default="plots", show_default=True, help="Where plots/train/<Category>.csv goes.")
@jobs_option
@keep_going_options
def train(
    params_path: str,
    cache: str,
    categories: tuple[str, ...],
    device: str,
    models_root: str,
    metrics_root: str,
    plots_root: str,
    jobs: str,
    keep_going: bool,
    lock_timeout: float,
) -> None:
    """Train the PartSTAD box-weight network of each category on its few-shot shapes.

    A model is replaced only after all its variants trained; skipped (unusable) few-shot or
    validation objects make the exit code 1 unless --keep-going.
    """
    cfg = load_params(params_path)
    dev = resolve_device(device)
    problems: list[str] = []
    n_skipped = 0
    cats = resolve_categories(cfg, categories)
    results = map_categories(
        _train_one, cats, effective_jobs(jobs, device=dev), cfg, cache, dev, models_root, metrics_root, plots_root, lock_timeout
    )
    for summary, problem in results:
        if problem is not None:
            problems.append(problem)
            continue
        for s in summary["skipped"]:
            click.echo(f"  SKIPPED {s['object']}: {s['error']}", err=True)
        n_skipped += len(summary["skipped"])
    finish([], problems, keep_going)
    if n_skipped and not keep_going:
        raise StageFailed(
            f"{n_skipped} object(s) could not be used for training (listed in metrics/train/<Category>.json); the models were trained without them"
        )
