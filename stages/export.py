"""``partstad export``: per-point part labels of chosen objects as PLY (label colours) and .npy,
in the object's original coordinates (the inverse of the ingest normalisation)."""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from pipeline.meta import part_names
from stages.store import CategoryStore
from stages.common import StageFailed, load_params, resolve_categories, select_objects

METHODS = ("partstad", "partslip", "partstad_boxes", "masks_only")


def export_object(cache: str, object_id: str, category: str, method: str, out_dir: Path) -> list[Path]:
    """Write <id>_<method>.ply (xyz, label colours, semantic/instance properties) and .npy files."""
    from pipeline.data.ply import write_ply
    from pipeline.viz_labels import colour_labels

    ing, ev = CategoryStore(cache, "ingest", category), CategoryStore(cache, "evaluate", category)
    attrs = ing.attrs(object_id)
    xyz = ing.read(object_id, "xyz").astype(np.float64) * float(attrs["scale"]) + np.asarray(attrs["centre"], dtype=np.float64)
    sem = ev.read(object_id, f"sem_{method}").astype(np.int32)
    ins = ev.read(object_id, f"ins_{method}").astype(np.int32)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"{category}_{object_id.split('/')[-1]}_{method}"
    write_ply(stem.with_suffix(".ply"), xyz, colour_labels(sem, len(part_names(category))), {"semantic": sem, "instance": ins})
    np.save(f"{stem}_semantic.npy", sem)
    np.save(f"{stem}_instance.npy", ins)
    return [stem.with_suffix(".ply"), Path(f"{stem}_semantic.npy"), Path(f"{stem}_instance.npy")]


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="YAML file holding every knob.")
@click.option("--cache", default="cache", show_default=True, help="Cache root (reads cache/ingest and cache/evaluate).")
@click.option("--category", "categories", multiple=True, help="Category (repeatable). Default: all in params.")
@click.option("--objects", default=None, help="Comma-separated object ids (default: every evaluated object).")
@click.option("--method", type=click.Choice(METHODS), default="partstad", show_default=True, help="Whose predictions to export.")
@click.option("--out", "out_dir", default="exports", show_default=True, type=click.Path(file_okay=False), help="Output directory for <Category>_<id>_<method>.ply/.npy.")
def export(params_path: str, cache: str, categories: tuple[str, ...], objects: str | None, method: str, out_dir: str) -> None:
    """Export predicted labels as PLY + .npy in original coordinates."""
    cfg = load_params(params_path)
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
                click.echo(f"[export] {oid}: evaluate has no {method!r} predictions (partstad_boxes needs train.ablation_boxes), skipped", err=True)
                skipped += 1
                continue
            export_object(cache, oid, cat, method, Path(out_dir))
            n += 1
    click.echo(f"[export] wrote {n} objects to {out_dir}")
    if n == 0:
        raise StageFailed("[export] nothing exported: no evaluated object matched" + (f" --objects {objects!r}" if objects else ""))
    if skipped:
        raise StageFailed(f"[export] {skipped} object(s) skipped (see above); {n} exported")
