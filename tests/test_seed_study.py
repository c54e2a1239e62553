"""The seed study's arithmetic (benchmarks/seed_study.py) and the README's seed row
(tools/readme_demo_table.py) on hand-made metrics: mean ± std over seeds, the distance to the
paper, the auto check, and a bad side file named with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tools"))

import readme_demo_table  # noqa: E402
import seed_study  # noqa: E402
import simbench  # noqa: E402

CATS = ["Chair", "Kettle"]


def _metrics(miou: dict[str, float], pick: str) -> dict:
    methods = {k: {"miou": v, "map50": v + 1.0} for k, v in miou.items()}
    methods["auto"] = {**methods[pick], "picked": pick}
    return {"methods": methods, "auto": {"method": pick, "val_miou": {k: 50.0 for k in miou}}}


def _write_seed(d: Path, rows: dict[str, dict]) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for c, m in rows.items():
        (d / f"{c}.json").write_text(json.dumps(m))


@pytest.fixture
def study(tmp_path: Path) -> dict:
    """Two seeds of two categories; seed 1's Kettle picks full while PartSLIP is 3 points better on test."""
    base = {"partslip": 50.0, "partstad_boxes": 54.0, "masks_only": 52.0, "partstad": 56.0}
    _write_seed(tmp_path / "demo" / "seed0" / "metrics" / "evaluate", {c: _metrics(base, "partstad") for c in CATS})
    s1 = {
        "Chair": _metrics({k: v + 2.0 for k, v in base.items()}, "partstad"),
        "Kettle": _metrics({"partslip": 60.0, "partstad_boxes": 55.0, "masks_only": 56.5, "partstad": 57.0}, "partstad"),
    }
    _write_seed(tmp_path / "demo" / "seed1" / "metrics" / "evaluate", s1)
    params = simbench.merge(simbench.SMALL, {"categories": CATS})
    return seed_study.collect(tmp_path, [0, 1], None, params)


def test_means_deltas_and_paper_distance(study):
    means = study["mean_over_categories"]
    assert means["0"]["partslip"] == pytest.approx(50.0)
    assert means["1"]["partslip"] == pytest.approx((52.0 + 60.0) / 2)
    pd0 = study["paper_distance"]["0"]
    assert pd0["delta"] == pytest.approx({"partstad_boxes": 4.0, "masks_only": 2.0, "partstad": 6.0})
    # paper: w/o SAM +4.1, w/o weights +3.9, full +7.0
    assert pd0["distance"] == pytest.approx({"partstad_boxes": -0.1, "masks_only": -1.9, "partstad": -1.0})
    assert pd0["rms"] == pytest.approx(((0.01 + 3.61 + 1.0) / 3) ** 0.5)
    assert pd0["discordant_pairs"] == 0  # the same order as the paper's four numbers
    assert study["paper_distance"]["1"]["discordant_pairs"] > 0  # seed 1: PartSLIP above w/o SAM (paper: below)


def test_auto_check_lists_exactly_the_pairs_below(study):
    below = [(x["category"], x["seed"]) for x in study["auto_check"]["rows"] if x["below"]]
    assert below == [("Kettle", 1)]
    row = next(x for x in study["auto_check"]["rows"] if x["category"] == "Kettle" and x["seed"] == 1)
    assert row["best_floor"] == "partslip" and row["gap"] == pytest.approx(-3.0)
    assert len(study["auto_check"]["rows"]) == 4


def test_markdown_says_simulated_and_mean_std(study):
    md = seed_study.markdown(study)
    assert "SIMULATED" in md and "python benchmarks/seed_study.py" in md
    # Chair PartSLIP: 50 and 52 over the two seeds -> 51.0 ± 1.4 (ddof 1)
    assert "| Chair | 51.0 ± 1.4 |" in md
    assert "**1 of 4** (category, seed) pairs" in md and "Kettle seed 1 (-3.0)" in md


def test_with_seed_sets_every_seed_and_pixels_is_the_default():
    p = simbench.with_seed(simbench.SMALL, 7)
    assert [p[s]["seed"] for s in ("data", "detect", "segment", "train")] == [7, 7, 7, 7]
    assert simbench.SMALL["detect"]["backend"] == "pixels" and simbench.SMALL["segment"]["mode"] == "pixels"
    assert simbench.SMALL_ORACLE["detect"]["backend"] == "oracle" and simbench.SMALL_ORACLE["segment"]["mode"] == "oracle"
    assert simbench.SMALL["data"]["seed"] == 0  # with_seed copies


def test_readme_seed_row(study, tmp_path):
    f = tmp_path / "seed_study.json"
    f.write_text(json.dumps(study))
    row, seeds = readme_demo_table.seed_row(f, CATS)
    assert seeds == [0, 1]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "**mean, 2 seeds**"
    assert cells[1] == "53.0 ± 4.2"  # PartSLIP: seed means 50 and 56
    assert cells[3].startswith("+")  # Δ = PartSTAD − PartSLIP carries its sign


def test_readme_bad_seed_file_exits_2_naming_it(tmp_path):
    bad = tmp_path / "seed_study.json"
    bad.write_text("{not json")
    readme = tmp_path / "README.md"
    readme.write_text(f"x\n{readme_demo_table.BEGIN}\n{readme_demo_table.END}\n")
    metrics = tmp_path / "metrics"
    _write_seed(
        metrics, {c: _metrics({"partslip": 50.0, "partstad_boxes": 54.0, "masks_only": 52.0, "partstad": 56.0}, "partstad") for c in CATS}
    )
    params = tmp_path / "params.yaml"
    params.write_text("categories: [Chair, Kettle]\n")
    tool = str(ROOT / "tools" / "readme_demo_table.py")
    args = [sys.executable, tool, "--readme", str(readme), "--metrics", str(metrics), "--params", str(params)]
    ok = subprocess.run([*args, "--seeds", ""], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "| **mean** | 50.0 | 56.0 | +6.0 |" in readme.read_text()
    r = subprocess.run([*args, "--seeds", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert str(bad) in r.stderr and "Traceback" not in r.stderr
