"""Sharing caches through a DVC remote: the producer runs `dvc repro` and
`dvc push --run-cache`; a teammate's fresh clone runs `dvc repro --pull` and recomputes
nothing (a `partstad` stand-in on the PATH proves no stage body ran). With a hard-link
DVC cache, a later stage rewrite leaves the cached files intact.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from stages.stage_table import ROWS, chain
from stages.store import CategoryStore

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

VENV_BIN = Path(sys.executable).parent
STAGES = list(chain("visibility"))


def dvc_yaml(categories: tuple[str, ...] = ("Chair",)) -> dict:
    """The project's dvc.yaml shape (one stage per step, persist Zarr outs per category), three stages (stage table rows)."""
    ups = {s: list(ROWS[s].reads) for s in STAGES}
    params = {s: ["categories", *ROWS[s].sections] for s in STAGES}
    return {
        "stages": {
            s: {
                "cmd": f"partstad {s}",
                **({"deps": [f"cache/{u}/{c}.zarr" for u in ups[s] for c in categories]} if ups[s] else {}),
                "params": params[s],
                "outs": [{f"cache/{s}/{c}.zarr": {"persist": True}} for c in categories],
            }
            for s in STAGES
        }
    }


def set_param(repo: Path, section: str, key: str, value) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params[section][key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def sh(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    res = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"{' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    return res.stdout + res.stderr


def test_repro_pull_restores_a_teammates_results_without_recomputing(tmp_path, write_params):
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    env.pop("PYTHONPATH", None)  # `partstad` comes from the venv, as for a user
    producer, consumer, remote = tmp_path / "producer", tmp_path / "consumer", tmp_path / "remote"
    producer.mkdir()
    write_params(producer, data={"n_points": 2000, "n_fewshot": 1, "n_val": 1, "n_test": 1}, render={"image_size": 48})
    (producer / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml(), sort_keys=False))
    sh(["git", "init", "-q"], producer, env)
    sh(["dvc", "init", "-q"], producer, env)
    sh(["dvc", "config", "core.analytics", "false"], producer, env)
    sh(["dvc", "remote", "add", "-d", "team", str(remote)], producer, env)
    # the producer commits a first result (image_size 48), then a second one (64), pushing both
    assert "Running stage 'render'" in sh(["dvc", "repro"], producer, env)
    sh(["dvc", "push", "--run-cache"], producer, env)
    sh(["git", "add", "-A"], producer, env)
    sh(["git", "commit", "-q", "-m", "first try"], producer, env)
    set_param(producer, "render", "image_size", 64)
    assert "[render] Chair: 3 computed" in sh(["dvc", "repro"], producer, env)
    sh(["dvc", "push", "--run-cache"], producer, env)
    sh(["git", "add", "-A"], producer, env)
    sh(["git", "commit", "-q", "-m", "pipeline"], producer, env)
    tracked = sh(["git", "ls-files"], producer, env).split()
    assert "dvc.lock" in tracked and not any(f.startswith("cache/") and ".zarr/" in f for f in tracked)

    sh(["git", "clone", "-q", str(producer), str(consumer)], tmp_path, env)
    sh(["dvc", "config", "--local", "cache.type", "hardlink,symlink"], consumer, env)
    # a stand-in `partstad` first on the PATH: any stage body that runs leaves a marker and fails
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    (fake_bin / "partstad").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "ran.txt"}\nexit 1\n')
    (fake_bin / "partstad").chmod(0o755)
    no_partstad = {**env, "PATH": f"{fake_bin}{os.pathsep}{env['PATH']}"}
    out = sh(["dvc", "repro", "--pull"], consumer, no_partstad)
    assert not (tmp_path / "ran.txt").exists(), (tmp_path / "ran.txt").read_text()
    assert "Running stage" not in out and "Data and pipelines are up to date." in out
    for s in STAGES:  # the committed dvc.lock's outputs, pulled from the remote
        assert f"Pulling data for stage: '{s}'" in out, out
    for s in STAGES:
        a, b = CategoryStore(producer / "cache", s, "Chair"), CategoryStore(consumer / "cache", s, "Chair")
        assert a.object_ids() == b.object_ids() and len(a.object_ids()) == 3
        for oid in a.object_ids():
            theirs = b.read_all(oid)
            for name, arr in a.read_all(oid).items():
                np.testing.assert_array_equal(arr, theirs[name])
    assert "up to date" in sh(["dvc", "status"], consumer, env)

    # the producer's earlier commit: its results come from the remote too, nothing computed
    sh(["git", "checkout", "-q", "HEAD~1"], consumer, env)
    out = sh(["dvc", "repro", "--pull"], consumer, no_partstad)
    assert not (tmp_path / "ran.txt").exists(), (tmp_path / "ran.txt").read_text()
    assert "Running stage" not in out and "Pulling data for stage: 'render'" in out
    assert CategoryStore(consumer / "cache", "render", "Chair").read("Chair/0000", "pix2pt").shape == (10, 48, 48)
    sh(["git", "checkout", "-q", "-"], consumer, env)
    sh(["dvc", "checkout"], consumer, env)
    assert CategoryStore(consumer / "cache", "render", "Chair").read("Chair/0000", "pix2pt").shape == (10, 64, 64)

    # a param change on the consumer: only render and visibility run, and the rewrite
    # (a staging group swapped in, never written in place) leaves every hard-linked cache file intact
    set_param(consumer, "render", "image_size", 32)
    out = sh(["dvc", "repro"], consumer, env)
    assert "Running stage 'render'" in out and "Running stage 'ingest'" not in out
    assert "[render] Chair: 3 computed, 0 up to date" in out
    assert CategoryStore(consumer / "cache", "render", "Chair").read("Chair/0000", "pix2pt").shape == (10, 32, 32)
    cache_files = [p for p in (consumer / ".dvc" / "cache" / "files" / "md5").rglob("*") if p.is_file() and not p.name.endswith(".dir")]
    assert len(cache_files) > 20
    for p in cache_files:
        assert hashlib.md5(p.read_bytes()).hexdigest() == p.parent.name + p.name, f"DVC cache file modified: {p}"
