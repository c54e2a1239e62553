"""Map one stage over the objects of a category with dask, honouring the cache rules.

A stage supplies a *work function* ``work(ctx, object_id) -> (arrays, attrs)``; the runner
computes each object's fingerprint, skips complete objects whose fingerprint matches,
runs the rest on the chosen dask scheduler, writes results (delete, write, mark complete)
and records failures in ``failures.json`` without stopping the other objects.

On a dask.distributed cluster (``--scheduler local:N`` or an address) the work function,
the :class:`StageContext` and the results travel by pickle; the workers write their
objects straight into the cache (so the cache root must be reachable from every worker:
the same path on a shared file system, or a URL). Unexpected exceptions and lost workers
are retried (``retries``) before the object is recorded as failed; bad-input errors
(:class:`ObjectError`) are deterministic and never retried. A stage that needs a GPU passes
``resources={"GPU": 1}`` so that only workers started with ``--resources GPU=1`` run it.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from pipeline.errors import BadInputError, MissingUpstreamError, ObjectError
from pipeline.store import CategoryStore, fingerprint

log = logging.getLogger("partstad")

WorkFn = Callable[["StageContext", str], tuple[Mapping[str, np.ndarray], Mapping[str, Any]]]
#: Dask worker resources for every task of a stage, fixed or chosen from the context.
Resources = Union[Mapping[str, float], Callable[["StageContext"], Union[Mapping[str, float], None]], None]


@dataclass
class StageContext:
    """Everything a work function needs; picklable so it travels to dask workers."""

    stage: str
    category: str
    cache: str
    params: dict[str, Any]
    device: str = "cpu"

    def store(self, stage: str | None = None) -> CategoryStore:
        return CategoryStore(self.cache, stage or self.stage, self.category)

    def section(self, name: str | None = None) -> dict[str, Any]:
        return dict(self.params.get(name or self.stage) or {})


@dataclass
class StageReport:
    stage: str
    category: str
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"[{self.stage}] {self.category}: {len(self.done)} computed, {len(self.skipped)} up to date, "
            f"{len(self.failed)} failed ({self.seconds:.1f} s)"
        )


def upstream_fingerprints(ctx: StageContext, object_id: str, upstream: list[str]) -> dict[str, str]:
    """Fingerprints of the object's upstream results; raises if one is missing/incomplete."""
    out = {}
    for stage in upstream:
        st = ctx.store(stage)
        fp = st.stored_fingerprint(object_id)
        if fp is None:
            try:  # an unreadable group gets the store's precise error (object and file)
                st.attrs(object_id)
            except BadInputError:
                raise
            except ObjectError:
                pass
            raise MissingUpstreamError(
                f"upstream stage {stage!r} has no complete result (run `partstad {stage}` first)",
                object_id=object_id,
                path=ctx.store(stage).url,
            )
        out[stage] = fp
    return out


def _object_error(object_id: str, exc: ObjectError) -> dict[str, str]:
    msg = str(exc) if exc.object_id else f"object {object_id}: {exc}"
    return {"object": object_id, "status": "failed", "error": msg, "type": type(exc).__name__}


def _unexpected_error(object_id: str, exc: BaseException, tb: str | None = None) -> dict[str, str]:
    return {"object": object_id, "status": "failed", "error": f"object {object_id}: {exc!r}", "type": type(exc).__name__, "traceback": tb or ""}


def _run_one(ctx: StageContext, object_id: str, work: WorkFn, fp: str, reraise: bool = False) -> dict[str, str]:
    """Worker-side task: compute and write one object, or report why it failed.

    With ``reraise`` (distributed runs) unexpected exceptions propagate so that dask's
    ``retries`` apply; bad input (:class:`ObjectError`) is reported at once, never retried.
    """
    try:
        arrays, attrs = work(ctx, object_id)
        ctx.store().write_object(object_id, arrays, attrs, fp)
        return {"object": object_id, "status": "done"}
    except ObjectError as exc:
        return _object_error(object_id, exc)
    except Exception as exc:  # noqa: BLE001 - one object's bug must not kill the stage
        if reraise:
            raise
        return _unexpected_error(object_id, exc, traceback.format_exc(limit=3))


