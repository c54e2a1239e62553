"""Options and helpers shared by every stage command (one click verb per DVC stage)."""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from pipeline.errors import BadInputError, ObjectError
from pipeline.meta import part_names
from stages.config import ConfigError, PipelineConfig, load_config, section_digest
from stages.keys import STAGES, KeyResolver
from stages.parallel import effective_jobs, jobs_option, map_categories
from stages.runner import StageContext, StageReport
from stages.scheduling import scheduler_option
from stages.store import CategoryStore, StoreBusyError, StoreCorruptError, atomic_write_text

log = logging.getLogger("partstad")


class ParamsError(click.ClickException):
    """Invalid configuration or command line: exit code 2, nothing touched."""

    exit_code = 2


class StageFailed(click.ClickException):
    """Some objects failed, or nothing matched: exit code 1 (results of the others are kept)."""

    exit_code = 1


OVERRIDES_KEY = "partstad.overrides"


def _remember_overrides(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    ctx.meta[OVERRIDES_KEY] = tuple(ctx.meta.get(OVERRIDES_KEY, ())) + tuple(value or ())
    return value


def set_option(f: Callable) -> Callable:
    """-S/--set key=value (repeatable): override params on the command line, like `dvc exp run -S`.

    The values are kept in the click context and applied by :func:`load_params`, so every
    command that loads params honours them without a new argument in its signature."""
    return click.option(
        "-S",
        "--set",
        "overrides",
        multiple=True,
        expose_value=False,
        callback=_remember_overrides,
        metavar="KEY=VALUE",
        help="Override a setting (dotted key, YAML value; repeatable), e.g. -S render.image_size=800. Validated like params.yaml.",
    )(f)


def load_params(path: str | Path, overrides: tuple[str, ...] | None = None, *, missing_ok: bool | None = None) -> PipelineConfig:
    """The validated configuration, before any work; a bad file or key exits with code 2.

    ``overrides`` default to the ``-S`` values of the running command. When ``--params`` was
    not given and ``params.yaml`` is absent from the working directory, the packaged
    defaults are used (logged once); an explicitly given missing file is an error.
    """
    from pipeline.meta import register_part_names
    from stages.config import DEFAULT_PARAMS

    ctx = click.get_current_context(silent=True)
    if overrides is None:
        overrides = tuple(ctx.meta.get(OVERRIDES_KEY, ())) if ctx is not None else ()
    if missing_ok is None:
        missing_ok = False
        if ctx is not None and "params_path" in ctx.params and str(path) == DEFAULT_PARAMS:
            from click.core import ParameterSource

            missing_ok = ctx.get_parameter_source("params_path") in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)
    try:
        cfg = load_config(path, overrides, missing_ok=missing_ok)
    except ConfigError as exc:
        raise ParamsError(str(exc)) from None
    register_part_names(cfg.data.part_names)
    return cfg


#: ``--params`` of every command: one default, type and help everywhere.
params_option = click.option(
    "--params",
    "params_path",
    default="params.yaml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="YAML file holding every knob of the pipeline (packaged defaults when it is absent).",
)


#: ``--device`` as every torch command takes it (auto: cuda when torch sees a GPU, else cpu)
device_option = click.option(
    "--device",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "cpu", "cuda"]),
    help="Torch device (auto: cuda when there is a GPU).",
)


def common_options(f: Callable) -> Callable:
    """--params/--cache/--category/--objects/--scheduler/--device/--force/--jobs/--keep-going/--lock-timeout."""

    @params_option
    @click.option(
        "--cache",
        "cache",
        default="cache",
        show_default=True,
        callback=check_cache,
        help="Cache root (directory or fsspec URL) holding cache/<stage>/<Category>.zarr.",
    )
    @click.option("--category", "categories", multiple=True, help="Category to process (repeatable). Default: all categories in params.")
    @objects_option
    @scheduler_option
    @device_option
    @click.option("--force", is_flag=True, help="Recompute objects even when their cached result is up to date.")
    @jobs_option
    @keep_going_options
    @functools.wraps(f)
    def wrapper(**kwargs: Any) -> Any:
        return f(**kwargs)

    return wrapper


def keep_going_options(f: Callable) -> Callable:
    """--keep-going, --lock-timeout and -S/--set, for every command that writes a store."""

    @set_option
    @click.option("--keep-going", is_flag=True, help="Exit 0 even when some objects failed (they are still listed in failures.json).")
    @click.option(
        "--lock-timeout",
        default=-1.0,
        show_default=True,
        type=float,
        callback=_check_lock_timeout,
        help="Seconds to wait for another run writing the same store (-1: wait for ever, 0: stop at once).",
    )
    @functools.wraps(f)
    def wrapper(**kwargs: Any) -> Any:
        return f(**kwargs)

    return wrapper


