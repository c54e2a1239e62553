"""``partstad export``: per-point part labels of chosen objects as PLY (label colours), .npy,
GLB (part colours; mesh inputs as meshes) and a JSON sidecar (part names, colours, instance
ids and confidences, provenance), in the object's original coordinates (the inverse of the
ingest normalisation). The writing lives in ``stages/exports.py`` (shared with predict).

Only labels computed with the weights the sidecar names are written: evaluate records the
model directory and weight hashes per object, and an object whose cached result is not what
evaluate would compute now with those weights (retrained, other settings or inputs) is
skipped with the reason."""

from __future__ import annotations

from pathlib import Path

import click

from stages.common import (
    StageFailed,
    check_cache,
    check_objects,
    load_params,
    params_option,
    resolve_categories,
    select_objects,
    set_option,
)
from stages.exports import export_object
from stages.model_check import evaluation_problem, weights_key
from stages.provenance import object_components, object_sources, provenance
from stages.store import CategoryStore

METHODS = ("partstad", "partslip", "partstad_boxes", "masks_only")


@click.command()
@params_option
@click.option(
    "--cache", default="cache", show_default=True, callback=check_cache, help="Cache root (reads cache/ingest and cache/evaluate)."
)
@click.option("--category", "categories", multiple=True, help="Category (repeatable). Default: all in params.")
@click.option("--objects", default=None, callback=check_objects, help="Comma-separated object ids (default: every evaluated object).")
@click.option("--method", type=click.Choice(METHODS), default="partstad", show_default=True, help="Whose predictions to export.")
@click.option(
    "--out",
    "out_dir",
    default="exports",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Output directory for <Category>_<id>_<method>.ply/.npy/.glb/.json.",
)
@click.option(
    "--models",
    "models_root",
    default="models",
    show_default=True,
    help="Model root (<root>/<Category>) the labels must come from; when not given, the model evaluate recorded per object.",
)
@set_option
def export(
    params_path: str, cache: str, categories: tuple[str, ...], objects: str | None, method: str, out_dir: str, models_root: str
) -> None:
    """Export predicted labels as PLY + .npy in original coordinates."""
    from click.core import ParameterSource

    cfg = load_params(params_path)
    explicit_models = click.get_current_context().get_parameter_source("models_root") not in (
        ParameterSource.DEFAULT,
        ParameterSource.DEFAULT_MAP,
    )
    n, skipped = 0, 0
    for cat in resolve_categories(cfg, categories):
        ev = CategoryStore(cache, "evaluate", cat)
        for oid in select_objects(cache, cat, objects):
            if not ev.is_complete(oid):
                if not objects:  # default: every evaluated object; the others are not asked for
                    continue
                click.echo(f"[export] {oid}: not evaluated yet (run `partstad evaluate --splits ...`), skipped", err=True)
                skipped += 1
                continue
            if method not in ev.attrs(oid).get("methods", []):
                click.echo(
                    f"[export] {oid}: evaluate has no {method!r} predictions (partstad_boxes needs train.ablation_boxes), skipped", err=True
                )
                skipped += 1
                continue
            recorded = ev.attrs(oid).get("model")
            models = (
                Path(recorded["dir"])
                if not explicit_models and isinstance(recorded, dict) and isinstance(recorded.get("dir"), str)
                else Path(models_root) / cat
            )
            problem = evaluation_problem(cache, cfg, cat, oid, models)
            if problem is not None:
                click.echo(f"[export] {oid}: not exported: {problem}", err=True)
                skipped += 1
                continue
            record = {"dir": str(models), "weights": "partstad.safetensors", "files": weights_key(models)}
            export_object(
                cache,
                oid,
                cat,
                method,
                Path(out_dir),
                provenance(cfg, object_components(cache, cat, oid), record, object_sources(cache, cat, [oid])),
            )
            n += 1
    click.echo(f"[export] wrote {n} objects to {out_dir}")
    if n == 0:
        raise StageFailed("[export] nothing exported: no evaluated object matched" + (f" --objects {objects!r}" if objects else ""))
    if skipped:
        raise StageFailed(f"[export] {skipped} object(s) skipped (see above); {n} exported")
