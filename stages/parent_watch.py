"""Worker processes that die with their parent: no orphans after a ``kill -9`` of a run.

A spawned worker blocks on a queue whose write end it holds itself, so it never sees its
parent go; it (and the multiprocessing resource tracker, which waits for every holder of its
pipe) would run on for ever, still writing the cache. :func:`die_with_parent` is the
initializer of every worker pool this package starts (``--jobs`` categories, dask's
``processes`` scheduler): on Linux the kernel kills the worker when its parent exits
(``prctl(PR_SET_PDEATHSIG)``), and everywhere a daemon thread ends it once its parent process
is gone (a changed ``getppid()``, or the parent pid no longer alive). A worker killed
mid-object leaves at most a temporary file, which the next run's store cleans up.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

#: Exit status of a worker that stopped because its parent died (128 + SIGKILL, as the kernel would).
ORPHAN_EXIT = 128 + 9
_PR_SET_PDEATHSIG = 1
POLL_S = 0.5


def die_with_parent(parent_pid: int, then: tuple = ()) -> None:
    """Worker initializer: end this process when ``parent_pid`` exits.

    ``then``: an optional ``(function, *args)`` run afterwards (an initializer of its own)."""
    _set_pdeathsig()
    if not _parent_alive(parent_pid, os.getppid()):  # the parent died before the kernel watch was set
        os._exit(ORPHAN_EXIT)
    threading.Thread(target=_watch, args=(parent_pid, os.getppid()), name="partstad-parent-watch", daemon=True).start()
    if then:
        then[0](*then[1:])


def _set_pdeathsig() -> bool:
    """Ask Linux to SIGKILL this process when the thread that started it exits; False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _parent_alive(parent_pid: int, start_ppid: int) -> bool:
    """The parent still runs: our own parent is unchanged (spawn: it is ``parent_pid``, and a
    dead parent's children move to init at once; forkserver: the server, which exits with the
    parent) and ``parent_pid`` is a live process, not a zombie waiting to be reaped."""
    if os.getppid() != start_ppid or start_ppid == 1:
        return False
    return _alive(parent_pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    try:  # Linux: a killed parent stays a zombie ('Z') until its own parent reaps it
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def _watch(parent_pid: int, start_ppid: int) -> None:
    while _parent_alive(parent_pid, start_ppid):
        time.sleep(POLL_S)
    os._exit(ORPHAN_EXIT)
