"""``partstad report``: static reports/index.html (metrics table, curves, example objects)
and metrics/summary.json (means over categories), whose headline means go to
metrics/headline/{mIoU,mAP50}/mean.json (the DVC metrics)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import click

from pipeline.headline import headline, headline_paths
from pipeline.meta import part_names
from stages.common import (
    ParamsError,
    StageFailed,
    check_cache,
    load_params,
    params_option,
    resolve_categories,
    select_objects,
    set_option,
    write_json,
)
from stages.config import PipelineConfig
from stages.provenance import describe
from stages.report_studies import STUDY_FILES, STUDY_IMAGES
from stages.store import CategoryStore


def _fmt(value: float | None) -> str:
    """A mean that may be missing (no category had a value for it)."""
    return "n/a" if value is None else f"{value:.1f}"


def config_components(cfg: PipelineConfig) -> list[str]:
    """The simulated detector and SAM the run's configuration uses (backends oracle/pixels).

    The shapes' source is left to the cached results: ``ingest --source`` may override
    ``data.source``, so the configuration cannot tell whether shapes were synthetic."""
    from stages.provenance import DETECTOR, DETECTOR_PIXELS, SAM, SAM_PIXELS

    return {"oracle": [DETECTOR], "pixels": [DETECTOR_PIXELS]}.get(cfg.detect.backend, []) + {"oracle": [SAM], "pixels": [SAM_PIXELS]}.get(
        cfg.segment.mode, []
    )


def simulated_components(cfg: PipelineConfig, metrics: dict[str, Any]) -> list[str]:
    """The simulated components behind the report, in a fixed order: those each category's
    metrics recorded (read from its cached results), or the configuration's for a category
    that recorded none (an empty result records nothing, yet its run was simulated)."""
    from stages.provenance import DETECTOR, DETECTOR_PIXELS, SAM, SAM_PIXELS, SHAPES

    found: set[str] = set()
    for m in metrics.values():
        prov = m.get("provenance")
        recorded = prov.get("simulated_components") if isinstance(prov, dict) else None
        found.update(recorded if isinstance(recorded, list) and recorded else config_components(cfg))
    order = [SHAPES, DETECTOR, DETECTOR_PIXELS, SAM, SAM_PIXELS]
    return [c for c in order if c in found] + sorted(str(c) for c in found - set(order))


def _curve(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with path.open() as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _examples(cache: str, category: str, n: int, auto: str | None = None) -> list[dict[str, Any]]:
    from stages.report_data import object_labels

    ev, ing, ren = (CategoryStore(cache, s, category) for s in ("evaluate", "ingest", "render"))
    out = []
    for oid in [o for o in select_objects(cache, category, None, ("test",)) if ev.is_complete(o)][:n]:
        views = ren.read(oid, "rgb") if ren.is_complete(oid) else None
        shown = object_labels(ing, ev, oid, auto)
        out.append({"object": oid, "part_names": list(part_names(category)), "xyz": ing.read(oid, "xyz"), **shown, "views": views})
    return out


def _predict_report(directory: Path, out_dir: str, out_source: Any) -> None:
    """``report --predict``: the page of a predict output directory (its export sidecars)."""
    from click.core import ParameterSource

    from pipeline.report_predict import predicted_page, write_page
    from stages.exports import read_exports

    if not directory.is_dir():
        raise ParamsError(f"--predict: {directory} is not a directory (give the --out directory of `partstad predict`)")
    sidecars = sorted(directory.glob("*.json"))
    out = Path(out_dir)
    if out_source == ParameterSource.DEFAULT:  # never over the evaluation report
        out = directory / "report.html"
    elif out.suffix != ".html":
        out = out / "index.html"
    objects, components = read_exports(sidecars)
    if not objects:
        raise ParamsError(
            f"--predict: {directory} holds no predict exports (<Category>_<id>_<method>.json with its .ply, written by `partstad predict`)"
        )
    page = predicted_page(objects, components or None, f"PartSTAD predictions: {directory.name}", pictures=True)
    path = write_page(out, page)
    click.echo(f"[report] wrote {path} (predicted shapes; no metrics: no ground truth)")


def _studies(directory: Path) -> list[tuple[str, str, dict[str, bytes]]]:
    """(file name, markdown, {png name: bytes}) of the benchmark studies present in ``directory``."""
    present = [directory / n for n in STUDY_FILES if (directory / n).is_file()]
    images = {n: (directory / n).read_bytes() for n in STUDY_IMAGES if (directory / n).is_file()} if present else {}
    out = []
    for path in present:
        out.append((f"{directory.name}/{path.name}", path.read_text(encoding="utf-8"), images))
    return out


@click.command()
@params_option
@click.option("--cache", default="cache", show_default=True, callback=check_cache, help="Cache root (example objects are read from it).")
@click.option("--category", "categories", multiple=True, help="Categories to include (default: all in params).")
@click.option(
    "--metrics",
    "metrics_root",
    default="metrics",
    show_default=True,
    help="Reads metrics/evaluate/<Category>.json, writes metrics/summary.json and metrics/headline/*/mean.json.",
)
@click.option("--plots", "plots_root", default="plots", show_default=True, help="Reads the training curves plots/train/<Category>.csv.")
@click.option("--out", "out_dir", default="reports", show_default=True, help="Directory of the HTML report (index.html).")
@click.option(
    "--studies",
    "studies_dir",
    default="docs",
    show_default=True,
    help="Directory of the benchmark scripts' markdown (shown at the end when present).",
)
@click.option(
    "--models",
    "models_root",
    default="models",
    show_default=True,
    help="Trained weights, read only for box weights of a cache evaluated before evaluate stored them.",
)
@click.option(
    "--predict",
    "predict_dir",
    default=None,
    help="Report the shapes `partstad predict` exported to this directory instead (no metrics: no ground truth); "
    "written to --out when it ends in .html, else <dir>/report.html.",
)
@set_option
def report(
    params_path: str,
    cache: str,
    categories: tuple[str, ...],
    metrics_root: str,
    plots_root: str,
    out_dir: str,
    studies_dir: str = "docs",
    models_root: str = "models",
    predict_dir: str | None = None,
) -> None:
    """Write the HTML report (self-contained) and the summary metrics."""
    from pipeline.report import build_report, summary_metrics
    from stages.report_data import auto_method, box_weight_data, failure_data

    if predict_dir is not None:
        _predict_report(Path(predict_dir), out_dir, click.get_current_context().get_parameter_source("out_dir"))
        return
    cfg = load_params(params_path)
    n_ex = cfg.report.n_examples
    metrics, curves, examples = {}, {}, []
    failures: dict[str, Any] = {}
    box_weights: list[dict[str, Any]] = []
    for cat in resolve_categories(cfg, categories):
        mpath = Path(metrics_root) / "evaluate" / f"{cat}.json"
        if not mpath.is_file():
            click.echo(f"[report] no metrics for {cat} at {mpath}; run `partstad evaluate` (skipped)", err=True)
            continue
        try:
            metrics[cat] = json.loads(mpath.read_text())
        except ValueError as exc:
            raise StageFailed(f"[report] {mpath} is not valid JSON ({exc}); re-run `partstad evaluate --category {cat}`") from None
        if not isinstance(metrics[cat], dict):
            raise StageFailed(
                f"[report] {mpath} holds no metrics object (a JSON {type(metrics[cat]).__name__}); re-run `partstad evaluate --category {cat}`"
            )
        curves[cat] = _curve(Path(plots_root) / "train" / f"{cat}.csv")
        auto = auto_method(metrics[cat])
        cat_examples = _examples(cache, cat, n_ex, auto)
        examples += cat_examples
        failures[cat] = failure_data(cache, cat, select_objects(cache, cat, None, ("test",)), cfg.report.n_failures, auto)
        if cat_examples:  # the first example object: its views, boxes and learned weights
            bw = box_weight_data(cfg, cache, cat, cat_examples[0]["object"], models_root)
            if bw is not None:
                box_weights.append({**bw, "category": cat, "part_names": list(part_names(cat))})
    if not metrics:
        raise StageFailed("[report] no category has metrics (run `partstad evaluate` first); report and summary left as they were")
    components = simulated_components(cfg, metrics)
    simulated = bool(components) or any(m.get("simulated") for m in metrics.values())
    notes = [
        "Instance confidence = size-weighted mean part probability of the instance's superpoints × best 2D IoU with a same-label box (PartSTAD); mean semantic score (PartSLIP)."
    ]
    provenance = {
        cat: describe(m["provenance"])
        for cat, m in metrics.items()
        if isinstance(m.get("provenance"), dict) and "detector" in m["provenance"]
    }
    out = Path(out_dir)
    path = build_report(
        out.parent if out.suffix == ".html" else out,
        metrics,
        curves,
        examples,
        simulated=simulated,
        notes=notes,
        simulated_components=components,
        provenance=provenance,
        studies=_studies(Path(studies_dir)),
        failures=failures,
        box_weights=box_weights,
        filename=out.name if out.suffix == ".html" else "index.html",
    )
    summary: dict[str, Any] = summary_metrics(metrics)  # plus the run-wide flags below
    summary["simulated"] = simulated
    if components:
        summary["simulated_components"] = components
    write_json(Path(metrics_root) / "summary.json", summary)
    for name, values in headline(summary).items():  # the means row of `dvc metrics show`
        write_json(Path(metrics_root) / headline_paths("mean")[name], values)
    click.echo(f"[report] wrote {path}")
    for m, v in summary.items():
        if isinstance(v, dict):
            click.echo(f"  {m:15s} mean mIoU {_fmt(v.get('miou'))}  mean mAP50 {_fmt(v.get('map50'))}  over {v['n_categories']} categories")
