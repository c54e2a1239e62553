"""``partstad predict``: part labels for your own shapes with a trained model, in one command.

    partstad predict shapes/ chair.glb --category Chair --model-dir models/Chair --out predictions/

0. before any work, the weights are loaded and checked: every tensor and number finite, the
   metadata typed, and the model trained for this run (category, part names, detector backend
   and feature width); anything else is exit 2 naming the file and both sides;
1. the shapes (files, or folders whose shape files are taken) are ingested as objects
   ``<Category>/<file stem>`` (split ``test``), exactly as ``partstad ingest --source files``
   would, but into predict's own cache root ``<cache>/predict`` (:func:`predict_cache`): the
   dataset's objects in ``<cache>/<stage>`` can never be replaced, joined or counted by a
   prediction, whatever the stems are;
2. render, visibility, superpoints, detect, segment and lift run on those objects through
   the functions of the same click commands ``dvc repro`` runs, called directly (never the CLI
   again: :func:`run_stage_command`; same keys: up-to-date results of an earlier prediction
   are reused), each with keep-going so one bad shape never stops the others;
3. evaluate predicts with the weights in ``--model-dir`` (metrics of labelled shapes go to
   ``<out>/metrics``, never over the project's metrics);
4. every object whose evaluate result is exactly what these weights compute now is exported
   to ``<out>``: PLY, .npy, GLB and the JSON sidecar with provenance. A shape whose
   prediction failed exports nothing (never an older model's labels);
5. ``<out>/viewer.html``: one interactive 3D block per shape exported by this run (part and
   instance colourings, offline); ``partstad report --predict <out>`` adds the pictures.

Exit codes: 0 every shape predicted, 1 some shape failed (the others are written) or
nothing to predict, 2 bad options, params or weights, before any work.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from stages.common import (
    ParamsError,
    StageFailed,
    check_cache,
    device_option,
    load_params,
    make_context,
    params_option,
    resolve_categories,
    set_option,
)
from stages.scheduling import scheduler_option

log = logging.getLogger("partstad")
CHAIN = ("render", "visibility", "superpoints", "detect", "segment", "lift")
METHODS = ("partstad", "partslip", "partstad_boxes", "masks_only")


def shape_files(paths: tuple[Path, ...]) -> tuple[list[Path], list[str]]:
    """Shape files named or found (non-recursively) in the given folders, and the problems
    (a folder without shape files). A file of an unsupported type is a usage error."""
    from pipeline.data.shapes import SHAPE_SUFFIXES, is_shape_file

    files: list[Path] = []
    problems: list[str] = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if is_shape_file(f))
            if not found:
                problems.append(f"folder {p} holds no shape files ({', '.join(SHAPE_SUFFIXES)})")
            files += found
        elif p.suffix.lower() in SHAPE_SUFFIXES:
            files.append(p)
        else:
            raise ParamsError(f"{p}: not a supported shape file ({', '.join(SHAPE_SUFFIXES)})")
    unique: list[Path] = []
    for f in files:
        if f.resolve() not in {u.resolve() for u in unique}:
            unique.append(f)
    return unique, problems


PREDICT_NAMESPACE = "predict"


def predict_cache(cache: str) -> str:
    """predict's own cache root under ``--cache``: its stores are ``<cache>/predict/<stage>/<Cat>.zarr``,
    apart from the dataset's ``<cache>/<stage>/<Cat>.zarr`` (no stage is named ``predict``)."""
    return f"{str(cache).rstrip('/')}/{PREDICT_NAMESPACE}"


def locate_weights(model_dir: Path, category: str) -> Path:
    """The weights file ``--model-dir`` names: ``<dir>/partstad.safetensors`` (a category's
    directory, any name) or ``<dir>/<category>/partstad.safetensors`` (a models root)."""
    if (model_dir / category / "partstad.safetensors").is_file():
        return model_dir / category / "partstad.safetensors"
    weights = model_dir / "partstad.safetensors"
    if not weights.is_file():
        raise ParamsError(
            f"--model-dir: no trained weights at {weights} or {model_dir / category / 'partstad.safetensors'} "
            f"(train them with `partstad train --category {category}`)"
        )
    return weights


def find_weights(model_dir: Path, category: str, out: Path) -> tuple[Path, Path]:
    """(weights file, models root for evaluate: <root>/<category>/partstad.safetensors).

    A category directory of another name than the category is linked under ``<out>/.models``."""
    weights = locate_weights(model_dir, category)
    if weights.parent != model_dir:
        return weights, model_dir
    if model_dir.resolve().name == category:
        return weights, model_dir.resolve().parent
    root = out / ".models"
    link = root / category
    root.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        if link.resolve() != model_dir.resolve():
            link.unlink()
    if not link.exists():
        link.symlink_to(model_dir.resolve(), target_is_directory=True)
    return weights, root


