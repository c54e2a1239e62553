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

from pipeline.errors import BadInputError, ObjectError
from pipeline.meta import part_names
from stages.common import StageFailed, finish, keep_going_options, key_resolver, load_params, make_context, resolve_categories, ParamsError
from stages.config import DataConfig
from stages.keys import files_digest
from stages.runner import StageContext, StageReport, run_stage
from stages.store import StoreBusyError, StoreCorruptError


def _load(ctx: StageContext, object_id: str):
    src = ctx.runtime["sources"][object_id]
    data = ctx.config.data
    kind = src["source"]
    if kind == "synthetic":
        from pipeline.data.synthetic import generate_shape

        return generate_shape(ctx.category, int(src["index"]), n_points=data.n_points, seed=data.seed)
    if kind == "partnete":
        from pipeline.data.partnete import read_partnete_object

        return read_partnete_object(Path(src["path"]), ctx.category, object_id.split("/", 1)[-1])
    if kind == "mobility":
        from pipeline.data.mobility import read_mobility_object

        return read_mobility_object(Path(src["path"]), n_points=data.n_points, seed=data.seed)
    raise BadInputError(f"unknown source {kind!r}", object_id=object_id)


def ingest_work(ctx: StageContext, object_id: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    src = ctx.runtime["sources"][object_id]
    if src.get("invalid"):
        raise BadInputError(src["invalid"], object_id=object_id, path=src.get("path"))
    cloud = _load(ctx, object_id)
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


def source_digest(row: dict[str, Any]) -> Any:
    """What an object's ingest key hashes besides config and code: its input files' content."""
    if row["source"] == "synthetic":
        return {"index": row["index"]}
    path = Path(row["path"])
    if row["source"] == "partnete":
        return files_digest([path / "pc.ply", path / "label.npy"])
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    return files_digest(files)


def _id_problem(row: dict[str, Any]) -> str | None:
    from pipeline.data.ids import validate_object_id

    try:
        validate_object_id(row["object"].split("/", 1)[1], path=row.get("path"))
    except BadInputError as exc:
        return exc.reason
    return None


def list_sources(category: str, data: DataConfig) -> list[dict[str, Any]]:
    """Every object of a category the configured source offers, with its split.

    Raises ParamsError for a bad root and BadInputError for an inconsistent dataset (the
    same object in two splits)."""
    source, root = data.source, data.root
    rows: list[dict[str, Any]] = []
    if source != "synthetic":
        if not root:
            raise ParamsError(f"data.root: --source {source} needs --root (or data.root in params)")
        if not Path(root).is_dir():
            raise ParamsError(f"data.root: dataset root {root!r} is not a directory")
    if source == "synthetic":
        from pipeline.data.synthetic import SYNTHETIC_CATEGORIES, synthetic_split

        if category not in SYNTHETIC_CATEGORIES:
            raise ParamsError(f"--category: synthetic data has no category {category!r}; available: {', '.join(SYNTHETIC_CATEGORIES)}")
        for index, split in synthetic_split(data.n_fewshot, data.n_val, data.n_test):
            rows.append({"object": f"{category}/{index:04d}", "split": split, "source": "synthetic", "index": index})
    elif source == "partnete":
        from pipeline.data.partnete import list_partnete

        for cat, oid, split, path in list_partnete(Path(root), val_ids=data.val_ids or None):
            if cat == category:
                rows.append({"object": f"{cat}/{oid}", "split": split, "source": "partnete", "path": str(path)})
    elif source == "mobility":
        import json

        for d in sorted(Path(root).iterdir()):
            meta = d / "meta.json"
            if not meta.exists():
                continue
            try:
                cat = json.loads(meta.read_text()).get("model_cat")
            except (ValueError, UnicodeDecodeError):
                cat = None
            if cat == category:
                split = (data.splits or {}).get(d.name, "test")
                rows.append({"object": f"{category}/{d.name}", "split": split, "source": "mobility", "path": str(d)})
    for r in rows:
        problem = _id_problem(r)
        if problem:
            r["invalid"] = problem
    return rows


def write_manifest(ctx: StageContext, all_rows: list[dict[str, Any]], report: StageReport) -> None:
    """manifest.json: the objects downstream stages may use, with their split.

    Objects of this run count when they are complete and did not fail (a failing object's
    older result no longer matches its input); objects this run did not look at keep their
    previous membership. Never written empty: a run that found nothing exits before this.
    """
    store = ctx.store()
    this_run = set(report.done) | set(report.skipped) | {f["object"] for f in report.failed}
    ok = set(report.done) | set(report.skipped)
    previous = {r.get("object") for r in (store.read_json("manifest.json", default=[]) or []) if isinstance(r, dict)}
    keep = [r for r in all_rows if (r["object"] in ok if r["object"] in this_run else r["object"] in previous) and store.is_complete(r["object"])]
    store.write_json("manifest.json", [{k: r[k] for k in ("object", "split", "source")} | {"category": ctx.category} for r in keep])


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False), help="YAML file holding every knob of the pipeline.")
@click.option("--cache", "cache", default="cache", show_default=True, help="Cache root (directory or fsspec URL).")
@click.option("--category", "categories", multiple=True, help="Category to ingest (repeatable). Default: all categories in params.")
@click.option("--objects", "objects", default=None, help="Comma-separated object ids (e.g. Chair/0003 or 0003) to restrict to.")
@click.option("--scheduler", default="sync", show_default=True, envvar="PARTSTAD_SCHEDULER", help="Dask scheduler (see `partstad render --help`).")
@click.option("--force", is_flag=True, help="Re-read objects even when their cached result is up to date.")
@keep_going_options
@click.option("--source", type=click.Choice(["synthetic", "partnete", "mobility"]), default=None, help="Override data.source from params.")
@click.option("--root", default=None, help="Dataset root for partnete/mobility sources (overrides data.root).")
def ingest(params_path: str, cache: str, categories: tuple[str, ...], objects: str | None, scheduler: str, force: bool,
           keep_going: bool, lock_timeout: float, source: str | None, root: str | None) -> None:
    """Read (or generate) labelled point clouds into cache/ingest/<Category>.zarr."""
    cfg = load_params(params_path)
    over = {k: v for k, v in {"source": source, "root": root}.items() if v}
    if over:
        try:
            data = DataConfig.model_validate({**cfg.data.model_dump(), **over})
        except ValueError as exc:
            raise ParamsError(f"--source/--root: {exc}") from None
        cfg = cfg.model_copy(update={"data": data})
    reports, problems = [], []
    for category in resolve_categories(cfg, categories):
        try:
            all_rows = list_sources(category, cfg.data)
        except ObjectError as exc:
            problems.append(f"[ingest] {category}: {exc}")
            continue
        if not all_rows:
            problems.append(f"[ingest] {category}: no objects found ({cfg.data.source}{' under ' + str(cfg.data.root) if cfg.data.root else ''}); manifest left as it was")
            continue
        rows = all_rows
        if objects:
            wanted = {o if "/" in o else f"{category}/{o}" for o in objects.split(",")}
            rows = [r for r in rows if r["object"] in wanted]
            if not rows:
                problems.append(f"[ingest] {category}: --objects {objects!r} matched no object of the source")
                continue
        sources = {r["object"]: r for r in rows}
        ctx = make_context("ingest", category, cache, cfg, runtime={"sources": sources})
        digests = {oid: source_digest(r) for oid, r in sources.items()}
        try:
            report = run_stage(ctx, list(sources), ingest_work, keys=key_resolver(ctx, lambda stage, oid: digests.get(oid)), scheduler=scheduler,
                               force=force, lock_timeout=lock_timeout, after=lambda rep: write_manifest(ctx, all_rows, rep))
        except (StoreBusyError, StoreCorruptError) as exc:
            problems.append(f"[ingest] {category}: {exc}")
            continue
        reports.append(report)
    finish(reports, problems, keep_going)