def _check_lock_timeout(ctx: click.Context, param: click.Parameter, value: float) -> float:
    """-1 (wait for ever) or a number of seconds >= 0; -5 or nan would silently mean something else."""
    if value == -1 or (value >= 0 and not math.isnan(value)):
        return value
    raise click.BadParameter(f"{value!r}: use -1 (wait for ever) or a number of seconds >= 0")


def check_cache(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """``--cache``: an fsspec URL, or a local path that is (or can become) a directory; an empty
    value or a file on the way is exit 2, not a NotADirectoryError in the middle of a run."""
    if "://" in str(value):
        import fsspec

        protocol = str(value).split("://", 1)[0]
        try:
            fsspec.get_filesystem_class(protocol)
        except (ImportError, ValueError) as exc:  # unknown protocol, or its package is not installed
            raise click.BadParameter(f"{value!r}: no file system for {protocol}:// here ({' '.join(str(exc).split())})") from None
        return value
    if not str(value).strip():
        raise click.BadParameter("empty path: give the cache directory (default: cache)")
    path = Path(value)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise click.BadParameter(f"{value!r}: {existing} is {'a file' if existing.is_file() else 'not a directory'}, not a cache directory")
    return value


def objects_option(f: Callable) -> Callable:
    """``--objects``: comma-separated ids, each checked like an ingested object id up front."""
    return click.option(
        "--objects",
        "objects",
        default=None,
        callback=check_objects,
        help="Comma-separated object ids (e.g. Chair/0003 or 0003) to restrict to.",
    )(f)


def check_objects(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """The ``--objects`` value with blanks around ids removed; exit 2 for an id no object can have
    (``..``, a path, whitespace inside, nothing at all) instead of a silent "matched nothing"."""
    if value is None:
        return None
    from pipeline.data.ids import validate_object_id

    ids = [o.strip() for o in str(value).split(",") if o.strip()]
    if not ids:
        raise click.BadParameter(f"{value!r} names no object (give ids like Chair/0003 or 0003, comma-separated)")
    for oid in ids:
        parts = oid.split("/")
        if len(parts) > 2:
            raise click.BadParameter(f"invalid object id {oid!r}: more than one '/' (ids look like Chair/0003 or 0003)")
        try:
            for part in parts:
                validate_object_id(part)
        except BadInputError as exc:
            raise click.BadParameter(f"{exc.reason} (in {oid!r}; ids look like Chair/0003 or 0003)") from None
    return ",".join(ids)


def resolve_device(device: str) -> str:
    """``auto`` -> cuda when torch sees a GPU, else cpu; ``cuda`` without one is exit 2 (not a
    torch assertion deep in a model stage)."""
    if device not in ("auto", "cuda"):
        return device
    if _cpu_only_torch():
        has_cuda = False  # a CPU build sees no GPU: answered without importing torch (~2.5 s)
    else:
        has_cuda = _torch_sees_cuda()
    if device == "cuda" and not has_cuda:
        raise ParamsError("--device cuda: torch sees no CUDA device here; use --device cpu (or auto)")
    return "cuda" if has_cuda else "cpu"


def _cpu_only_torch() -> bool:
    """The installed torch is a CPU build (its version ends in ``+cpu``, as the lock's does)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch").endswith("+cpu")
    except PackageNotFoundError:
        return False


def _torch_sees_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def resolve_categories(cfg: PipelineConfig, given: tuple[str, ...]) -> list[str]:
    cats = list(given) or list(cfg.categories)
    for c in cats:
        try:
            part_names(c)
        except KeyError as exc:
            raise ParamsError(f"--category: {exc.args[0] if exc.args else exc}") from None
    return cats


def manifest(cache: str, category: str) -> list[dict[str, Any]]:
    """The ingest manifest of a category (object, category, split, source).

    A damaged file (not JSON, not a list of rows with a string object and split) raises
    BadInputError naming it: the stage reports that category and goes on with the others,
    and `partstad ingest` rebuilds the file."""
    store = CategoryStore(cache, "ingest", category)
    if not store.exists():
        return []
    where = store.side_file("manifest.json")
    try:
        rows = store.read_json("manifest.json", default=[])
    except ObjectError as exc:
        raise BadInputError(f"{exc.reason}; re-run `partstad ingest` to rebuild it", path=where) from None
    except (OSError, ValueError) as exc:  # an fsspec store: unreadable or not JSON
        raise BadInputError(
            f"unreadable manifest ({type(exc).__name__}: {exc}); re-run `partstad ingest` to rebuild it", path=where
        ) from None
    rows = [] if rows is None else rows
    if not isinstance(rows, list):
        raise BadInputError("manifest.json is not a list of objects; re-run `partstad ingest` to rebuild it", path=where)
    from pipeline.data.ids import is_valid_object_id

    for i, r in enumerate(rows):
        if not (isinstance(r, dict) and isinstance(r.get("object"), str) and isinstance(r.get("split"), str)):
            raise BadInputError(
                f"row {i} is not an object with a string 'object' and 'split' ({str(r)[:80]}); re-run `partstad ingest` to rebuild it",
                path=where,
            )
        cat, _, name = r["object"].partition("/")
        if cat != category or not is_valid_object_id(name):  # an id becomes a file name: never `..` or a path
            raise BadInputError(
                f"row {i} names object {r['object'][:80]!r}, not {category}/<id>; re-run `partstad ingest` to rebuild it", path=where
            )
    return rows


def select_objects(cache: str, category: str, objects: str | None, splits: tuple[str, ...] | None = None) -> list[str]:
    """Objects of a category known to ingest, optionally filtered by --objects and split."""
    rows = manifest(cache, category)
    ids = [r["object"] for r in rows if splits is None or r["split"] in splits]
    if objects:
        wanted = {o if "/" in o else f"{category}/{o}" for o in (o.strip() for o in objects.split(",")) if o}
        ids = [i for i in ids if i in wanted]
    return ids


def finish(reports: list[StageReport], problems: list[str] | None = None, keep_going: bool = False) -> None:
    """Print a summary and exit honestly: code 1 when an object failed or nothing matched
    (``--keep-going`` turns object failures into a warning; nothing-matched stays an error)."""
    problems = list(problems or [])
    for r in reports:
        click.echo(r.summary())
        for f in r.failed:
            click.echo(f"  FAILED {f['object']}: {f['error']}", err=True)
    n_failed = sum(len(r.failed) for r in reports)
    for p in problems:
        click.echo(f"ERROR {p}", err=True)
    if problems:
        raise StageFailed(f"{len(problems)} problem(s) stopped the run" + (f" and {n_failed} object(s) failed" if n_failed else ""))
    if n_failed:
        where = ", ".join(sorted({f"{r.stage}/{r.category}.zarr/failures.json" for r in reports if r.failed}))
        if keep_going:
            click.echo(f"WARNING {n_failed} object(s) failed (listed in {where}); exit 0 because of --keep-going", err=True)
            return
        raise StageFailed(f"{n_failed} object(s) failed (listed in {where}); the other results are kept")


def make_context(
    stage: str, category: str, cache: str, config: PipelineConfig, device: str = "cpu", runtime: dict[str, Any] | None = None
) -> StageContext:
    return StageContext(stage=stage, category=category, cache=cache, config=config, device=device, runtime=dict(runtime or {}))


def key_resolver(ctx: StageContext, extra: Callable[[str, str], Any] | None = None) -> KeyResolver:
    """Object keys for the stages of one category under this configuration."""
    cfg = ctx.config

    other_inputs: dict[str, dict[str, Any]] = {}

    def view(stage: str) -> Any:
        v = section_digest(*(getattr(cfg, s) for s in STAGES[stage].sections))
        from stages.backends.lookup import STAGE_REGISTRY, registry

        if stage not in STAGE_REGISTRY:
            return v
        backends = registry(STAGE_REGISTRY[stage])
        backend = backends.configured(cfg)
        section = type(getattr(cfg, backends.setting.split(".")[0])).__name__
        # a backend's private config section (the pixels simulators' knobs) shapes results only when that backend runs
        for other in backends.values():
            if other.private_section and other.config_section and other is not backend:
                v[section].pop(other.config_section, None)
        # autocast precision shapes results only when a real model runs; then the resolved one (auto: bf16 on CUDA)
        if "precision" in v[section]:
            if backend.uses_model(cfg):
                from pipeline.batching import resolve_precision

                v[section]["precision"] = resolve_precision(v[section]["precision"], ctx.device)
            else:
                v[section].pop("precision")
        # the content of the weights in use (base or adapted detector, SAM checkpoint), never their path
        v = {**v, **backend.weights_key(cfg, ctx.category)}
        if stage not in other_inputs:  # e.g. the pixels detector's few-shot objects: the same for every object
            other_inputs[stage] = backend.key_extra(ctx, resolver.current)
        return {**v, **other_inputs[stage]}

    resolver = KeyResolver(view, ctx.store, extra)
    return resolver


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
    atomic_write_text(path, json.dumps(_strict(payload), indent=2, allow_nan=False))


def save_preview(ctx: StageContext, object_id: str, kind: str, image: Any) -> Path | None:
    """Write reports/previews/<Category>/<id>_<kind>.png when the stage runs with --preview."""
    if not ctx.runtime.get("preview"):
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
    params_path: str,
    cache: str,
    categories: tuple[str, ...],
    objects: str | None,
    scheduler: str,
    device: str,
    force: bool,
    keep_going: bool = False,
    lock_timeout: float = -1,
    jobs: str | int = 1,
    splits: tuple[str, ...] | None = None,
    runtime: dict[str, Any] | None = None,
    resources: Any = None,
    preflight: Callable[[PipelineConfig, str], None] | None = None,
    uses_model: Callable[[PipelineConfig], bool] | None = None,
    extra: Callable[[StageContext], Callable[[str, str], Any]] | None = None,
) -> list[StageReport]:
    """The body of every per-object stage command: config -> objects -> runner, per category.

    The configuration is validated (and ``preflight(config, device)`` loads any model
    weights) before any object or store is touched. ``resources``: dask worker resources per
    task (``{"GPU": 1}``) or a function of the StageContext returning them. Categories run
    ``jobs`` at a time in worker processes (one at a time with a dask scheduler, which
    parallelises objects itself, or on a GPU).
    """
    cfg = load_params(params_path)
    # Only a stage that runs a model (a preflight, and uses_model(config) when given) pays for
    # importing torch to look for a GPU (~2-4 s); the simulated detector and SAM do not.
    with_model = preflight is not None and (uses_model is None or uses_model(cfg))
    dev = resolve_device(device) if with_model else ("cpu" if device == "auto" else device)
    cats = resolve_categories(cfg, categories)
    if preflight is not None:
        preflight(cfg, dev)
    results = map_categories(
        _run_category,
        cats,
        effective_jobs(jobs, scheduler, dev),
        stage,
        work,
        cache,
        cfg,
        dev,
        objects,
        splits,
        runtime,
        scheduler,
        force,
        resources,
        lock_timeout,
        extra,
    )
    reports = [r for r, _ in results if r is not None]
    problems = [p for _, p in results if p is not None]
    finish(reports, problems, keep_going)
    return reports


def _run_category(
    category: str,
    stage: str,
    work: Callable,
    cache: str,
    cfg: PipelineConfig,
    device: str,
    objects: str | None,
    splits: tuple[str, ...] | None,
    runtime: dict[str, Any] | None,
    scheduler: str,
    force: bool,
    resources: Any,
    lock_timeout: float,
    extra: Callable[[StageContext], Callable[[str, str], Any]] | None,
) -> tuple[StageReport | None, str | None]:
    """One category of a per-object stage: (report, None) or (None, problem); runs in a --jobs worker too."""
    from pipeline.meta import register_part_names
    from stages.runner import run_stage

    register_part_names(cfg.data.part_names)  # a worker process starts without them
    try:
        ids = select_objects(cache, category, objects, splits)
    except ObjectError as exc:
        return None, f"[{stage}] {category}: {exc}"
    if not ids:
        what = f"--objects {objects!r} matched no" if objects else "no"
        return (
            None,
            f"[{stage}] {category}: {what} ingested object{'' if splits is None else ' in splits ' + ','.join(splits)} (run `partstad ingest` first?)",
        )
    ctx = make_context(stage, category, cache, cfg, device, runtime)
    try:
        return run_stage(
            ctx,
            ids,
            work,
            keys=key_resolver(ctx, extra(ctx) if extra else None),
            scheduler=scheduler,
            force=force,
            resources=resources,
            lock_timeout=lock_timeout,
        ), None
    except (StoreBusyError, StoreCorruptError) as exc:
        return None, f"[{stage}] {category}: {exc}"
    except OSError as exc:  # the store itself (lock, folder, side files) cannot be written: not one object's fault
        return None, f"[{stage}] {category}: cannot write the cache ({type(exc).__name__}: {exc})"