def check_predict_params(cfg: Any) -> None:
    """Settings predict cannot honour in its own namespace (exit 2 before any work)."""
    if cfg.detect.backend == "pixels":
        raise ParamsError(
            "detect.backend: 'pixels' fits its classifier on the dataset's few-shot shapes, which predict keeps apart; "
            "use grounding_dino (or oracle for labelled shapes)"
        )
    if cfg.detect.backend == "import":
        raise ParamsError("detect.backend: 'import' results are written by `partstad import-partstad`; predict runs its own detector")


def _check_models(weights: Path, cfg: Any, category: str) -> None:
    """Every weights file of the model directory loads, is finite and fits this run (exit 2)."""
    from stages.model_check import check_models_dir

    try:
        check_models_dir(weights.parent, cfg, category)
    except ParamsError as exc:
        raise ParamsError(f"--model-dir: {exc.format_message()}") from None


def _failed_in(cache: str, stage: str, category: str, ids: list[str]) -> dict[str, str]:
    """This run's failures of ``ids`` in a stage (failures.json keeps only the latest run's record for them)."""
    from stages.runner import previous_failures
    from stages.store import CategoryStore

    wanted = set(ids)
    return {f["object"]: str(f.get("error", "")) for f in previous_failures(CategoryStore(cache, stage, category)) if f["object"] in wanted}


def stage_command(name: str) -> click.Command:
    """The click command of a stage (``stages.<name>.<name>``), imported only when run; torch's
    portable kernels are pinned first for the stages that need them, as the CLI does."""
    import importlib

    from stages.cpu_numerics import PINNED_COMMANDS, pin_portable_torch_numerics

    if name in PINNED_COMMANDS:
        pin_portable_torch_numerics()
    return getattr(importlib.import_module(f"stages.{name}"), name)


def run_stage_command(parent: click.Context, name: str, **given: Any) -> None:
    """Call a stage command's own function (what its click command calls) in a child context of
    predict's: the options not given take their defaults, ``-S`` overrides are shared through
    the context, and ``--params`` keeps predict's parameter source (a defaulted, absent
    params.yaml means the packaged defaults there too). No argument parsing, no CLI group.

    A bad input that stops the whole stage (an ObjectError escaping it) is exit 1, as the CLI
    reports it; ParamsError and usage errors keep their exit code 2."""
    from click.core import ParameterSource

    from pipeline.errors import ObjectError

    cmd = stage_command(name)
    sub = click.Context(cmd, info_name=name, parent=parent)
    kwargs: dict[str, Any] = {}
    for param in cmd.params:
        if not param.expose_value or param.name is None:
            continue
        if param.name in given:
            kwargs[param.name] = given[param.name]
            source = parent.get_parameter_source(param.name) if param.name == "params_path" else ParameterSource.COMMANDLINE
        else:
            default = param.get_default(sub)
            kwargs[param.name] = param.type_cast_value(sub, default)
            source = ParameterSource.DEFAULT
        sub.set_parameter_source(param.name, source or ParameterSource.COMMANDLINE)
    unknown = set(given) - set(kwargs)
    if unknown:
        raise TypeError(f"{name} has no option(s) {sorted(unknown)}")
    sub.params.update(kwargs)
    assert cmd.callback is not None
    with sub:
        try:
            cmd.callback(**kwargs)
        except ObjectError as exc:
            raise StageFailed(str(exc)) from None


