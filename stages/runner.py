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
from typing import Any

import numpy as np

from pipeline.errors import ObjectError
from stages.keys import ORIGIN_ATTR, UPSTREAM_ATTR
from stages.store import CategoryStore

log = logging.getLogger("partstad")

WorkFn = Callable[["StageContext", str], tuple[Mapping[str, np.ndarray], Mapping[str, Any]]]
#: Dask worker resources for every task of a stage, fixed or chosen from the context.
Resources = Mapping[str, float] | Callable[["StageContext"], Mapping[str, float] | None] | None


@dataclass
class StageContext:
    """Everything a work function needs; picklable so it travels to dask workers.

    ``config`` is the validated :class:`stages.config.PipelineConfig` (or, for generic
    runner use, any mapping of sections); ``runtime`` carries per-run values that are not
    settings (sources found by ingest, the models directory, --preview).
    """

    stage: str
    category: str
    cache: str
    config: Any
    device: str = "cpu"
    runtime: dict[str, Any] = field(default_factory=dict)

    def store(self, stage: str | None = None) -> CategoryStore:
        return CategoryStore(self.cache, stage or self.stage, self.category)

    def section(self, name: str | None = None) -> Any:
        """One config section (a typed model; a dict for generic mappings)."""
        key = name or self.stage
        if isinstance(self.config, Mapping):
            return self.config.get(key) or {}
        return getattr(self.config, key)


@dataclass
class StageReport:
    stage: str
    category: str
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def n_objects(self) -> int:
        return len(self.done) + len(self.skipped) + len(self.failed)

    def summary(self) -> str:
        rep = f", {len(self.repaired)} repaired" if self.repaired else ""
        return (
            f"[{self.stage}] {self.category}: {len(self.done)} computed, {len(self.skipped)} up to date, "
            f"{len(self.failed)} failed{rep} ({self.seconds:.1f} s)"
        )


def _object_error(object_id: str, exc: ObjectError) -> dict[str, str]:
    msg = str(exc) if exc.object_id else f"object {object_id}: {exc}"
    return {"object": object_id, "status": "failed", "error": msg, "type": type(exc).__name__}


def _unexpected_error(object_id: str, exc: BaseException, tb: str | None = None) -> dict[str, str]:
    return {
        "object": object_id,
        "status": "failed",
        "error": f"object {object_id}: {exc!r}",
        "type": type(exc).__name__,
        "traceback": tb or "",
    }


def _run_one(
    ctx: StageContext, object_id: str, work: WorkFn, fp: str, meta: Mapping[str, Any] | None = None, reraise: bool = False
) -> dict[str, str]:
    """Worker-side task: compute and write one object, or report why it failed.

    ``meta`` (upstream keys, origin) is added to the object's attrs. With ``reraise``
    (distributed runs) unexpected exceptions propagate so that dask's ``retries`` apply;
    bad input (:class:`ObjectError`) is reported at once, never retried. A failure never
    touches the object's previous result (the store swaps a new result in only when whole).
    """
    try:
        _register_categories(ctx)
        arrays, attrs = work(ctx, object_id)
        ctx.store().write_object(object_id, arrays, {**dict(attrs), **dict(meta or {})}, fp)
        return {"object": object_id, "status": "done"}
    except ObjectError as exc:
        return _object_error(object_id, exc)
    except Exception as exc:  # noqa: BLE001 - one object's bug must not kill the stage
        if reraise:
            raise
        return _unexpected_error(object_id, exc, traceback.format_exc(limit=3))


def _register_categories(ctx: StageContext) -> None:
    """User categories' part names (data.part_names) in this process too (dask workers)."""
    data = getattr(ctx.config, "data", None)
    if data is not None and getattr(data, "part_names", None):
        from pipeline.meta import register_part_names

        register_part_names(data.part_names)


def previous_failures(store: CategoryStore) -> list[dict[str, Any]]:
    """Failure records of an earlier run; a corrupt failures.json is reported and replaced."""
    if not store.exists():
        return []
    try:
        data = store.read_json("failures.json", default=None) or {}
        failed = data.get("failed", []) if isinstance(data, dict) else []
        return [f for f in failed if isinstance(f, dict) and isinstance(f.get("object"), str)]
    except ObjectError as exc:
        log.warning("%s; it is replaced by this run's record", exc)
        return []


def _recorded_failures(store: CategoryStore) -> dict[str, Any] | None:
    """failures.json as recorded, or None when absent or garbage (then it must be rewritten)."""
    try:
        data = store.read_json("failures.json", default=None)
    except ObjectError:
        return None
    return data if isinstance(data, dict) else None


