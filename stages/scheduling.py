"""Dask execution of per-object tasks: local schedulers or a dask.distributed cluster.

``--scheduler`` accepts ``sync``, ``threads``, ``processes``, ``local:N`` (a LocalCluster
with N single-threaded workers) or a scheduler address such as ``tcp://host:8786``.
Nothing home-made: dask does scheduling, retries and progress.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Task = tuple[Callable[..., Any], tuple[Any, ...]]


def is_distributed(scheduler: str) -> bool:
    return scheduler.startswith("local:") or "://" in scheduler or scheduler.count(":") == 1 and scheduler.split(":")[1].isdigit()


def run_tasks(tasks: Sequence[Task], scheduler: str, desc: str = "", retries: int = 2, resources: dict[str, float] | None = None) -> list[Any]:
    """Run independent tasks and return their results in order."""
    import dask

    if scheduler in ("threads", "processes", "sync", "single-threaded"):
        from dask.diagnostics import ProgressBar

        delayed = [dask.delayed(fn, pure=False)(*args) for fn, args in tasks]
        with ProgressBar(minimum=2.0):
            return list(dask.compute(*delayed, scheduler=scheduler))
    if not is_distributed(scheduler):
        raise ValueError(f"unknown scheduler {scheduler!r}: use sync, threads, processes, local:N or a dask address")
    return _run_distributed(tasks, scheduler, desc, retries, resources)


def _run_distributed(tasks: Sequence[Task], scheduler: str, desc: str, retries: int, resources: dict[str, float] | None) -> list[Any]:
    from distributed import Client, LocalCluster, progress

    cluster = None
    if scheduler.startswith("local:"):
        n = int(scheduler.split(":", 1)[1])
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        futures = [client.submit(fn, *args, pure=False, retries=retries, resources=resources) for fn, args in tasks]
        progress(futures, notebook=False)
        return client.gather(futures)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
