"""Dask execution of per-object tasks: local schedulers or a dask.distributed cluster.

``--scheduler`` accepts ``sync``, ``threads``, ``processes``, ``local:N`` (a LocalCluster
with N single-threaded worker processes on this machine) or a scheduler address such as
``tcp://host:8786`` (a cluster started with ``dask scheduler`` / ``dask worker``).
Nothing home-made: dask does scheduling, retries (``retries``: an exception or a lost
worker re-runs the task elsewhere) and worker resources (``{"GPU": 1}`` runs a task only on
workers started with ``--resources GPU=1``). Progress is a tqdm bar on stderr.
"""
from __future__ import annotations

import atexit
import logging
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
        from dask.diagnostics import ProgressBar

        delayed = [dask.delayed(fn, pure=False)(*args) for fn, args in tasks]
        with ProgressBar(minimum=2.0):
            return list(dask.compute(*delayed, scheduler=scheduler))
    if not is_distributed(scheduler):
        raise ValueError(f"unknown scheduler {scheduler!r}: use sync, threads, processes, local:N or a dask address")
    return _run_distributed(tasks, scheduler, desc, retries, dict(resources) if resources else None, on_error)


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
                n_workers=int(n_workers), threads_per_worker=1, processes=True, dashboard_address=":0",
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
    from tqdm.auto import tqdm

    if not log.isEnabledFor(logging.DEBUG):  # cluster chatter only with `partstad -v`
        logging.getLogger("distributed").setLevel(logging.WARNING)
    if scheduler.startswith("local:"):
        n = int(scheduler.split(":", 1)[1])
        if n < 1:
            raise ValueError(f"--scheduler {scheduler}: need at least one worker")
        client = Client(local_cluster(n, resources), set_as_default=False)
    else:
        client = Client(scheduler, set_as_default=False)
    try:
        check_resources(client, resources, scheduler)
        futures = [client.submit(fn, *args, pure=False, retries=retries, resources=resources) for fn, args in tasks]
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[Any] = [None] * len(futures)
        with tqdm(total=len(futures), desc=desc, unit="obj", leave=False) as bar:
            for fut in as_completed(futures, loop=client.loop):
                i = index[fut.key]
                if fut.status == "finished":
                    results[i] = fut.result()
                else:
                    exc = fut.exception()
                    tb = "".join(traceback.format_tb(fut.traceback())) if fut.traceback() is not None else ""
                    if on_error is None:
                        raise exc
                    log.warning("task %d of %s failed after %d retries: %r", i, desc, retries, exc)
                    results[i] = on_error(i, exc, tb)
                bar.update(1)
                fut.release()
        return results
    finally:
        client.close()
