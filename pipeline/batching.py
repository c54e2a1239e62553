"""How the real 2D models run their views: batch size, autocast precision, prefetching.

Why one module: Grounding DINO and SAM make the same three choices per forward. On a GPU
the views of one object go through one forward (launch and weight-read costs are paid once),
matmuls run in bf16/fp16 (tensor cores), and the CPU preprocessing of the next batch (PIL
resize, normalisation) runs in a thread while the device computes the current one. On a CPU
none of that buys anything, so the defaults there are one view per forward and fp32.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, TypeVar, overload

import torch

Precision = Literal["auto", "fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")

#: Views per forward when the setting is null: every view of an object (V = 10) on CUDA,
#: one on a CPU: there batching measured slower (benchmarks/bench_real_models.py, real sizes,
#: 2 views x 800 px: SAM vit_b 0.62x, Grounding DINO tiny 0.93x) and only raises peak memory.
AUTO_BATCH = {"cuda": 16, "cpu": 1}

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

T = TypeVar("T")
R = TypeVar("R")


def device_type(device: str | torch.device) -> str:
    """``"cuda"`` for any CUDA device (``cuda:1``), else the device's type."""
    return torch.device(device).type


def resolve_batch_size(batch_size: int | None, device: str | torch.device) -> int:
    """Views per forward: the setting, or :data:`AUTO_BATCH` for the device when it is null/0."""
    if batch_size:
        if int(batch_size) < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        return int(batch_size)
    return AUTO_BATCH.get(device_type(device), AUTO_BATCH["cpu"])


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """``auto`` -> ``bf16`` on CUDA, ``fp32`` elsewhere; other values pass through (checked)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bf16" if device_type(device) == "cuda" else "fp32"
    return precision


def autocast(precision: str, device: str | torch.device) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for bf16/fp16 (after :func:`resolve_precision`), a no-op for fp32."""
    p = resolve_precision(precision, device)
    if p == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type(device), dtype=_DTYPES[p])


@overload
def chunks(items: range, size: int) -> list[range]: ...
@overload
def chunks(items: Sequence[T], size: int) -> list[Sequence[T]]: ...
def chunks(items: Sequence[T], size: int) -> list[Sequence[T]] | list[range]:
    """``items`` cut into consecutive pieces of at most ``size`` (order kept; a range gives ranges)."""
    size = max(1, int(size))
    return [items[i : i + size] for i in range(0, len(items), size)]


def prefetched(fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
    """``fn(item)`` for each item in order, computing the next one in a thread meanwhile.

    One step ahead only (bounded memory). An exception raised by ``fn`` surfaces at the item
    it belongs to. With a single item nothing is threaded.
    """
    items = list(items)
    if len(items) <= 1:
        yield from (fn(x) for x in items)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as pool:
        nxt = pool.submit(fn, items[0])
        for i in range(len(items)):
            cur = nxt
            if i + 1 < len(items):
                nxt = pool.submit(fn, items[i + 1])
            yield cur.result()


class OnceLock:
    """A lock plus a memo: ``get(key, make)`` computes ``make()`` once per key, thread-safely.

    Why: the dask threads scheduler runs several objects through one cached model; Hugging
    Face fast tokenizers refuse concurrent use ("Already borrowed").
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._memo: dict = {}

    def get(self, key, make: Callable[[], R]) -> R:
        with self._lock:
            if key not in self._memo:
                self._memo[key] = make()
            return self._memo[key]
