"""Shared runner of the simulated benchmarks in benchmarks/ (not a test, not the demo).

It runs the real stage commands (``partstad ingest`` … ``partstad evaluate``, in-process
through the click entry point) in a temporary directory with small settings, so the
benchmarks measure exactly the code ``dvc repro`` runs. The shape-only stages (ingest,
render, visibility, superpoints) are computed once into a base cache; each setting then
copies that base and recomputes what its parameters change.

Every number produced here comes from the SIMULATED detector and SIMULATED SAM on
synthetic shapes: it describes the simulator and the pipeline, not real-world accuracy.
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stages.cli import main  # noqa: E402

DEMO_CATEGORIES = ["Chair", "Table", "StorageFurniture", "Bottle", "Kettle", "Lamp"]
#: The paper's Table (PartNetE, mIoU %): PartSLIP, weights w/o masks ("w/o SAM"),
#: masks w/o weights ("w/o weights"), full PartSTAD.
PAPER = {"partslip": 58.0, "partstad_boxes": 62.1, "masks_only": 61.9, "partstad": 65.0}
ABLATIONS = ("partslip", "partstad_boxes", "masks_only", "partstad")
TITLES = {"partslip": "PartSLIP", "partstad_boxes": "w/o SAM", "masks_only": "w/o weights", "partstad": "full", "auto": "auto"}

#: The simulated detector/SAM pairs a study can run on: ``pixels`` (the demo's default since
#: issue 20: both see only the rendered pixels, docs/pixel_simulators.md) and ``oracle`` (both
#: read the ground truth; the earlier studies and docs/simulated_calibration.md).
BACKENDS: dict[str, dict[str, Any]] = {
    "pixels": {"detect": {"backend": "pixels"}, "segment": {"mode": "pixels"}},
    "oracle": {"detect": {"backend": "oracle", "oracle": {}}, "segment": {"mode": "oracle"}},
}
#: Small settings of every benchmark run (documented in the generated tables); pixels backends
#: like the demo (``merge(SMALL, BACKENDS["oracle"])`` or :data:`SMALL_ORACLE` for the oracle).
SMALL: dict[str, Any] = {
    "data": {"source": "synthetic", "n_points": 5000, "seed": 0, "n_fewshot": 8, "n_val": 4, "n_test": 8},
    "render": {"backend": "numpy", "image_size": 192},
    "detect": {"backend": "pixels", "seed": 0},
    "segment": {"mode": "pixels", "seed": 0},
    "train": {"epochs": 100, "seed": 0},
    "evaluate": {"splits": ["test"]},
}
#: The seeds a seed study sets together: shapes, detector, SAM noise, training.
SEEDED_SECTIONS = ("data", "detect", "segment", "train")
SHAPE_STAGES = ("ingest", "render", "visibility", "superpoints")
BOX_STAGES = ("detect", "segment", "lift")


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of two params mappings (``over`` wins)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def with_backend(params: dict[str, Any], backend: str) -> dict[str, Any]:
    """``params`` with the detector and SAM of ``backend`` (a key of :data:`BACKENDS`)."""
    return merge(params, BACKENDS[backend])


def with_seed(params: dict[str, Any], seed: int) -> dict[str, Any]:
    """``params`` with every seed (shapes, detector, SAM, training) set to ``seed``: one new draw."""
    return merge(params, {s: {"seed": seed} for s in SEEDED_SECTIONS})


SMALL_ORACLE: dict[str, Any] = with_backend(SMALL, "oracle")


def cli(args: list[Any]) -> None:
    """Run ``partstad <args>`` in-process; raise on a non-zero exit."""
    try:
        main([str(a) for a in args], standalone_mode=False)
    except SystemExit as exc:  # click may still exit explicitly
        if exc.code not in (0, None):
            raise RuntimeError(f"partstad {' '.join(map(str, args))} exited with {exc.code}") from None


def write_params(path: Path, params: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def run_setting(
    work: Path,
    params: dict[str, Any],
    base_cache: Path | None = None,
    stages: tuple[str, ...] | None = None,
    splits: str | None = None,
    log=print,
) -> dict[str, dict[str, Any]]:
    """Run the stages for ``params`` under ``work``; return metrics/evaluate/<Cat>.json per category.

    With ``base_cache``, its shape-only stores are copied in first (and not recomputed).
    """
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "cache"
    if base_cache is not None and not cache.exists():
        cache.mkdir()
        for st in SHAPE_STAGES:
            shutil.copytree(base_cache / st, cache / st)
    p = write_params(work / "params.yaml", params)
    common = ["--params", p, "--cache", cache]
    todo = stages or ((BOX_STAGES if base_cache is not None else SHAPE_STAGES + BOX_STAGES) + ("train", "evaluate"))
    for st in todo:
        t0 = time.perf_counter()
        if st == "train":
            cli(
                ["train", *common, "--models", work / "models", "--metrics", work / "metrics", "--plots", work / "plots", "--device", "cpu"]
            )
        elif st == "evaluate":
            cli(
                [
                    "evaluate",
                    *common,
                    "--models",
                    work / "models",
                    "--metrics",
                    work / "metrics",
                    "--device",
                    "cpu",
                    *(["--splits", splits] if splits else []),
                ]
            )
        else:
            cli([st, *common])
        log(f"    {st}: {time.perf_counter() - t0:.1f} s")
    if "evaluate" not in todo:
        return {}
    return {c: json.loads((work / "metrics" / "evaluate" / f"{c}.json").read_text()) for c in params["categories"]}


def mean_miou(metrics: dict[str, dict[str, Any]], method: str) -> float | None:
    vals = [m["methods"][method]["miou"] for m in metrics.values() if method in m["methods"] and m["methods"][method]["miou"] is not None]
    return float(sum(vals) / len(vals)) if vals else None


def paper_distance(row: dict[str, float]) -> tuple[float, int]:
    """(RMS over the three ablations of (Δ_sim − Δ_paper), Δ = method − PartSLIP, in mIoU points;
    number of the 6 method pairs ordered differently from the paper)."""
    d = [(row[m] - row["partslip"]) - (PAPER[m] - PAPER["partslip"]) for m in ABLATIONS[1:]]
    rms = (sum(x * x for x in d) / len(d)) ** 0.5
    disc = 0
    for i, a in enumerate(ABLATIONS):
        for b in ABLATIONS[i + 1 :]:
            if (row[a] - row[b]) * (PAPER[a] - PAPER[b]) < 0:
                disc += 1
    return rms, disc


def settings_text(params: dict[str, Any], seeds: list[int] | None = None) -> str:
    """One line naming the simulators and every setting a table depends on (``seeds``: a seed study's draws)."""
    d, r, t = params["data"], params["render"], params["train"]
    seed = f"seeds {', '.join(map(str, seeds))} (each: data, detect, segment and train seed)" if seeds else f"seed {d['seed']}"
    views = len(r.get("views") or []) or 10
    sims = f"detector {params['detect']['backend']}, SAM {params['segment']['mode']}"
    return (
        f"{sims}; {len(params['categories'])} categories ({', '.join(params['categories'])}), {d['n_fewshot']} few-shot + {d['n_val']} val + "
        f"{d['n_test']} test shapes each, {d['n_points']} points, {r['image_size']} px, {views} views, {t['epochs']} epochs, {seed}"
    )