@click.command()
@click.argument("shapes", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--category", required=True, help="Category of the shapes (a PartNetE one, or yours with data.part_names).")
@click.option(
    "--model-dir",
    "model_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Trained model: the directory holding partstad.safetensors (e.g. models/Chair), or a root holding <Category>/.",
)
@click.option(
    "--out",
    "out_dir",
    default="predictions",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the exports go.",
)
@click.option("--method", type=click.Choice(METHODS), default="partstad", show_default=True, help="Whose labels to export.")
@params_option
@click.option(
    "--cache",
    default="cache",
    show_default=True,
    callback=check_cache,
    help="Cache root; predict works in <cache>/predict, apart from the dataset's objects (reused by later predictions).",
)
@scheduler_option
@device_option
@set_option
def predict(
    shapes: tuple[Path, ...],
    category: str,
    model_dir: Path,
    out_dir: Path,
    method: str,
    params_path: str,
    cache: str,
    scheduler: str,
    device: str,
) -> None:
    """Predict part labels for your own shapes (files or folders) with a trained model."""
    from stages.exports import export_object, write_viewer
    from stages.ingest_io import file_rows, mark_invalid_ids, previous_manifest, run_ingest
    from stages.keys import files_digest
    from stages.model_check import evaluation_problem, weights_key
    from stages.provenance import describe, object_components, object_sources, provenance
    from stages.store import CategoryStore

    ctx = click.get_current_context()
    cfg = load_params(params_path)
    resolve_categories(cfg, (category,))  # no part names -> exit 2 naming the category
    check_predict_params(cfg)
    files, problems = shape_files(shapes)
    _check_models(locate_weights(model_dir, category), cfg, category)  # before anything is written
    weights, models_root = find_weights(model_dir, category, out_dir)
    if not files:
        raise StageFailed("nothing to predict: " + "; ".join(problems or ["no shape files given"]))

    cache = predict_cache(cache)  # never the dataset's stores
    common: dict[str, Any] = {
        "params_path": params_path,
        "cache": cache,
        "categories": (category,),
        "scheduler": scheduler,
        "device": device,
    }

    # 1. ingest into predict's own namespace (earlier predictions stay listed; every shape is split test)
    ing = CategoryStore(cache, "ingest", category)
    previous = previous_manifest(ing)[0] if ing.exists() else []  # a damaged manifest: warned about, rebuilt
    rows = mark_invalid_ids(file_rows(category, files, {}, "test", where="the given paths"))
    given = {r["object"] for r in rows}
    all_rows = [r for r in previous if r["object"] not in given and all(k in r for k in ("split", "source"))] + rows
    report = run_ingest(make_context("ingest", category, cache, cfg), all_rows, rows, scheduler=scheduler)
    click.echo(report.summary())
    failed: dict[str, str] = {f["object"]: f"[ingest] {f['error']}" for f in report.failed}
    ids = [r["object"] for r in rows if r["object"] not in failed]

    # 2-3. the per-object stages and evaluate: the functions of their own commands
    steps: list[tuple[str, dict[str, Any]]] = [(stage, {}) for stage in CHAIN]
    steps.append(("evaluate", {"models_root": str(models_root), "metrics_root": str(out_dir / "metrics"), "splits": "fewshot,val,test"}))
    for stage, extra in steps:
        if not ids:
            break
        stopped = None
        try:
            run_stage_command(ctx, stage, **common, **extra, objects=",".join(ids), keep_going=True)
        except click.ClickException as exc:
            if exc.exit_code == 2:
                raise
            stopped = exc.format_message()
        for oid, err in _failed_in(cache, stage, category, ids).items():
            failed[oid] = f"[{stage}] {err}"
        if stopped is not None:  # the stage stopped for the category: no shape has a result of this run
            problems.append(f"[{stage}] {stopped}")
            failed.update({o: f"[{stage}] stopped before this shape had a result ({stopped})" for o in ids if o not in failed})
        ids = [o for o in ids if o not in failed]

    # 4. exports: only labels these weights compute now (an older result of another model never leaves)
    models = {
        "dir": str(weights.parent),
        "weights": weights.name,
        "sha256_20": files_digest([weights]),
        "files": weights_key(weights.parent),
    }
    ev = CategoryStore(cache, "evaluate", category)
    written = 0
    sidecars: list[Path] = []
    for oid in ids:
        stale = evaluation_problem(cache, cfg, category, oid, Path(models_root) / category)
        if stale is not None:
            failed[oid] = f"[export] {stale}"
            continue
        if method not in ev.attrs(oid).get("methods", []):
            failed[oid] = f"[export] evaluate has no {method!r} predictions for this object"
            continue
        rec = provenance(cfg, object_components(cache, category, oid), models, object_sources(cache, category, [oid]))
        paths = export_object(cache, oid, category, method, out_dir, rec)
        sidecars.append(paths[-1])
        written += 1
        click.echo(f"[predict] {oid}: {', '.join(p.name for p in paths)}")
        if written == 1:
            click.echo(f"[predict] provenance: {describe(rec)}")
    if written:
        click.echo(f"[predict] wrote {written} object(s) to {out_dir}")
        viewer = write_viewer(out_dir / "viewer.html", sidecars, f"partstad predict: {category} ({method})")
        click.echo(f"[predict] viewer (interactive 3D, opens offline): {viewer}")
    else:
        click.echo(f"[predict] nothing exported to {out_dir}", err=True)
    for oid, err in failed.items():
        click.echo(f"  FAILED {oid}: {err}", err=True)
    for p in problems:
        click.echo(f"ERROR {p}", err=True)
    if failed or problems:
        raise StageFailed(
            f"{len(failed)} shape(s) failed" + (f", {len(problems)} problem(s)" if problems else "") + f"; {written} written to {out_dir}"
        )
