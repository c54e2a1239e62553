"""Categories side by side: one stage process, ``--jobs`` worker processes, one category each.

Under ``dvc repro`` every stage is one process over all categories (one Python start-up per
stage instead of one per stage and category). Categories are independent (their own store,
lock and model directory), so that process hands them to a pool of spawned workers and
uses every core. What a worker prints or logs is captured and printed by the parent when
that category is done, so the output of two categories never interleaves and reads the same
as a sequential run. ``--jobs 1`` (or a single category) runs in-process, with no pool.
Workers die with the parent (:mod:`stages.parent_watch`): a ``kill -9`` of the run leaves no
worker writing the cache; the next run cleans up and redoes the objects they left unfinished.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

#: Environment default of ``--jobs`` (``auto`` = one worker per core, at most one per category).
JOBS_ENV = "PARTSTAD_JOBS"


def jobs_option(f: Callable) -> Callable:
    """``--jobs N|auto``: how many categories run at once (worker processes)."""
    return click.option(
        "--jobs",
        default="auto",
        show_default=True,
        envvar=JOBS_ENV,
        callback=_check_jobs,
        help="Categories processed at once, each in its own worker process: a number or 'auto' "
        f"(one per CPU core, at most one per category; env {JOBS_ENV}). 1 = in this process.",
    )(f)


def _check_jobs(ctx: click.Context, param: click.Parameter, value: str) -> str:
    text = str(value).strip()
    if text == "auto" or (text.isascii() and text.isdigit() and int(text) >= 1):
        return text
    from click.core import ParameterSource

    env = param.name is not None and ctx.get_parameter_source(param.name) == ParameterSource.ENVIRONMENT
    raise click.BadParameter(
        f"{JOBS_ENV}={value!r} (environment): use a positive number or 'auto'" if env else f"{value!r}: use a positive number or 'auto'"
    )


def resolve_jobs(jobs: str | int, n_items: int) -> int:
    """Worker count for ``n_items`` categories: never more than there is work or cores for."""
    want = (os.cpu_count() or 1) if str(jobs) == "auto" else int(jobs)
    return max(1, min(want, n_items))


def effective_jobs(jobs: str | int, scheduler: str = "sync", device: str = "cpu") -> str | int:
    """``jobs``, or 1 where parallel categories would compete for one resource: a dask
    scheduler other than ``sync`` already spreads objects over workers, and a GPU is one
    device that every category's model would load onto."""
    return jobs if scheduler == "sync" and device == "cpu" else 1


def map_categories(fn: Callable[..., Any], categories: Sequence[str], jobs: str | int, *args: Any) -> list[Any]:
    """``[fn(category, *args) for category in categories]``, on ``jobs`` worker processes.

    ``fn`` and ``args`` must pickle (module-level function, plain data, the validated
    config). Results come back in the order of ``categories``; an exception raised by ``fn``
    is re-raised here, after the output of the categories before it has been printed.
    """
    n = resolve_jobs(jobs, len(categories))
    if n <= 1:
        return [fn(c, *args) for c in categories]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    level = logging.getLogger("partstad").getEffectiveLevel()
    threads = max(1, (os.cpu_count() or 1) // n)
    from stages.parent_watch import die_with_parent

    # spawn, not fork: zarr and torch run background threads that a forked child would lack.
    # Workers die with this process (a kill -9 of the run leaves no worker writing the cache).
    with ProcessPoolExecutor(
        n, mp_context=multiprocessing.get_context("spawn"), initializer=die_with_parent, initargs=(os.getpid(), (_limit_threads, threads))
    ) as pool:
        futures = [pool.submit(_captured, fn, c, args, level) for c in categories]
        out = []
        for fut in futures:
            result, stdout, stderr = fut.result()
            if stdout:
                click.echo(stdout, nl=False)
            if stderr:
                click.echo(stderr, err=True, nl=False)
            if isinstance(result, _Raised):
                raise result.exc
            out.append(result)
        return out


#: Thread-pool sizes of numpy's BLAS, OpenMP and torch, read when those libraries load.
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def _limit_threads(threads: int) -> None:
    """Give each worker its share of the cores (runs before the worker imports numpy/torch):
    N workers each starting a thread per core would fight over the same cores."""
    for var in _THREAD_VARS:
        os.environ[var] = str(threads)


class _Raised:
    """An exception of ``fn`` carried back with the output printed before it."""

    def __init__(self, exc: BaseException):
        self.exc = exc


class _CurrentStderr(io.TextIOBase):
    """A stream that writes to whatever ``sys.stderr`` is at the time (the capture buffer)."""

    def write(self, s: str) -> int:
        return sys.stderr.write(s)


def _captured(fn: Callable[..., Any], category: str, args: tuple[Any, ...], level: int) -> tuple[Any, str, str]:
    """Run ``fn`` in a worker with its stdout, stderr and log records captured."""
    out, err = io.StringIO(), io.StringIO()
    logger = logging.getLogger("partstad")
    handler = logging.StreamHandler(_CurrentStderr())
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            result: Any = fn(category, *args)
        except Exception as exc:  # noqa: BLE001 - travels back and is raised in the parent
            result = _Raised(exc)
    return result, out.getvalue(), err.getvalue()
