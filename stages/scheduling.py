"""Dask execution of per-object tasks: local schedulers or a dask.distributed cluster.

``--scheduler`` accepts ``sync``, ``threads``, ``processes``, ``local:N`` (a LocalCluster
with N single-threaded worker processes on this machine) or a scheduler address such as
``tcp://host:8786`` (a cluster started with ``dask scheduler`` / ``dask worker``).
Nothing home-made: dask does scheduling, retries (``retries``: an exception or a lost
worker re-runs the task elsewhere) and worker resources (``{"GPU": 1}`` runs a task only on
workers started with ``--resources GPU=1``). Progress is a tqdm bar on a terminal, timed lines in a log (stages/progress.py).

The value is checked when the command line is read (:class:`SchedulerType`, shared by every
command's ``--scheduler`` and ``PARTSTAD_SCHEDULER``): a typo is exit 2, not a traceback.
Worker processes die with the process that started them: dask's ``processes`` pool through
:func:`stages.parent_watch.die_with_parent`, a ``local:N`` cluster's workers by
dask.distributed's own parent pipe.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click

Task = tuple[Callable[..., Any], tuple[Any, ...]]
#: ``on_error(task_index, exception, traceback_text) -> result`` for tasks that failed for good.
OnError = Callable[[int, BaseException, str], Any]

log = logging.getLogger("partstad")
_LOCAL_CLUSTERS: dict[tuple[int, tuple[tuple[str, float], ...]], Any] = {}


class ClusterResourceError(click.ClickException):
    """The cluster has no worker offering the resources a stage needs (it would wait forever)."""


#: Environment default of ``--scheduler`` (e.g. under ``dvc repro``).
SCHEDULER_ENV = "PARTSTAD_SCHEDULER"
LOCAL_SCHEDULERS = ("sync", "threads", "processes")
#: Address schemes of a dask.distributed scheduler.
_PROTOCOLS = ("tcp", "tls", "ucx", "ws", "wss")
SCHEDULER_FORMS = "sync | threads | processes | local:N (N >= 1) | tcp://host:port"


def scheduler_problem(value: str) -> str | None:
    """Why ``value`` is not a scheduler this package runs (None when it is one), decided
    before any work so that a typo is exit 2 and not a traceback (or a minute-long connect)."""
    if value in LOCAL_SCHEDULERS or value == "single-threaded":
        return None
    if value.startswith("local:"):
        n = value.split(":", 1)[1]
        if not (n.isascii() and n.isdigit()) or int(n) < 1:
            return f"local:N needs a whole number of workers N >= 1, got {n!r}"
        return None
    if "://" in value:
        proto, rest = value.split("://", 1)
        if proto not in _PROTOCOLS:
            return f"unknown protocol {proto!r} (use {', '.join(p + '://' for p in _PROTOCOLS)})"
        return _host_port_problem(rest)
    if value.count(":") == 1:
        return _host_port_problem(value)
    return f"use {SCHEDULER_FORMS}"


def _host_port_problem(address: str) -> str | None:
    host, sep, port = address.rpartition(":")
    if not sep or not host or any(c.isspace() or c in "/?#@" for c in host):
        return f"{address!r} is not host:port"
    if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        return f"port {port!r} is not a number in 1..65535"
    return None


class SchedulerType(click.ParamType):
    """``--scheduler`` / PARTSTAD_SCHEDULER, checked when the command line is read."""

    name = "scheduler"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip()
        problem = scheduler_problem(text)
        if problem is None:
            return text
        from click.core import ParameterSource

        env = (
            ctx is not None
            and param is not None
            and param.name is not None
            and ctx.get_parameter_source(param.name) == ParameterSource.ENVIRONMENT
        )
        self.fail(f"{SCHEDULER_ENV}={value!r} (environment): {problem}" if env else f"{value!r}: {problem}", param, ctx)


SCHEDULER = SchedulerType()


def scheduler_option(f: Callable) -> Callable:
    """``--scheduler`` as every command takes it (validated, env PARTSTAD_SCHEDULER)."""
    return click.option(
        "--scheduler",
        default="sync",
        show_default=True,
        envvar=SCHEDULER_ENV,
        type=SCHEDULER,
        help=f"Dask scheduler: {SCHEDULER_FORMS} (env {SCHEDULER_ENV}, e.g. under dvc repro).",
    )(f)


class SchedulerUnreachable(click.ClickException):
    """No dask scheduler answers at the ``--scheduler`` address: a command-line mistake, exit 2."""

    exit_code = 2


def is_distributed(scheduler: str) -> bool:
    return scheduler.startswith("local:") or "://" in scheduler or scheduler.count(":") == 1 and scheduler.split(":")[1].isdigit()


def run_tasks(
    tasks: Sequence[Task],
    scheduler: str,
    desc: str = "",
    retries: int = 2,
    resources: Mapping[str, float] | None = None,
    on_error: OnError | None = None,
) -> list[Any]:
    """Run independent tasks and return their results in order.

    On a distributed scheduler a task that still fails after ``retries`` re-runs (its
    exception, or ``KilledWorker`` when it keeps killing its worker) becomes
    ``on_error(i, exc, tb)``; without ``on_error`` the first such exception is raised.
    ``resources`` only matter on a distributed scheduler.
    """
    import dask

    if scheduler in ("threads", "processes", "sync", "single-threaded"):
        from dask.callbacks import Callback

        from stages.progress import Progress

        delayed = [dask.delayed(fn, pure=False)(*args) for fn, args in tasks]
        extra = {"initializer": _orphan_proof_initializer()} if scheduler == "processes" else {}
        ours = {d.key for d in delayed}

        class _Count(Callback):  # one progress step per finished task of ours (dask may add its own)
            def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
                if key in ours:
                    bar.update(1)

        with Progress(len(tasks), desc or "tasks") as bar, _Count():
            return list(dask.compute(*delayed, scheduler=scheduler, **extra))
    if not is_distributed(scheduler):
        raise ValueError(f"unknown scheduler {scheduler!r}: use sync, threads, processes, local:N or a dask address")
    return _run_distributed(tasks, scheduler, desc, retries, dict(resources) if resources else None, on_error)


def _orphan_proof_initializer() -> Callable[[], None]:
    """Initializer of dask's ``processes`` workers: they die with this process (then run any
    ``multiprocessing.initializer`` of the dask config)."""
    import dask

    from stages.parent_watch import die_with_parent

    user = dask.config.get("multiprocessing.initializer", None)
    return functools.partial(die_with_parent, os.getpid(), (user,) if user else ())


def local_cluster(n_workers: int, resources: Mapping[str, float] | None = None):
    """A LocalCluster of ``n_workers`` single-threaded processes, reused within this process.

    Every worker offers ``resources`` (so ``local:N`` runs GPU stages on this machine's
    GPU; with one GPU each of the N workers shares it).
    """
    from distributed import LocalCluster

    key = (int(n_workers), tuple(sorted((resources or {}).items())))
    cluster = _LOCAL_CLUSTERS.get(key)
    if cluster is None or cluster.status.name in ("closed", "closing", "failed"):
        import dask

        # One task per worker thread at a time (objects are coarse tasks): a task that
        # kills its worker then only implicates itself, not queued neighbours.
        with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
            cluster = LocalCluster(
                n_workers=int(n_workers),
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                resources=dict(resources) if resources else None,
            )
        _LOCAL_CLUSTERS[key] = cluster
    return cluster


@atexit.register
def close_local_clusters() -> None:
    """Shut down the LocalClusters this process started (also run at exit)."""
    while _LOCAL_CLUSTERS:
        _, cluster = _LOCAL_CLUSTERS.popitem()
        try:
            cluster.close()
        except Exception:  # noqa: BLE001 - best effort at shutdown
            pass


def check_resources(client: Any, resources: Mapping[str, float] | None, address: str) -> None:
    """Fail fast (instead of waiting forever) when no worker offers the needed resources."""
    if not resources:
        return
    workers = client.scheduler_info().get("workers", {})
    ok = [w for w in workers.values() if all(float((w.get("resources") or {}).get(k, 0)) >= float(v) for k, v in resources.items())]
    if not ok:
        flags = " ".join(f"--resources {k}={v:g}" for k, v in resources.items())
        raise ClusterResourceError(
            f"none of the {len(workers)} workers of the dask cluster at {address} offers {dict(resources)}; "
            f"start GPU workers with `dask worker {address} {flags}` (or run with --device cpu)"
        )


def _run_distributed(
    tasks: Sequence[Task], scheduler: str, desc: str, retries: int, resources: dict[str, float] | None, on_error: OnError | None
) -> list[Any]:
    from distributed import Client, as_completed

    from stages.progress import Progress

    if not log.isEnabledFor(logging.DEBUG):  # cluster chatter only with `partstad -v`
        logging.getLogger("distributed").setLevel(logging.WARNING)
    if scheduler.startswith("local:"):
        problem = scheduler_problem(scheduler)
        if problem:  # the command line checked it already; this guards other callers
            raise ValueError(f"--scheduler {scheduler}: {problem}")
        n = int(scheduler.split(":", 1)[1])
        client = Client(local_cluster(n, resources), set_as_default=False)
    else:
        try:
            client = Client(scheduler, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise SchedulerUnreachable(
                f"--scheduler {scheduler}: cannot reach a dask scheduler there ({type(exc).__name__}: {exc}); "
                "start one with `dask scheduler`, or use sync | threads | processes | local:N"
            ) from None
    try:
        check_resources(client, resources, scheduler)
        futures = [client.submit(fn, *args, pure=False, retries=retries, resources=resources) for fn, args in tasks]
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[Any] = [None] * len(futures)
        with Progress(len(futures), desc) as bar:
            for fut in as_completed(futures, loop=client.loop):
                i = index[fut.key]
                if fut.status == "finished":
                    results[i] = fut.result()
                else:
                    task_exc = fut.exception()
                    tb = "".join(traceback.format_tb(fut.traceback())) if fut.traceback() is not None else ""
                    if on_error is None:
                        raise task_exc
                    log.warning("task %d of %s failed after %d retries: %r", i, desc, retries, task_exc)
                    results[i] = on_error(i, task_exc, tb)
                bar.update(1)
                fut.release()
        return results
    finally:
        client.close()
