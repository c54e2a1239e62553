"""``partstad ingest``: read or generate labelled point clouds into cache/ingest/<Cat>.zarr.

Writes per object ``xyz`` (N,3) f32 normalised, ``rgb`` (N,3) u8, ``sem`` (N,) i16,
``ins`` (N,) i32 (absent for unlabelled user shapes) with attrs centre, scale, parts,
split, source; and a ``manifest.json`` listing every object with its split and source.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import numpy as np

from pipeline.meta import part_names
from stages.common import common_options, finish, load_params, make_context, resolve_categories
from stages.runner import StageContext, run_stage

CODE_VERSION = "2"  # 2: synthetic shapes without hidden faces, kettle lid seams, overlay fronts


def _load(ctx: StageContext, object_id: str):
    src = ctx.params["_sources"][object_id]
    data = ctx.section("data")
    kind = src["source"]
    if kind == "synthetic":
        from pipeline.data.synthetic import generate_shape

        return generate_shape(ctx.category, int(src["index"]), n_points=int(data.get("n_points", 20000)), seed=int(data.get("seed", 0)))
    if kind == "partnete":
        from pipeline.data.partnete import read_partnete_object

        return read_partnete_object(Path(src["path"]), ctx.category, object_id.split("/", 1)[-1])
    if kind == "mobility":
        from pipeline.data.mobility import read_mobility_object

        return read_mobility_object(Path(src["path"]), n_points=int(data.get("n_points", 10000)), seed=int(data.get("seed", 0)))
    raise ValueError(f"unknown source {kind!r}")


def ingest_work(ctx: StageContext, object_id: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    cloud = _load(ctx, object_id)
    src = ctx.params["_sources"][object_id]
    arrays = {"xyz": cloud.xyz.astype(np.float32), "rgb": cloud.rgb.astype(np.uint8)}
    if cloud.sem is not None:
        arrays["sem"] = cloud.sem.astype(np.int16)
        arrays["ins"] = (cloud.ins if cloud.ins is not None else np.full(len(cloud.xyz), -1)).astype(np.int32)
    attrs = {
        "centre": np.asarray(cloud.centre, dtype=float).tolist(),
        "scale": float(cloud.scale),
        "parts": list(part_names(ctx.category)),
        "source": src["source"],
        "simulated": src["source"] == "synthetic",
        "labelled": cloud.sem is not None,
        "n_points": int(len(cloud.xyz)),
    }
    return arrays, attrs


def list_sources(category: str, data: dict[str, Any], root: str | None) -> list[dict[str, Any]]:
    """Every object of a category the configured source offers, with its split."""
    source = data.get("source", "synthetic")
    rows: list[dict[str, Any]] = []
    if source == "synthetic":
        from pipeline.data.synthetic import SYNTHETIC_CATEGORIES, synthetic_split

        if category not in SYNTHETIC_CATEGORIES:
            raise click.BadParameter(f"synthetic data has no category {category!r}; available: {', '.join(SYNTHETIC_CATEGORIES)}")
        for index, split in synthetic_split(int(data.get("n_fewshot", 8)), int(data.get("n_val", 4)), int(data.get("n_test", 8))):
            rows.append({"object": f"{category}/{index:04d}", "split": split, "source": "synthetic", "index": index})
    elif source == "partnete":
        from pipeline.data.partnete import list_partnete

        if not root:
            raise click.UsageError("--source partnete needs --root (or data.root in params)")
        val_ids = data.get("val_ids") or None
        for cat, oid, split, path in list_partnete(Path(root), val_ids=val_ids):
            if cat == category:
                rows.append({"object": f"{cat}/{oid}", "split": split, "source": "partnete", "path": str(path)})
    elif source == "mobility":
        if not root:
            raise click.UsageError("--source mobility needs --root (or data.root in params)")
        import json

        for d in sorted(Path(root).iterdir()):
            meta = d / "meta.json"
            if not meta.exists():
                continue
            try:
                cat = json.loads(meta.read_text()).get("model_cat")
            except ValueError:
                cat = None
            if cat == category:
                split = (data.get("splits") or {}).get(d.name, "test")
                rows.append({"object": f"{category}/{d.name}", "split": split, "source": "mobility", "path": str(d)})
    else:
        raise click.BadParameter(f"unknown source {source!r} (synthetic, partnete, mobility)")
    return rows


@click.command()
@common_options
@click.option("--source", type=click.Choice(["synthetic", "partnete", "mobility"]), default=None, help="Override data.source from params.")
@click.option("--root", default=None, help="Dataset root for partnete/mobility sources (overrides data.root).")
def ingest(params_path: str, cache: str, categories: tuple[str, ...], objects: str | None, scheduler: str, device: str, force: bool, source: str | None, root: str | None) -> None:
    """Read (or generate) labelled point clouds into cache/ingest/<Category>.zarr."""
    params = load_params(params_path)
    data = dict(params.get("data") or {})
    if source:
        data["source"] = source
    root = root or data.get("root")
    if root:
        data["root"] = str(root)  # --root is part of the fingerprint: another dataset re-ingests
    reports = []
    for category in resolve_categories(params, categories):
        all_rows = list_sources(category, data, root)
        rows = all_rows
        if objects:
            wanted = {o if "/" in o else f"{category}/{o}" for o in objects.split(",")}
            rows = [r for r in rows if r["object"] in wanted]
        ctx = make_context("ingest", category, cache, {**params, "data": data, "_sources": {r["object"]: r for r in rows}})
        # Split sizes only decide which split an object belongs to (kept in the manifest), not
        # its content: changing them must not recompute every object downstream.
        keys = {k: v for k, v in data.items() if k not in ("splits", "n_fewshot", "n_val", "n_test", "val_ids")}
        report = run_stage(ctx, [r["object"] for r in rows], ingest_work, code_version=CODE_VERSION, upstream=[], param_keys=keys, scheduler=scheduler, force=force)
        failed = {f["object"] for f in report.failed}
        # The manifest lists every object of the source that is ingested, not only the ones
        # this run touched: `--objects` must not drop the others from the downstream stages.
        store = ctx.store()
        ctx.store().write_json("manifest.json", [
            {k: r[k] for k in ("object", "split", "source")} | {"category": category}
            for r in all_rows if r["object"] not in failed and store.is_complete(r["object"])
        ])
        reports.append(report)
    finish(reports)
