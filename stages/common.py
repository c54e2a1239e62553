"""Options and helpers shared by every stage command (one click verb per DVC stage)."""
from __future__ import annotations

import functools
import json
import logging
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import yaml

from pipeline.meta import part_names
from pipeline.store import CategoryStore
from stages.runner import StageContext, StageReport

log = logging.getLogger("partstad")


def load_params(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise click.UsageError(f"params file not found: {p}")
    return yaml.safe_load(p.read_text()) or {}


def common_options(f: Callable) -> Callable:
    """--params/--cache/--category/--objects/--scheduler/--device/--force for every stage."""

    @click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False), help="YAML file holding every knob of the pipeline.")
    @click.option("--cache", "cache", default="cache", show_default=True, help="Cache root (directory or fsspec URL) holding cache/<stage>/<Category>.zarr.")
    @click.option("--category", "categories", multiple=True, help="Category to process (repeatable). Default: all categories in params.")
    @click.option("--objects", "objects", default=None, help="Comma-separated object ids (e.g. Chair/0003 or 0003) to restrict to.")
    @click.option("--scheduler", default="sync", show_default=True, envvar="PARTSTAD_SCHEDULER", help="Dask scheduler: sync | threads | processes | local:N | tcp://host:port (env PARTSTAD_SCHEDULER, e.g. under dvc repro).")
    @click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]), help="Torch device for model stages.")
    @click.option("--force", is_flag=True, help="Recompute objects even when their cached result is up to date.")
    @functools.wraps(f)
    def wrapper(**kwargs: Any) -> Any:
        return f(**kwargs)

    return wrapper


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def resolve_categories(params: dict[str, Any], given: tuple[str, ...]) -> list[str]:
    cats = list(given) or list(params.get("categories") or [])
    for c in cats:
        try:
            part_names(c)
        except KeyError as exc:
            raise click.BadParameter(str(exc), param_hint="--category") from None
    return cats


def manifest(cache: str, category: str) -> list[dict[str, Any]]:
    """The ingest manifest of a category (object, category, split, source)."""
    store = CategoryStore(cache, "ingest", category)
    if not store.exists():
        return []
    return store.read_json("manifest.json", default=[]) or []


def select_objects(cache: str, category: str, objects: str | None, splits: tuple[str, ...] | None = None) -> list[str]:
    """Objects of a category known to ingest, optionally filtered by --objects and split."""
    rows = manifest(cache, category)
    ids = [r["object"] for r in rows if splits is None or r["split"] in splits]
    if objects:
        wanted = {o if "/" in o else f"{category}/{o}" for o in objects.split(",") if o}
        ids = [i for i in ids if i in wanted]
    return ids


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)


def finish(reports: list[StageReport]) -> None:
    """Print a summary; exit 0 even with per-object failures (they are in failures.json)."""
    for r in reports:
        click.echo(r.summary())
        for f in r.failed:
            click.echo(f"  FAILED {f['object']}: {f['error']}", err=True)


def make_context(stage: str, category: str, cache: str, params: dict[str, Any], device: str = "cpu") -> StageContext:
    return StageContext(stage=stage, category=category, cache=cache, params=params, device=device)


def _strict(value: Any) -> Any:
    """NaN/inf -> None, so metric files are strict JSON (no `NaN` tokens) for DVC and browsers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def write_json(path: str | Path, payload: Any) -> None:
    """Replace (never modify in place) a JSON output file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(json.dumps(_strict(payload), indent=2, allow_nan=False))
    if p.exists():
        p.unlink()
    tmp.rename(p)


def save_preview(ctx: StageContext, object_id: str, kind: str, image: Any) -> Path | None:
    """Write reports/previews/<Category>/<id>_<kind>.png when the stage runs with --preview."""
    if not ctx.params.get("_runtime", {}).get("preview"):
        return None
    from pipeline.viz_geometry import save_png

    out = Path("reports/previews") / ctx.category
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{object_id.split('/')[-1]}_{kind}.png"
    save_png(path, image() if callable(image) else image)
    return path


def run_object_stage(
    stage: str,
    work: Callable,
    *,
    upstream: list[str],
    code_version: str,
    params_path: str,
    cache: str,
    categories: tuple[str, ...],
    objects: str | None,
    scheduler: str,
    device: str,
    force: bool,
    extra_param_sections: tuple[str, ...] = (),
    splits: tuple[str, ...] | None = None,
    runtime: dict[str, Any] | None = None,
    resources: Any = None,
) -> list[StageReport]:
    """The body of every per-object stage command: params -> objects -> runner, per category.

    ``resources``: dask worker resources per task (``{"GPU": 1}``) or a function of the
    StageContext returning them (see :func:`stages.runner.run_stage`).
    """
    from stages.runner import run_stage

    params = load_params(params_path)
    dev = resolve_device(device)
    keys = {stage: params.get(stage) or {}}
    for extra in extra_param_sections:
        keys[extra] = params.get(extra) or {}
    reports = []
    for category in resolve_categories(params, categories):
        ids = select_objects(cache, category, objects, splits)
        if not ids:
            click.echo(f"[{stage}] {category}: no ingested objects (run `partstad ingest` first)", err=True)
        ctx = make_context(stage, category, cache, {**params, "_runtime": dict(runtime or {})}, dev)
        reports.append(run_stage(ctx, ids, work, code_version=code_version, upstream=upstream, param_keys=keys, scheduler=scheduler, force=force, resources=resources))
    finish(reports)
    return reports
