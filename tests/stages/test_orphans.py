"""Worker processes die with their parent: a `kill -9` of a run leaves no process behind.

Real `partstad` processes: the parent is killed with SIGKILL while its `--jobs` workers (or
dask's `processes` pool) are busy; every child it had (workers, multiprocessing's resource
tracker) must be gone shortly after, and a rerun must finish the work.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

psutil = pytest.importorskip("psutil")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process tree checks use Linux semantics")

PARTSTAD = [sys.executable, "-c", "from stages.cli import main; main()"]
REPO = Path(__file__).resolve().parents[2]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "PYOPENGL_PLATFORM": "egl", "PARTSTAD_SCHEDULER": "sync", "PARTSTAD_JOBS": "auto"}


def wait_for(condition, limit_s: float) -> bool:
    """Poll ``condition`` until true or ``limit_s`` passed (a deadline, not a timing assert)."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def gone(procs: list) -> bool:
    def dead(p) -> bool:
        try:
            return not p.is_running() or p.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    return all(dead(p) for p in procs)


def kill_when_busy(cmd: list[str], cwd: Path, busy, n_children: int) -> list:
    """Start ``cmd``; once ``busy()`` holds and it has ``n_children`` children, SIGKILL it.
    Returns the children it had (psutil handles, which know their own start time)."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        parent = psutil.Process(proc.pid)
        ready = wait_for(lambda: busy() and len(parent.children(recursive=True)) >= n_children, 120)
        children = parent.children(recursive=True)
        assert proc.poll() is None, "the run finished before it could be killed: give it more work"
        assert ready, f"the run never got busy with {n_children} children: {children}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return children
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def reap(procs: list) -> None:
    for p in procs:  # never leave a stray process to other tests, whatever the outcome
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def test_killing_a_jobs_2_run_leaves_no_worker_and_a_rerun_finishes(tmp_path, write_params):
    # enough work that both workers are still busy when the parent dies
    params = write_params(
        tmp_path, ["Chair", "Bottle"], data={"n_points": 3000, "n_fewshot": 2, "n_val": 2, "n_test": 16}, render={"image_size": 160}
    )
    cache = tmp_path / "cache"
    base = ["--params", str(params), "--cache", str(cache)]
    subprocess.run([*PARTSTAD, "ingest", *base], cwd=tmp_path, env=env(), check=True, capture_output=True)

    def busy() -> bool:  # both workers hold their category's store lock
        return all((cache / "render" / f"{c}.zarr.lock").exists() for c in ("Chair", "Bottle"))

    children = kill_when_busy([*PARTSTAD, "render", *base, "--jobs", "2"], tmp_path, busy, 3)
    try:
        assert len(children) >= 3  # two workers and the resource tracker
        assert wait_for(lambda: gone(children), 15), [(p.pid, p.cmdline()) for p in children if not gone([p])]
    finally:
        reap(children)

    res = subprocess.run([*PARTSTAD, "render", *base, "--jobs", "2"], cwd=tmp_path, env=env(), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    for cat in ("Chair", "Bottle"):
        line = next(line for line in res.stdout.splitlines() if line.startswith(f"[render] {cat}:"))
        computed, skipped = int(line.split(": ")[1].split()[0]), int(line.split(", ")[1].split()[0])
        assert computed + skipped == 20 and ", 0 failed" in line, line
    res = subprocess.run([*PARTSTAD, "render", *base], cwd=tmp_path, env=env(), capture_output=True, text=True)
    assert res.returncode == 0 and "[render] Chair: 0 computed, 20 up to date, 0 failed" in res.stdout, res.stdout + res.stderr


SLEEPERS = """
import sys, time
from stages.scheduling import run_tasks
print("started", flush=True)
run_tasks([(time.sleep, (120,)), (time.sleep, (120,))], "processes")
"""


def test_killing_a_run_on_the_processes_scheduler_leaves_no_worker(tmp_path):
    children = kill_when_busy([sys.executable, "-c", SLEEPERS], tmp_path, lambda: True, 2)
    try:
        assert len(children) >= 2  # a dask worker process and the resource tracker
        assert wait_for(lambda: gone(children), 15), [(p.pid, p.cmdline()) for p in children if not gone([p])]
    finally:
        reap(children)


def test_a_worker_started_after_its_parent_died_exits_at_once():
    code = (
        "import os, sys; from stages.parent_watch import die_with_parent, ORPHAN_EXIT; "
        "die_with_parent(2**22 + 12345); sys.exit(0)"
    )  # a pid that runs no process
    res = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, timeout=60)
    from stages.parent_watch import ORPHAN_EXIT

    assert res.returncode == ORPHAN_EXIT


def test_a_worker_whose_parent_lives_runs_its_own_initializer_and_goes_on():
    code = (
        "import os, sys; from stages.parent_watch import die_with_parent; "
        "die_with_parent(os.getppid(), (os.environ.__setitem__, 'X_INIT', 'ran')); print(os.environ['X_INIT'])"
    )
    res = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == "ran", res.stderr
