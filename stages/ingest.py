"""``partstad ingest``: read or generate labelled point clouds into cache/ingest/<Cat>.zarr.

Writes per object ``xyz`` (N,3) f32 normalised, ``rgb`` (N,3) u8, ``sem`` (N,) i16,
``ins`` (N,) i32 (absent for unlabelled user shapes), ``face`` (N,) i32 for meshes (the
face each point was sampled on) with attrs centre, scale, parts, split, source; and a
``manifest.json`` listing every object with its split and source. The machinery lives in
``stages/ingest_io.py`` (shared with ``partstad predict``).
"""

from __future__ import annotations

import logging
import os

import click

from pipeline.errors import ObjectError
from stages.backends.sources import SOURCES
from stages.common import (
    ParamsError,
    check_cache,
    finish,
    keep_going_options,
    load_params,
    make_context,
    objects_option,
    params_option,
    resolve_categories,
)
from stages.config import DataConfig
from stages.ingest_io import categories_in_root, list_sources, run_ingest
from stages.scheduling import scheduler_option
from stages.store import StoreBusyError, StoreCorruptError

log = logging.getLogger("partstad")


@click.command()
@params_option
@click.option("--cache", "cache", default="cache", show_default=True, callback=check_cache, help="Cache root (directory or fsspec URL).")
@click.option(
    "--category",
    "categories",
    multiple=True,
    help="Category to ingest (repeatable). Default: partnete/mobility: every category found under the root; otherwise the categories in params.",
)
@objects_option
@scheduler_option
@click.option("--force", is_flag=True, help="Re-read objects even when their cached result is up to date.")
@keep_going_options
@click.option(
    "--source",
    type=click.Choice(SOURCES.names()),
    default=None,
    help="Override data.source from params (files: your own .ply/.obj/.glb/.gltf/.off/.stl under --root).",
)
@click.option(
    "--root", default=None, help="Dataset root for partnete/mobility, or the folder of shape files for files (overrides data.root)."
)
@click.option(
    "--split",
    "default_split",
    type=click.Choice(["fewshot", "val", "test"]),
    default="test",
    show_default=True,
    help="files: split of shapes that <root>/splits.yaml and data.splits do not list.",
)
def ingest(
    params_path: str,
    cache: str,
    categories: tuple[str, ...],
    objects: str | None,
    scheduler: str,
    force: bool,
    keep_going: bool,
    lock_timeout: float,
    source: str | None,
    root: str | None,
    default_split: str,
) -> None:
    """Read (or generate) labelled point clouds into cache/ingest/<Category>.zarr.

    Your own shapes: `--source files --root DIR --category C` reads every .ply (points or
    mesh), .obj, .glb/.gltf, .off and .stl directly under DIR; optional labels
    `<stem>.labels.npy` (per point, or per face for meshes) or named mesh pieces; splits from
    DIR/splits.yaml (stem: fewshot|val|test), else --split.
    """
    cfg = load_params(params_path)
    over = {k: v for k, v in {"source": source, "root": root}.items() if v}
    if over:
        try:
            data = DataConfig.model_validate({**cfg.data.model_dump(), **over})
        except ValueError as exc:
            raise ParamsError(f"--source/--root: {exc}") from None
        cfg = cfg.model_copy(update={"data": data})
    src = SOURCES.get(cfg.data.source)
    if not categories and src.lists_categories and cfg.data.root and os.path.isdir(cfg.data.root):
        found = categories_in_root(cfg.data)
        if not found:
            raise ParamsError(f"--category: no known category found under {cfg.data.root} ({cfg.data.source}); give --category")
        log.info("[ingest] no --category given: ingesting every category found under %s: %s", cfg.data.root, ", ".join(found))
        categories = tuple(found)
    cats = resolve_categories(cfg, categories)
    if src.one_category and len(cats) != 1:
        raise ParamsError(
            f"--category: --source {src.name} reads one folder into one category; give --category (params list {', '.join(cats)})"
        )
    reports, problems = [], []
    for category in cats:
        try:
            all_rows = list_sources(category, cfg.data, default_split)
        except ObjectError as exc:
            problems.append(f"[ingest] {category}: {exc}")
            continue
        if not all_rows:
            problems.append(
                f"[ingest] {category}: no objects found ({cfg.data.source}{' under ' + str(cfg.data.root) if cfg.data.root else ''}); manifest left as it was"
            )
            continue
        rows = all_rows
        if objects:
            wanted = {o if "/" in o else f"{category}/{o}" for o in objects.split(",") if o}
            rows = [r for r in rows if r["object"] in wanted]
            if not rows:
                problems.append(f"[ingest] {category}: --objects {objects!r} matched no object of the source")
                continue
        ctx = make_context("ingest", category, cache, cfg)
        try:
            report = run_ingest(ctx, all_rows, rows, scheduler=scheduler, force=force, lock_timeout=lock_timeout)
        except (StoreBusyError, StoreCorruptError) as exc:
            problems.append(f"[ingest] {category}: {exc}")
            continue
        except OSError as exc:  # the store itself (lock, folder, manifest) cannot be written
            problems.append(f"[ingest] {category}: cannot write the cache ({type(exc).__name__}: {exc})")
            continue
        reports.append(report)
    finish(reports, problems, keep_going)