def run_stage(
    ctx: StageContext,
    object_ids: list[str],
    work: WorkFn,
    *,
    code_version: str,
    upstream: list[str],
    param_keys: Mapping[str, Any] | None = None,
    scheduler: str = "sync",
    force: bool = False,
    resources: Resources = None,
    retries: int = 2,
) -> StageReport:
    """Run ``work`` for every object that is not already complete with the same fingerprint.

    ``resources`` (e.g. ``{"GPU": 1}``, or a function of the context returning that or
    None) is the dask worker resource each task needs on a distributed cluster; the local
    schedulers ignore it. ``retries`` applies to lost workers and unexpected exceptions.
    """
    t0 = time.perf_counter()
    report = StageReport(ctx.stage, ctx.category)
    store = ctx.store()
    stage_params = dict(param_keys) if param_keys is not None else ctx.section()
    todo: list[tuple[str, str]] = []
    for oid in object_ids:
        try:
            fp = fingerprint(ctx.stage, code_version, stage_params, upstream_fingerprints(ctx, oid, upstream))
        except ObjectError as exc:
            report.failed.append({"object": oid, "error": str(exc), "type": type(exc).__name__})
            continue
        if not force and store.is_complete(oid, fp):
            report.skipped.append(oid)
        else:
            todo.append((oid, fp))

    if todo:
        store.group(writable=True)  # create the category store once, before workers race to create it
    need = resources(ctx) if callable(resources) else resources
    results = map_objects(ctx, todo, work, scheduler, resources=need, retries=retries)
    for res in results:
        if res["status"] == "done":
            report.done.append(res["object"])
        else:
            report.failed.append({k: v for k, v in res.items() if k != "status"})
            log.error("%s", res["error"])
    # A failed object keeps no result here: an old group would no longer match its inputs
    # (downstream stages would mix it with fresh upstream data). Downstream then reports
    # the object as missing instead of computing from stale data.
    for f in report.failed:
        try:
            store.delete_object(f["object"])
        except Exception as exc:  # noqa: BLE001 - the failure is already recorded
            log.warning("could not remove the stale result of %s: %r", f["object"], exc)
    report.seconds = time.perf_counter() - t0
    # Keep earlier failure records of objects this run did not look at (e.g. --objects runs).
    this_run = set(object_ids)
    previous = (store.read_json("failures.json", default=None) or {}).get("failed", []) if store.exists() else []
    kept = [f for f in previous if f.get("object") not in this_run and not store.is_complete(f.get("object", ""))]
    store.write_json(
        "failures.json",
        {"stage": ctx.stage, "category": ctx.category, "failed": kept + report.failed, "n_done": len(report.done), "n_skipped": len(report.skipped)},
    )
    log.info(report.summary())
    return report


def map_objects(
    ctx: StageContext,
    todo: list[tuple[str, str]],
    work: WorkFn,
    scheduler: str,
    resources: Mapping[str, float] | None = None,
    retries: int = 2,
) -> list[dict[str, str]]:
    """Execute the per-object tasks on dask (sync, threads, processes or a distributed cluster)."""
    if not todo:
        return []
    desc = f"{ctx.stage} {ctx.category}"
    if scheduler == "sync":
        from tqdm.auto import tqdm

        return [_run_one(ctx, oid, work, fp) for oid, fp in tqdm(todo, desc=desc, unit="obj", leave=False)]

    from stages.scheduling import is_distributed, run_tasks

    if not is_distributed(scheduler):
        return run_tasks([(_run_one, (ctx, oid, work, fp)) for oid, fp in todo], scheduler, desc=desc)
    # Workers may run elsewhere: give them an absolute cache root (same path on a shared
    # file system) rather than one relative to this process's working directory.
    if "://" not in ctx.cache:
        ctx = dataclasses.replace(ctx, cache=os.path.abspath(ctx.cache))

    def on_error(i: int, exc: BaseException, tb: str) -> dict[str, str]:
        return _unexpected_error(todo[i][0], exc, tb)

    tasks = [(_run_one, (ctx, oid, work, fp, True)) for oid, fp in todo]
    return run_tasks(tasks, scheduler, desc=desc, retries=retries, resources=resources, on_error=on_error)
