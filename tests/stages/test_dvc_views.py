"""DVC's own views read at a glance: `dvc metrics show` fits a terminal, `dvc plots show` works offline.

The declared metrics are the headline files (pipeline/headline.py); the per-part results
stay plain outs. The plots page inlines Vega (tools/dvc_plots/template.html, set in the
committed .dvc/config), so it carries no script from a CDN.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.headline import HEADLINE_METHODS, HEADLINE_METRICS, headline, headline_paths

REPO = Path(__file__).resolve().parents[2]
MAX_COLUMNS = 12  # value columns of `dvc metrics show`
MAX_WIDTH = 160  # characters per line of `dvc metrics show`
LONG_CATEGORY = "StorageFurniture"  # the longest category name of the demo


def _declared(kind: str) -> list[str]:
    """Every path dvc.yaml declares under ``kind`` (outs/metrics/plots) of any stage."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return [e if isinstance(e, str) else next(iter(e)) for s in stages.values() for e in s.get(kind, [])]


def _dvc(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _repo(tmp_path: Path) -> Path:
    """A fresh git + DVC repository with this checkout's .dvc/config and plots template."""
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    res = _dvc(tmp_path, "init", "-q")
    assert res.returncode == 0, res.stderr
    shutil.copy(REPO / ".dvc" / "config", tmp_path / ".dvc" / "config")
    (tmp_path / "tools" / "dvc_plots").mkdir(parents=True)
    shutil.copy(REPO / "tools" / "dvc_plots" / "template.html", tmp_path / "tools" / "dvc_plots" / "template.html")
    return tmp_path


# -- the headline: a small key set, the same in every file ----------------------------------------


def test_headline_keeps_only_the_methods_rounded():
    methods = {
        "partslip": {"miou": 58.96, "map50": 60.66, "part_iou": {"arm": 1.0}},
        "partstad": {"miou": 63.21386, "map50": None},
        "masks_only": {"miou": float("nan"), "map50": 100.0},
        "some_new_method": {"miou": 1.0, "map50": 2.0},  # never becomes a column
        "auto": {"miou": 62.1253, "map50": 63.05, "picked": "partstad"},
    }
    h = headline(methods)
    assert set(h) == set(HEADLINE_METRICS) == {"mIoU", "mAP50"}
    assert h["mIoU"] == {"partslip": 59.0, "partstad": 63.2, "auto": 62.1}
    assert h["mAP50"] == {"partslip": 60.7, "masks_only": 100.0, "auto": 63.0}
    assert all(set(v) <= set(HEADLINE_METHODS) for v in h.values())


def test_headline_of_a_summary_ignores_run_flags():
    """report feeds summary.json (means plus run-wide flags); the flags are no metric."""
    summary = {"partstad": {"miou": 63.2, "map50": 63.5, "n_categories": 6}, "simulated": True, "simulated_components": ["x"]}
    assert headline(summary) == {"mIoU": {"partstad": 63.2}, "mAP50": {"partstad": 63.5}}
    assert headline({}) == {"mIoU": {}, "mAP50": {}}
    assert headline({"partstad": "not a dict", "auto": {"miou": True}}) == {"mIoU": {}, "mAP50": {}}


def test_declared_metrics_are_the_headline_files_only():
    """Per-part files are plain outs: the metrics are the headline files, per category and the mean."""
    metrics = _declared("metrics")
    outs = _declared("outs")
    assert metrics and all(m.startswith("metrics/headline/") for m in metrics), metrics
    for group in ("evaluate", "train", "adapt"):
        assert not [m for m in metrics if m.startswith(f"metrics/{group}/")]
        assert [o for o in outs if o.startswith(f"metrics/{group}/")], f"metrics/{group}/ is no longer an out"
    assert "metrics/summary.json" in outs
    for name in HEADLINE_METRICS:
        assert f"metrics/{headline_paths('mean')[name]}" in metrics
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for s in stages.values():  # small, in git: `dvc metrics diff <rev>` needs no `dvc pull`
        for m in s.get("metrics", []):
            assert isinstance(m, dict) and next(iter(m.values())) == {"cache": False}, m


def _worst_case_headlines(root: Path, categories: list[str]) -> None:
    """Headline files as evaluate and report write them, every method present, widest values."""
    full = {m: {"miou": 100.0, "map50": 100.0} for m in HEADLINE_METHODS}
    for cat in [*categories, "mean"]:
        for name, values in headline(full).items():
            p = root / "metrics" / headline_paths(cat)[name]
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps(values))


