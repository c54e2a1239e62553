"""``partstad adapt-detector``: fine-tune Grounding DINO per category on the few-shot renders.

Per category: the rendered views of the few-shot shapes (cache/render) with ground-truth
part boxes projected from the rendered instance map (cache/ingest labels) train the detector
(pipeline/detect/adapt.py); box AP50 on the val shapes' renders picks the epoch. Writes the
``save_pretrained`` directory ``<adapt.out_dir>/<Category>/`` (model.safetensors, config,
tokenizer, processor, ``adapt.json`` = resolved config and provenance), swapped in only
after everything was written, and ``metrics/adapt/<Category>.json`` (AP50 per epoch and per
part, chosen epoch, times, config). With ``adapt.enabled: false`` (the demo: its detector is
simulated) nothing is trained: the directory gets a ``SKIPPED.json`` marker and the metrics
say why. Exit codes: 0 done, 1 a category failed or shapes were unusable, 2 bad params.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import click

from pipeline.errors import ObjectError
from pipeline.meta import part_names
from stages.common import (
    ParamsError,
    StageFailed,
    check_cache,
    device_option,
    finish,
    keep_going_options,
    key_resolver,
    load_params,
    make_context,
    params_option,
    resolve_categories,
    resolve_device,
    select_objects,
    write_json,
)
from stages.config import PipelineConfig, config_hash
from stages.detector_weights import SKIPPED_MARKER, adapted_dir, dir_digest
from stages.detector_weights import base_weights as resolve_base
from stages.stage_table import dvc_params
from stages.store import StoreBusyError, atomic_write_text, replace_dir, store_lock
from stages.weights_resolve import WeightsNotFound

log = logging.getLogger("partstad")


def base_weights(cfg: PipelineConfig) -> Path:
    """The directory adaptation starts from (a local directory or a Hugging Face id resolved in
    the local cache); exit 2 (ParamsError) when unusable."""
    from pipeline.detect.grounding_dino import check_weights_dir

    sec = cfg.adapt
    key = "adapt.base_weights_dir" if sec.base_weights_dir else "detect.weights_dir"
    try:
        rw = resolve_base(cfg, key)
    except WeightsNotFound as exc:
        raise ParamsError(str(exc)) from None
    if rw is None:
        raise ParamsError("adapt.enabled needs Grounding DINO weights to start from: set adapt.base_weights_dir or detect.weights_dir")
    try:
        return check_weights_dir(rw.path)
    except FileNotFoundError as exc:
        raise ParamsError(f"{key}: {exc}") from None


def _write_dir(target: Path, fill) -> None:
    """Write a new directory beside ``target`` with ``fill(staging)``, then swap it in."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".staging-{target.name}-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        fill(staging)
        replace_dir(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def load_objects(cfg: PipelineConfig, cache: str, category: str, split: str, skipped: list[dict[str, str]]) -> list[tuple]:
    """(object_id, rgb, pix2pt, sem, ins) of the usable objects of one split (render up to date,
    labelled); the others are listed in ``skipped`` with the reason."""
    ctx = make_context("adapt_detector", category, cache, cfg)
    keys = key_resolver(ctx)
    out = []
    for oid in select_objects(cache, category, None, (split,)):
        try:
            keys.current("render", oid)  # missing or out-of-date renders: a clear error naming the stage to run
            ing = ctx.store("ingest")
            if not ing.attrs(oid).get("labelled", True):
                raise ObjectError("has no ground-truth labels; adaptation needs labelled shapes", object_id=oid)
            ren = ctx.store("render")
            out.append((oid, ren.read(oid, "rgb"), ren.read(oid, "pix2pt"), ing.read(oid, "sem"), ing.read(oid, "ins")))
        except ObjectError as exc:
            skipped.append({"object": oid, "error": str(exc)})
            log.error("[adapt-detector] skipping %s", exc)
    return out


def adapt_params(cfg: PipelineConfig, device: str):
    from pipeline.detect.adapt import AdaptParams

    sec = cfg.adapt
    return AdaptParams(
        epochs=sec.epochs,
        batch_size=sec.batch_size,
        lr=sec.lr,
        weight_decay=sec.weight_decay,
        grad_clip=sec.grad_clip,
        trainable=sec.trainable,
        lr_schedule=sec.lr_schedule,
        seed=sec.seed,
        device=device,
        nms_iou=0.6,
        max_per_view=cfg.detect.max_per_view,
    )


def adapt_category(category: str, cfg: PipelineConfig, cache: str, device: str, metrics_path: Path) -> dict[str, Any]:
    """Fine-tune, select, save (swap) and write the metrics of one category."""
    from pipeline.detect.adapt import AdaptDataError, build_dataset, fine_tune
    from pipeline.detect.grounding_dino import load_grounding_dino
    from stages.progress import Progress

    sec = cfg.adapt
    names = list(part_names(category))
    base = base_weights(cfg)
    skipped: list[dict[str, str]] = []
    train_objs = load_objects(cfg, cache, category, "fewshot", skipped)
    if not train_objs:
        first = (
            f" (first problem: {skipped[0]['error']})"
            if skipped
            else " in the ingest manifest (run `partstad ingest`, `partstad render` first)"
        )
        raise StageFailed(f"[adapt-detector] {category}: no usable few-shot shapes{first}; nothing was written")
    val_split = sec.select_split
    val_objs = load_objects(cfg, cache, category, "val", skipped) if val_split == "val" else []
    try:
        train = build_dataset(train_objs, len(names), sec.min_box_px, what=f"{category} few-shot")
        val = build_dataset(val_objs, len(names), sec.min_box_px, what=f"{category} val") if val_objs else []
    except AdaptDataError as exc:
        raise StageFailed(f"[adapt-detector] {category}: {exc}; nothing was written") from None
    if val_split == "val" and not val:
        click.echo(
            f"[adapt-detector] {category}: WARNING no usable val shapes; the epoch is chosen on the few-shot views (optimistic)", err=True
        )

    model, processor = load_grounding_dino(base, "cpu")
    prm = adapt_params(cfg, device)
    steps_per_epoch = -(-len(train) // prm.batch_size)
    bar = Progress(prm.epochs * steps_per_epoch, f"adapt {category}", unit="step")

    def progress(entry: dict[str, Any]) -> None:
        if "step" in entry:
            bar.set_postfix(epoch=entry["epoch"], loss=f"{entry['loss']:.3f}")
            bar.update(1)
        else:
            bar.set_postfix(epoch=entry["epoch"], ap50=f"{entry['val_ap50']:.3f}")

    t0 = time.perf_counter()
    try:
        res = fine_tune(model, processor, train, val, names, prm, progress=progress)
    except (AdaptDataError, ValueError, FloatingPointError) as exc:
        raise StageFailed(f"[adapt-detector] {category}: {exc}; nothing was written") from None
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    provenance = {
        "category": category,
        "part_names": names,
        "adapt_config": sec.model_dump(mode="json"),
        "base_weights_dir": str(base),
        "base_weights_spec": sec.base_weights_dir or cfg.detect.weights_dir,
        "base_weights_digest": dir_digest(base),
        "params_hash": config_hash(cfg, dvc_params("adapt_detector")),  # the settings this output depends on
        "render_store": f"{cache}/render/{category}.zarr",
        "device": device,
    }
    summary = {
        "category": category,
        "skipped": False,
        "selection": res.selection,
        "chosen_epoch": res.best_epoch,
        "chosen_ap50": res.best_ap50,
        "base_ap50": res.curve[0]["val_ap50"],
        "chosen_val_loss": res.curve[res.best_epoch]["val_loss"],
        "base_val_loss": res.curve[0]["val_loss"],
        "ap50_per_epoch": [e["val_ap50"] for e in res.curve],
        "curve": res.curve,
        "per_part_chosen": res.curve[res.best_epoch]["per_part"],
        "n_train_views": res.n_train,
        "n_select_views": res.n_val,
        "trainable": sec.trainable,
        "n_trainable_params": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "n_params": int(sum(p.numel() for p in model.parameters())),
        "seconds_total": round(seconds, 2),
        "seconds_train": round(res.seconds_train, 2),
        "seconds_eval": round(res.seconds_eval, 2),
        "seconds_per_epoch_per_view": round(res.seconds_train / max(prm.epochs, 1) / max(res.n_train, 1), 4),
        "config": provenance,
        "unusable_objects": skipped,
    }
    for p in model.parameters():
        p.requires_grad_(True)
    model.to("cpu")

    def fill(staging: Path) -> None:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
        atomic_write_text(
            staging / "adapt.json",
            json.dumps({**provenance, "chosen_epoch": res.best_epoch, "chosen_ap50": res.best_ap50, "selection": res.selection}, indent=2),
        )

    _write_dir(adapted_dir(cfg, category), fill)
    write_json(metrics_path, summary)
    click.echo(
        f"[adapt-detector] {category}: AP50 {summary['base_ap50']:.3f} (base) -> {res.best_ap50:.3f} at epoch {res.best_epoch} "
        f"({res.selection} views), {seconds:.1f} s; saved {adapted_dir(cfg, category)}"
    )
    return summary


def skip_category(category: str, cfg: PipelineConfig, metrics_path: Path) -> dict[str, Any]:
    """adapt.enabled false: an empty model directory with a marker and a 'skipped' metrics file."""
    reason = f"adapt.enabled is false (detect.backend is {cfg.detect.backend})"
    payload = {"category": category, "skipped": True, "reason": reason, "config": cfg.adapt.model_dump(mode="json")}
    _write_dir(adapted_dir(cfg, category), lambda d: atomic_write_text(d / SKIPPED_MARKER, json.dumps(payload, indent=2)))
    write_json(metrics_path, payload)
    click.echo(f"[adapt-detector] {category}: skipped ({reason})")
    return payload


@click.command("adapt-detector")
@params_option
@click.option("--cache", default="cache", show_default=True, callback=check_cache, help="Cache root (reads cache/ingest and cache/render).")
@click.option("--category", "categories", multiple=True, help="Category to adapt for (repeatable). Default: all in params.")
@device_option
@click.option("--metrics", "metrics_root", default="metrics", show_default=True, help="Where metrics/adapt/<Category>.json goes.")
@keep_going_options
def adapt_detector(
    params_path: str, cache: str, categories: tuple[str, ...], device: str, metrics_root: str, keep_going: bool, lock_timeout: float
) -> None:
    """Fine-tune Grounding DINO on each category's few-shot renders (adapt.enabled), for detect to use.

    The adapted model replaces <adapt.out_dir>/<Category>/ only when training and saving
    succeeded; unusable few-shot or val shapes make the exit code 1 unless --keep-going.
    """
    cfg = load_params(params_path)
    dev = resolve_device(device) if cfg.adapt.enabled else "cpu"  # disabled: no torch import, a marker only
    cats = resolve_categories(cfg, categories)
    if cfg.adapt.enabled:  # bad settings: exit 2 before anything is read or written
        if cfg.detect.backend != "grounding_dino":
            raise ParamsError(
                f"adapt.enabled: true needs detect.backend: grounding_dino (got {cfg.detect.backend!r}); "
                "the simulated detector has nothing to fine-tune"
            )
        base_weights(cfg)
    problems: list[str] = []
    n_unusable = 0
    for category in cats:
        target = adapted_dir(cfg, category)
        metrics_path = Path(metrics_root) / "adapt" / f"{category}.json"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with store_lock(f"{target}.lock", str(target), lock_timeout):
                if not cfg.adapt.enabled:
                    skip_category(category, cfg, metrics_path)
                    continue
                summary = adapt_category(category, cfg, cache, dev, metrics_path)
        except (StageFailed, StoreBusyError) as exc:
            problems.append(exc.message if isinstance(exc, StageFailed) else f"[adapt-detector] {category}: {exc}")
            continue
        for s in summary["unusable_objects"]:
            click.echo(f"  SKIPPED {s['object']}: {s['error']}", err=True)
        n_unusable += len(summary["unusable_objects"])
    finish([], problems, keep_going)
    if n_unusable and not keep_going:
        raise StageFailed(
            f"{n_unusable} object(s) could not be used (listed in metrics/adapt/<Category>.json); the detectors were adapted without them"
        )
