"""Progress of long work, readable in a terminal and in a log.

A tqdm bar is invisible (or a wall of carriage returns) where stderr is not a terminal —
under `dvc repro` in CI, `nohup`, a batch scheduler — so a 20-minute stage looked frozen.
There, :class:`Progress` writes plain lines instead: one after the first item (an early rate),
then at most one every ``interval`` seconds, and a last one when the work ends, each with the
count, the rate and the estimated time left. In a terminal it is a tqdm bar, as before.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, TypeVar

T = TypeVar("T")

LOG_INTERVAL_S = 10.0
"""Least seconds between two progress lines in a log (the first and the last line always come)."""


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Progress:
    """Counts finished items of ``total``; a tqdm bar on a terminal, timed lines elsewhere."""

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str = "obj",
        *,
        stream: IO[str] | None = None,
        terminal: bool | None = None,
        interval: float = LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.total, self.desc, self.unit = int(total), desc, unit
        self.stream = stream if stream is not None else sys.stderr
        self.interval, self.clock = float(interval), clock
        self.n = 0
        self.postfix = ""
        self._start = clock()
        self._last_line: float | None = None
        self._closed = False
        self._bar: Any = None
        if terminal if terminal is not None else _is_terminal(self.stream):
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, desc=desc, unit=unit, leave=False, file=self.stream)

    def line(self) -> str:
        """The progress line for the current count (what a log shows)."""
        elapsed = self.clock() - self._start
        done = f"{self.n}/{self.total} {self.unit}"
        if self.total:
            done += f" ({100 * self.n / self.total:.0f}%)"
        parts = [f"{self.desc}: {done}", f"{_duration(elapsed)} elapsed"]
        if self.n:
            per = elapsed / self.n
            parts.append(f"{per:.2f} s/{self.unit}" if per < 10 else f"{_duration(per)}/{self.unit}")
            if self.n < self.total:
                parts.append(f"ETA {_duration(per * (self.total - self.n))}")
        if self.postfix:
            parts.append(self.postfix)
        return ", ".join(parts)

    def _write(self) -> None:
        self.stream.write(self.line() + "\n")
        self.stream.flush()
        self._last_line = self.clock()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = self.clock()
        if self.n >= self.total or self._last_line is None or now - self._last_line >= self.interval:
            self._write()

    def set_postfix(self, **values: Any) -> None:
        """Extra fields shown after the count (e.g. the loss)."""
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())
        if self._bar is not None:
            self._bar.set_postfix(**values)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.n < self.total and self._last_line is not None:  # stopped early: say where
            self._write()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def track(items: Iterable[T], desc: str, unit: str = "obj", total: int | None = None, **kwargs: Any) -> Iterator[T]:
    """Iterate ``items`` while reporting progress (see :class:`Progress`)."""
    seq = items if total is not None else list(items)
    n = total if total is not None else len(seq)  # type: ignore[arg-type]
    with Progress(n, desc, unit, **kwargs) as bar:
        for item in seq:
            yield item
            bar.update(1)


__all__ = ["LOG_INTERVAL_S", "Progress", "track"]
