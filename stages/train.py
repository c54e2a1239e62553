"""``partstad train``: fit the per-box weight network and the null logit of one category.

Reads only cache/lift (membership, targets, view directions) and the detector features in
cache/detect. Writes ``models/<Cat>/partstad.safetensors`` (and, with
``train.ablation_boxes``, ``partstad_boxes.safetensors`` trained on box membership: the
"weights without masks" ablation), the curve ``plots/train/<Cat>.csv`` and
``metrics/train/<Cat>.json``.
"""
from __future__ import annotations

import csv
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from pipeline.errors import ObjectError
from pipeline.meta import small_part_mask
from stages.common import load_params, make_context, resolve_categories, resolve_device, select_objects, write_json
from stages.runner import StageContext

log = logging.getLogger("partstad")
CODE_VERSION = "1"


def train_params(section: dict[str, Any], device: str):
    from pipeline.train import TrainParams

    names = {f.name for f in dataclasses.fields(TrainParams)}
    kw = {k: v for k, v in section.items() if k in names}
    if "batch_size" in section:
        kw["batch"] = int(section["batch_size"])
    return TrainParams(**kw, **({"device": device} if "device" in names else {}))


def prepare_object(ctx: StageContext, object_id: str, mode: str, pos_enc: bool, device: str = "cpu"):
    """A TrainObject from cache/lift and cache/detect only."""
    from pipeline.train import TrainObject
    from stages.lift import read_lifted

    lifted = read_lifted(ctx, object_id, mode)
    lift = ctx.store("lift")
    detect = ctx.store("detect")  # NaN/inf features or boxes: BadInputError naming object and file
    det = {"feat": detect.read(object_id, "feat", finite=True), "xyxy": detect.read(object_id, "xyxy", finite=True)}
    H, W = lift.attrs(object_id).get("image_size") or [800, 800]
    sem = lift.read(object_id, "sem") if lift.attrs(object_id).get("labelled", True) else None
    return TrainObject.from_lifted(
        lifted, det["feat"].astype(np.float32), lift.read(object_id, "view_dirs"), det["xyxy"], int(H), int(W),
        pos_enc=pos_enc, sem=sem, small_part_flags=small_part_mask(ctx.category), device=device, object_id=object_id,
    )


def load_split(ctx: StageContext, ids: list[str], mode: str, pos_enc: bool, device: str, skipped: list[dict[str, str]]):
    objs = []
    for oid in ids:
        try:
            objs.append(prepare_object(ctx, oid, mode, pos_enc, device))
        except ObjectError as exc:
            skipped.append({"object": oid, "error": str(exc)})
            log.error("skipping %s", exc)
    return objs


def train_category(category: str, params: dict[str, Any], cache: str, device: str, models_dir: Path, out_metrics: Path, out_plots: Path) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from pipeline.train import save_weights, train_weight_net

    sec = dict(params.get("train") or {})
    tp = train_params(sec, device)
    ctx = make_context("train", category, cache, params, device)
    skipped: list[dict[str, str]] = []
    result_summary: dict[str, Any] = {"category": category, "epochs": tp.epochs}
    variants = [("partstad", "mask")] + ([("partstad_boxes", "box")] if sec.get("ablation_boxes", True) else [])
    models_dir.mkdir(parents=True, exist_ok=True)
    for name, mode in variants:
        train_objs = load_split(ctx, select_objects(cache, category, None, ("fewshot",)), mode, tp.pos_enc, tp.device, skipped)
        val_objs = load_split(ctx, select_objects(cache, category, None, ("val",)), mode, tp.pos_enc, tp.device, skipped)
        if not train_objs:
            raise click.ClickException(f"[train] {category}: no usable few-shot objects in {cache}/lift/{category}.zarr (run the earlier stages)")
        if not any(int(o.x.shape[0]) for o in train_objs):
            click.echo(f"[train] {category} {name}: WARNING no boxes in any few-shot object (the detector found nothing); "
                       "only the null logit is fitted and every point will be predicted as 'no part'", err=True)
        t0 = time.perf_counter()
        bar = tqdm(total=tp.epochs, desc=f"train {category} {name}", unit="ep", leave=False, disable=None)

        def progress(entry: dict[str, Any]) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{entry['loss']:.3f}", val=f"{entry['val_miou']:.3f}")

        res = train_weight_net(train_objs, val_objs, tp, progress=progress)
        bar.close()
        seconds = time.perf_counter() - t0
        path = models_dir / f"{name}.safetensors"
        tmp = path.with_suffix(".tmp")
        save_weights(tmp, res, {"category": category, "variant": name, "membership": mode, "pos_enc": str(tp.pos_enc), "tau": str(tp.tau)})
        if path.exists():
            path.unlink()
        tmp.rename(path)
        result_summary[name] = {"best_epoch": res.best_epoch, "best_val_miou": res.best_val_miou, "final_loss": res.curve[-1]["loss"], "theta_null": res.theta_null,
                                "seconds": round(seconds, 2), "n_train": len(train_objs), "n_val": len(val_objs)}
        if name == "partstad":
            out_plots.parent.mkdir(parents=True, exist_ok=True)
            tmp_csv = out_plots.with_suffix(".tmp")
            with tmp_csv.open("w", newline="") as fh:
                wr = csv.DictWriter(fh, fieldnames=["epoch", "loss", "val_miou"])
                wr.writeheader()
                wr.writerows(res.curve)
            if out_plots.exists():
                out_plots.unlink()
            tmp_csv.rename(out_plots)
        click.echo(f"[train] {category} {name}: best epoch {res.best_epoch}, val mIoU {res.best_val_miou:.3f}, {seconds:.1f} s")
    result_summary["skipped"] = skipped
    write_json(out_metrics, result_summary)
    return result_summary


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="YAML file holding every knob.")
@click.option("--cache", default="cache", show_default=True, help="Cache root.")
@click.option("--category", "categories", multiple=True, help="Category to train (repeatable). Default: all in params.")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]), help="Torch device.")
@click.option("--models", "models_root", default="models", show_default=True, help="Where models/<Category>/*.safetensors go.")
@click.option("--metrics", "metrics_root", default="metrics", show_default=True, help="Where metrics/train/<Category>.json goes.")
@click.option("--plots", "plots_root", default="plots", show_default=True, help="Where plots/train/<Category>.csv goes.")
def train(params_path: str, cache: str, categories: tuple[str, ...], device: str, models_root: str, metrics_root: str, plots_root: str) -> None:
    """Train the PartSTAD box-weight network of each category on its few-shot shapes."""
    params = load_params(params_path)
    dev = resolve_device(device)
    for category in resolve_categories(params, categories):
        train_category(category, params, cache, dev, Path(models_root) / category, Path(metrics_root) / "train" / f"{category}.json", Path(plots_root) / "train" / f"{category}.csv")
