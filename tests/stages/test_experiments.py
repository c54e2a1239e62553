"""``partstad experiments``: ``dvc exp show`` reduced to changed params and headline metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.headline import experiments_table, format_table

EVALUATE = (
    "import yaml, json, os; p = yaml.safe_load(open('params.yaml')); os.makedirs('metrics/headline/mIoU', exist_ok=True);"
    " v = 50 + p['train']['epochs'] / 40;"
    " json.dump({'partslip': 50.0, 'partstad': v, 'masks_only': 51.0, 'partstad_boxes': 52.0, 'auto': v},"
    " open('metrics/headline/mIoU/mean.json', 'w'))"
)


def test_table_keeps_changed_params_and_the_headline_columns():
    m = "metrics/headline/mIoU/mean.json:"
    records = [
        {"rev": "workspace", "typ": "baseline", "train.lr": 0.001, "train.tau": 10.0, "pipeline": "abc", f"{m}partstad": 60.25},
        {
            "rev": "main",
            "typ": "baseline",
            "Created": "10:00",
            "train.lr": 0.0001,
            "train.tau": 10.0,
            "pipeline": "abd",
            f"{m}partstad": 63.2,
        },
        {"Experiment": "e1", "rev": "1a2b", "typ": "branch_base", "train.lr": 0.001, "train.tau": 10.0, "pipeline": "abd"},
    ]
    rows = experiments_table(records, {"train", "data"})
    assert rows[0][:3] == ["experiment", "created", "changed params"] and rows[0][3:] == [
        "PartSLIP",
        "PartSTAD",
        "w/o weights",
        "w/o SAM",
        "auto",
    ]
    assert rows[1][:4] == ["workspace", "-", "train.lr=0.001", "-"] and rows[1][4] == "60.2"  # one decimal
    assert rows[2][2] == "-" and rows[2][4] == "63.2"  # the commit is the reference
    assert rows[3][0] == "  e1" and rows[3][2] == "train.lr=0.001" and rows[3][4] == "-"
    text = format_table(rows)
    assert "train.tau" not in text and "pipeline" not in text and "abd" not in text  # unchanged param, dependency hash


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A git + DVC repository whose one stage writes a headline file from params, with one experiment."""
    root = tmp_path_factory.mktemp("exps")
    (root / "params.yaml").write_text("categories: [Chair]\ntrain:\n  epochs: 400\n  lr: 0.0001\n")
    stage = {
        "cmd": f'{sys.executable} -c "{EVALUATE}"',
        "params": ["train"],
        "metrics": [{"metrics/headline/mIoU/mean.json": {"cache": False}}],
    }
    (root / "dvc.yaml").write_text(json.dumps({"stages": {"evaluate": stage}}))
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    dvc = [sys.executable, "-m", "dvc"]
    _git(root, "init", "-q")
    _git(root, "config", "user.email", "t@example.com")
    _git(root, "config", "user.name", "t")
    for cmd in (["init", "-q"], ["repro", "-q"]):
        subprocess.run([*dvc, *cmd], cwd=root, env=env, check=True, capture_output=True)
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "run")
    subprocess.run([*dvc, "exp", "run", "-q", "-S", "train.epochs=20", "-n", "short"], cwd=root, env=env, check=True, capture_output=True)
    return root


def test_command_shows_the_experiment_and_its_metric(repo, invoke):
    res = invoke(["experiments", "--params", repo / "params.yaml"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    short = next(line for line in lines if line.strip().startswith("short"))
    assert "train.epochs=20" in short and "50.5" in short and "train.lr" not in res.output
    assert max(len(line) for line in lines) < 100


def test_command_errors_name_the_problem(repo, invoke, tmp_path):
    res = invoke(["experiments", "--params", tmp_path / "params.yaml"])
    assert res.exit_code == 2 and "no dvc.yaml" in res.output
    res = invoke(["experiments", "--params", repo / "params.yaml", "--category", "Chiar"])
    assert res.exit_code == 2 and "Chiar.json" in res.output


def test_outside_git_and_bad_yaml_are_one_line_exit_2(repo, invoke, tmp_path):
    for name in ("dvc.yaml", "params.yaml"):
        (tmp_path / name).write_text((repo / name).read_text())
    res = invoke(["experiments", "--params", tmp_path / "params.yaml"])
    assert res.exit_code == 2 and "git repository" in res.output and "Traceback" not in res.output
    (tmp_path / "params.yaml").write_text("train: [\n")
    res = invoke(["experiments", "--params", tmp_path / "params.yaml"])
    assert res.exit_code == 2 and "not valid YAML at line" in res.output