def run_stage(
    ctx: StageContext,
    object_ids: list[str],
    work: WorkFn,
    *,
    keys: Any,
    scheduler: str = "sync",
    force: bool = False,
    resources: Resources = None,
    retries: int = 2,
    lock_timeout: float = -1,
    origin: str | None = None,
    after: Callable[[StageReport], None] | None = None,
) -> StageReport:
    """Run ``work`` for every object whose cached result is missing, stale or damaged.

    ``keys`` computes object keys (:class:`stages.keys.KeyResolver`: config + code hash +
    verified upstream keys; anything with its ``key``, ``current`` and ``upstream_of``). The whole run holds the store's lock, so a
    second run of the same stage and category waits (or stops, ``lock_timeout``).
    A complete object is skipped only when its key matches *and* its arrays pass the cheap
    self-check; a failing object keeps its previous result and is listed in failures.json.

    ``resources`` (e.g. ``{"GPU": 1}``, or a function of the context returning that or
    None) is the dask worker resource each task needs on a distributed cluster; the local
    schedulers ignore it. ``retries`` applies to lost workers and unexpected exceptions.
    ``after(report)`` runs at the end while the lock is still held.
    """
    t0 = time.perf_counter()
    report = StageReport(ctx.stage, ctx.category)
    store = ctx.store()
    ups = keys.upstream_of(ctx.stage)
    with store.lock(lock_timeout):
        store.check_root()
        store.clean_leftovers()
        todo: list[tuple[str, str, dict[str, Any]]] = []
        for oid in object_ids:
            try:
                fp = keys.key(ctx.stage, oid)
                meta: dict[str, Any] = {UPSTREAM_ATTR: {u: keys.current(u, oid) for u in ups}}
            except ObjectError as exc:
                report.failed.append(_object_error(oid, exc))
                continue
            if origin:
                meta[ORIGIN_ATTR] = origin
            if not force and store.is_complete(oid, fp):
                problem = store.verify_object(oid)
                if problem is None:
                    report.skipped.append(oid)
                    continue
                log.warning("%s: the cached %s result is damaged (%s); recomputing it", oid, ctx.stage, problem)
                report.repaired.append(oid)
            todo.append((oid, fp, meta))

        if todo:
            store.group(writable=True)  # create the category store once, before workers race to create it
        need = resources(ctx) if callable(resources) else resources
        results = map_objects(ctx, todo, work, scheduler, resources=need, retries=retries)
        for res in results:
            if res["status"] == "done":
                report.done.append(res["object"])
            else:
                report.failed.append(res)
        for f in report.failed:
            f.pop("status", None)
            log.debug("%s", f["error"])  # printed once, as FAILED, by the command's summary
        report.seconds = time.perf_counter() - t0
        # Keep earlier failure records of objects this run did not look at (e.g. --objects runs).
        this_run = set(object_ids)
        previous = previous_failures(store)
        kept = [f for f in previous if f.get("object") not in this_run]
        # failures.json records the state (which objects failed, how many have a result), not
        # this run's history (computed vs up to date): a rerun that changes nothing, even one
        # where the same object fails again, writes the same bytes, so DVC sees no modified output.
        state = {
            "stage": ctx.stage,
            "category": ctx.category,
            "failed": kept + report.failed,
            "n_ok": len(report.done) + len(report.skipped),
        }
        if (store.exists() or report.failed) and _recorded_failures(store) != state:
            store.write_json("failures.json", state)
        if after is not None:  # still under the lock (ingest's manifest)
            after(report)
    log.debug(report.summary())
    return report


def map_objects(
    ctx: StageContext,
    todo: list[tuple[str, str, dict[str, Any]]],
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
        from stages.progress import track

        return [_run_one(ctx, oid, work, fp, meta) for oid, fp, meta in track(todo, desc)]

    from stages.scheduling import is_distributed, run_tasks

    if not is_distributed(scheduler):
        return run_tasks([(_run_one, (ctx, oid, work, fp, meta)) for oid, fp, meta in todo], scheduler, desc=desc)
    # Workers may run elsewhere: give them an absolute cache root (same path on a shared
    # file system) rather than one relative to this process's working directory.
    if "://" not in ctx.cache:
        ctx = dataclasses.replace(ctx, cache=os.path.abspath(ctx.cache))

    def on_error(i: int, exc: BaseException, tb: str) -> dict[str, str]:
        return _unexpected_error(todo[i][0], exc, tb)

    tasks = [(_run_one, (ctx, oid, work, fp, meta, True)) for oid, fp, meta in todo]
    return run_tasks(tasks, scheduler, desc=desc, retries=retries, resources=resources, on_error=on_error)
