"""One writer per store: an exclusive inter-process lock that says who waits for what.

A local store is locked with ``<store>.lock`` beside it (filelock); an fsspec store has no
portable lock, so :func:`store_lock` is then a no-op and one writer per remote store is the
user's rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class StoreBusyError(RuntimeError):
    """Another run holds the lock of a store."""


class _NoLock:
    def __enter__(self) -> _NoLock:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


class _StoreLock:
    """filelock-based exclusive lock that says who waits for what."""

    def __init__(self, lock_path: str, what: str, timeout: float):
        from filelock import FileLock

        Path(lock_path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(lock_path)
        self.lock_path, self.what, self.timeout = lock_path, what, timeout

    def __enter__(self) -> _StoreLock:
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=0)
            return self
        except Timeout:
            pass
        if self.timeout == 0:
            raise StoreBusyError(
                f"another partstad run is writing {self.what} (lock {self.lock_path}); "
                "try again when it has finished, or pass --lock-timeout to wait"
            )
        import logging

        logging.getLogger("partstad").warning(
            "another partstad run is writing %s; waiting for it to finish (lock %s)", self.what, self.lock_path
        )
        try:
            self._lock.acquire(timeout=self.timeout)
        except Timeout:
            raise StoreBusyError(
                f"gave up after {self.timeout:g} s: another partstad run is still writing {self.what} (lock {self.lock_path})"
            ) from None
        return self

    def __exit__(self, *exc: Any) -> None:
        self._lock.release()


def store_lock(lock_path: str | None, what: str, timeout: float = -1) -> Any:
    """Exclusive lock on ``lock_path`` (None: no lock), see :meth:`stages.store.CategoryStore.lock`."""
    return _StoreLock(lock_path, what, timeout) if lock_path else _NoLock()