def test_dvc_metrics_show_fits_a_terminal(tmp_path):
    """`dvc metrics show` on the declared metric paths (demo categories plus a long name):
    few columns, no line wider than a terminal."""
    repo = _repo(tmp_path)
    categories = ["Chair", "Table", LONG_CATEGORY, "Bottle", "Kettle", "Lamp"]
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import sync_dvc_deps
    finally:
        sys.path.remove(str(REPO / "tools"))
    stages = yaml.safe_load(sync_dvc_deps.generate(categories))["stages"]
    declared = [next(iter(e)) if isinstance(e, dict) else e for s in stages.values() for e in s.get("metrics", [])]
    assert len(declared) == len(HEADLINE_METRICS) * (len(categories) + 1)
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"metrics": declared}))
    _worst_case_headlines(repo, categories)
    res = _dvc(repo, "metrics", "show")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    header = lines[0].split()
    assert header[0] == "Path" and 1 <= len(header) - 1 <= MAX_COLUMNS, header
    assert set(header[1:]) == set(HEADLINE_METHODS)
    assert len(lines) == 1 + len(declared)
    assert max(map(len, lines)) <= MAX_WIDTH, max(lines, key=len)
    assert all(line.split()[1:] == ["100.0"] * len(HEADLINE_METHODS) for line in lines[1:])


def test_report_writes_the_mean_headline(tmp_path, run, write_params):
    """`partstad report` turns summary.json's means into metrics/headline/<metric>/mean.json."""
    params = write_params(tmp_path, ["Chair", "Table"])
    ev = tmp_path / "metrics" / "evaluate"
    ev.mkdir(parents=True)
    for cat, (a, b) in {"Chair": (60.0, 70.0), "Table": (40.04, 50.0)}.items():
        (ev / f"{cat}.json").write_text(
            json.dumps({"category": cat, "n_test": 1, "methods": {"partstad": {"miou": a, "map50": b, "part_iou": {}, "part_ap50": {}}}})
        )
    run(
        [
            "report",
            "--params",
            str(params),
            "--cache",
            str(tmp_path / "cache"),
            "--metrics",
            str(tmp_path / "metrics"),
            "--plots",
            str(tmp_path / "plots"),
            "--out",
            str(tmp_path / "reports"),
            "--studies",
            str(tmp_path / "no_studies"),
        ]
    )
    root = tmp_path / "metrics"
    assert json.loads((root / "headline" / "mIoU" / "mean.json").read_text()) == {"partstad": 50.0}
    assert json.loads((root / "headline" / "mAP50" / "mean.json").read_text()) == {"partstad": 60.0}
    summary = json.loads((root / "summary.json").read_text())
    assert math.isclose(summary["partstad"]["miou"], 50.02)  # the full summary keeps every digit


# -- plots: the committed template makes `dvc plots show` work offline ---------------------------


def test_template_inlines_the_pinned_libraries():
    sys.path.insert(0, str(REPO / "tools" / "dvc_plots"))
    try:
        import build_template
    finally:
        sys.path.remove(str(REPO / "tools" / "dvc_plots"))
    text = (REPO / "tools" / "dvc_plots" / "template.html").read_text()
    assert "{plot_divs}" in text and "{scripts}" not in text  # DVC adds no CDN scripts
    for name, (version, _) in build_template.PACKAGES.items():
        assert f'data-package="{name}@{version}"' in text
        assert (REPO / "tools" / "dvc_plots" / f"LICENSE-{name}").read_text().count("Redistribution and use") == 1
    assert not re.search(r"<script[^>]*\bsrc=", text)
    cfg = (REPO / ".dvc" / "config").read_text()
    assert re.search(r"html_template\s*=\s*\.\./tools/dvc_plots/template\.html", cfg), cfg


def test_dvc_plots_show_writes_an_offline_page(tmp_path):
    repo = _repo(tmp_path)
    (repo / "plots").mkdir()
    (repo / "plots" / "Chair.csv").write_text("epoch,val_miou\n0,10.0\n1,30.5\n2,42.0\n")
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"plots": [{"plots/Chair.csv": {"x": "epoch", "y": "val_miou"}}]}))
    res = _dvc(repo, "plots", "show", "-o", "out")
    assert res.returncode == 0, res.stderr
    page = (repo / "out" / "index.html").read_text()
    assert not re.search(r"<script[^>]*\bsrc=", page), "a script is loaded from elsewhere"
    assert "cdn.jsdelivr" not in page
    assert page.count("data-package=") == 3 and "vegaEmbed(" in page and "val_miou" in page
    if shutil.which("node") is None:
        pytest.skip("node not installed: the page's scripts were not executed")
    out = subprocess.run(
        ["node", str(REPO / "tools" / "dvc_plots" / "render_check.js"), str(repo / "out" / "index.html")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and out.stdout.startswith("ok "), out.stderr
    assert int(out.stdout.split()[2]) > 0  # the curve and axes were drawn
