"""The demo and the paper comparison over seeds, on the SIMULATED benchmark (issue 20 items 5 and 6).

A *seed* s is a new draw of everything random: ``data.seed``, ``detect.seed``,
``segment.seed`` and ``train.seed`` all set to s (new shapes, new detector fit, new simulated
SAM noise, new training). One seed says little with 8 test shapes per category, so the demo's
numbers are re-measured over several and reported as mean ± std.

Steps (each resumable: a seed whose metrics exist under ``--work`` is not recomputed):

* ``demo``: the whole chain (``partstad ingest`` … ``evaluate``, in-process, benchmarks/simbench)
  at the demo's settings (params.yaml: its categories, points, image size, epochs, backends)
  for each seed under ``<work>/demo/seed<s>``. With ``--reuse-seed0 metrics/evaluate``, seed 0
  is read from the committed demo instead, provided that run's params hash equals this one's.
* ``probe``: benchmarks/probe_box_features.py on each seed's demo cache (box feature → correctness;
  a reused seed 0 gets ingest, render and detect only, all the probe reads) and, with ``--small
  <beyond_paper work>/pixels``, on the small-setting caches of benchmarks/beyond_paper.py.
* ``write``: docs/seed_study.json and docs/seed_study.md from what is under ``--work``: the demo
  table as mean ± std, the distance of each ablation's Δ (method − PartSLIP) to the paper's, the
  check that ``auto`` stays within 1 point of the best of PartSLIP and w/o weights on test
  (every category and seed listed), and the probe AUCs per seed.

Run: ``python benchmarks/seed_study.py --work /tmp/study_runs --seeds 0,1,2 [--reuse-seed0 metrics/evaluate]
[--small /tmp/beyond/pixels]``.
All numbers: SIMULATED detector and SAM on synthetic shapes; never edit them by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from probe_box_features import probe_cache  # noqa: E402
from simbench import ABLATIONS, PAPER, ROOT, SMALL, TITLES, merge, paper_distance, run_setting, settings_text, with_seed, write_params  # noqa: E402

#: The methods of the demo table, in column order.
METHODS = (*ABLATIONS, "auto")
#: auto must stay within this many mIoU points of the best of these on test (issue 20 item 6).
AUTO_FLOOR_METHODS = ("partslip", "masks_only")
AUTO_TOLERANCE = 1.0


def demo_params(root: Path = ROOT) -> dict[str, Any]:
    return yaml.safe_load((root / "params.yaml").read_text())


def evaluate_hash(params: dict[str, Any], where: Path) -> str:
    """The settings hash ``partstad evaluate`` records (provenance.params_hash) for ``params``."""
    from stages.config import config_hash, load_config
    from stages.stage_table import dvc_params

    return config_hash(load_config(write_params(where, params)), dvc_params("evaluate"))


def reusable_seed0(metrics_dir: Path, params: dict[str, Any], work: Path) -> str | None:
    """Why the committed demo at ``metrics_dir`` cannot stand for seed 0, or None when it can
    (every category's metrics recorded the params hash of seed 0 at demo settings)."""
    want = evaluate_hash(with_seed(params, 0), work / "seed0_params.yaml")
    for c in params["categories"]:
        f = metrics_dir / f"{c}.json"
        if not f.is_file():
            return f"{f} missing"
        got = json.loads(f.read_text()).get("provenance", {}).get("params_hash")
        if got != want:
            return f"{f}: params_hash {got} != {want}"
    return None


def demo_metrics_dir(work: Path, seed: int, reuse_seed0: Path | None) -> Path:
    return reuse_seed0 if seed == 0 and reuse_seed0 is not None else work / "demo" / f"seed{seed}" / "metrics" / "evaluate"


def run_demo(work: Path, seeds: list[int], reuse_seed0: Path | None) -> None:
    """Run the chain at demo settings per seed (skipping seeds already measured)."""
    params = demo_params()
    for s in seeds:
        out = work / "demo" / f"seed{s}"
        if all((demo_metrics_dir(work, s, reuse_seed0) / f"{c}.json").is_file() for c in params["categories"]):
            print(f"demo seed {s}: already measured ({demo_metrics_dir(work, s, reuse_seed0)})", flush=True)
            continue
        t0 = time.perf_counter()
        print(f"demo seed {s}: running the chain in {out}", flush=True)
        run_setting(out, with_seed(params, s), log=lambda m: print(m, flush=True))
        print(f"demo seed {s}: {time.perf_counter() - t0:.0f} s", flush=True)


def run_probe(work: Path, seeds: list[int], small: Path | None) -> None:
    """The box-feature probe per seed on the demo caches (and the small-setting caches of
    beyond_paper.py under ``small``), kept as JSON. A seed whose demo cache is not here (seed 0
    read from the committed metrics) gets ingest, render and detect, all the probe reads."""
    params = demo_params()
    for s in seeds:
        dest = work / "probe" / f"demo_seed{s}.json"
        if not dest.is_file():
            run = work / "demo" / f"seed{s}"
            if not (run / "cache" / "detect").is_dir():
                run = work / "demo" / f"seed{s}_detect"
                if not (run / "cache" / "detect").is_dir() or not (run / "params.yaml").is_file():
                    run_setting(run, with_seed(params, s), stages=("ingest", "render", "detect"), log=lambda m: None)
            with contextlib.redirect_stdout(io.StringIO()):
                res = probe_cache(str(run / "cache"), params["categories"])
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(json.dumps(res, indent=1))
        print(f"probe demo seed {s}: {json.loads(dest.read_text())['pooled']}", flush=True)
        if small is not None and (small / f"seed{s}" / "main" / "cache" / "detect").is_dir():
            dest = work / "probe" / f"small_seed{s}.json"
            if not dest.is_file():
                dest.write_text(json.dumps(probe_cache(str(small / f"seed{s}" / "main" / "cache")), indent=1))
            print(f"probe small seed {s}: {json.loads(dest.read_text())['pooled']}", flush=True)


# ----------------------------------------------------------------------------- write


def _ms(values: list[float]) -> tuple[float, float]:
    v = [float(x) for x in values if x is not None and not math.isnan(x)]
    if not v:
        return math.nan, math.nan
    m = sum(v) / len(v)
    return m, (sum((x - m) ** 2 for x in v) / (len(v) - 1)) ** 0.5 if len(v) > 1 else 0.0


def _pm(values: list[float], signed: bool = False, digits: int = 1) -> str:
    m, s = _ms(values)
    if math.isnan(m):
        return "–"
    sign = "+" if signed and m > 0 else ""
    return f"{sign}{m:.{digits}f} ± {s:.{digits}f}"


def _f(x: float | None, signed: bool = False) -> str:
    return "–" if x is None or math.isnan(x) else (f"{x:+.1f}" if signed else f"{x:.1f}")


def collect(work: Path, seeds: list[int], reuse_seed0: Path | None, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every number of the study, JSON-ready: per seed and category the test mIoU of each
    method, auto's pick, the paper distances, the auto check and the probe AUCs
    (``params``: the demo's settings, default params.yaml)."""
    params = params or demo_params()
    cats = params["categories"]
    per_seed: dict[str, dict[str, dict[str, Any]]] = {}
    for s in seeds:
        d = demo_metrics_dir(work, s, reuse_seed0)
        per_seed[str(s)] = {}
        for c in cats:
            m = json.loads((d / f"{c}.json").read_text())
            per_seed[str(s)][c] = {
                "miou": {k: m["methods"][k]["miou"] for k in METHODS if k in m["methods"]},
                "map50": {k: m["methods"][k]["map50"] for k in METHODS if k in m["methods"]},
                "auto_pick": m.get("auto", {}).get("method"),
                "val_miou": m.get("auto", {}).get("val_miou"),
            }
    means = {s: {k: sum(r[c]["miou"][k] for c in cats) / len(cats) for k in METHODS} for s, r in per_seed.items()}
    paper = {}
    for s, row in means.items():
        rms, disc = paper_distance(row)
        paper[s] = {
            "delta": {k: row[k] - row["partslip"] for k in ABLATIONS[1:]},
            "distance": {k: (row[k] - row["partslip"]) - (PAPER[k] - PAPER["partslip"]) for k in ABLATIONS[1:]},
            "rms": rms,
            "discordant_pairs": disc,
        }
    checks = []
    for s, r in per_seed.items():
        for c in cats:
            miou = r[c]["miou"]
            best = max(AUTO_FLOOR_METHODS, key=lambda k: miou[k])
            gap = miou["auto"] - miou[best]
            checks.append(
                {
                    "seed": int(s),
                    "category": c,
                    "auto_pick": r[c]["auto_pick"],
                    "auto": miou["auto"],
                    "best_floor": best,
                    "best_floor_miou": miou[best],
                    "gap": gap,
                    "below": gap < -AUTO_TOLERANCE,
                    "val_miou": r[c]["val_miou"],
                }
            )
    probes: dict[str, dict[str, Any]] = {}
    for kind in ("demo", "small"):
        for s in seeds:
            f = work / "probe" / f"{kind}_seed{s}.json"
            if f.is_file():
                probes.setdefault(kind, {})[str(s)] = json.loads(f.read_text())
    small_params = with_seed(merge(SMALL, {"categories": cats}), 0)
    return {
        "simulated": True,
        "what": "test mIoU (%) of the SIMULATED demo (simulated detector and SAM, synthetic shapes) per seed",
        "settings": settings_text(params, seeds),
        "small_settings": settings_text(small_params, seeds),
        "seeds": seeds,
        "seed0_from": str(reuse_seed0) if reuse_seed0 is not None else None,
        "paper": PAPER,
        "per_seed": per_seed,
        "mean_over_categories": means,
        "paper_distance": paper,
        "auto_check": {"tolerance": AUTO_TOLERANCE, "against": list(AUTO_FLOOR_METHODS), "rows": checks},
        "probe": probes,
    }


def val_gap(row: dict[str, Any]) -> float | None:
    """On validation: auto's pick − the better of the methods auto is checked against (≥ 0 by construction)."""
    v = row.get("val_miou") or {}
    if row["auto_pick"] not in v or any(k not in v for k in AUTO_FLOOR_METHODS):
        return None
    return v[row["auto_pick"]] - max(v[k] for k in AUTO_FLOOR_METHODS)


def markdown(r: dict[str, Any]) -> str:
    """docs/seed_study.md from :func:`collect`'s record."""
    seeds = [str(s) for s in r["seeds"]]
    cats = list(r["per_seed"][seeds[0]])
    n = len(seeds)
    cmd = (
        f"python benchmarks/seed_study.py --work <dir> --seeds {','.join(seeds)}"
        + (" --reuse-seed0 metrics/evaluate" if r["seed0_from"] else "")
        + (" --small <beyond_paper.py's --work>/pixels" if r["probe"].get("small") else "")
    )
    out = [
        "# The demo over seeds (SIMULATED benchmark)",
        "",
        "**Simulated numbers**: the `pixels` simulated detector and SAM (docs/pixel_simulators.md) on synthetic "
        "shapes; they describe the simulator and the pipeline, not real-world accuracy.",
        "",
        f"Settings: the demo's (params.yaml), {r['settings']}. A seed s sets data.seed, detect.seed, segment.seed "
        "and train.seed to s: new shapes, a new detector fit, new SAM noise, new training. Test split mIoU (%); "
        f"mean ± std over the {n} seeds (std with ddof 1). "
        + ("Seed 0 is the committed demo (metrics/evaluate, same settings hash). " if r["seed0_from"] else "")
        + f"Generated by `{cmd}` (do not edit by hand).",
        "",
        "## Demo table, mean ± std over seeds",
        "",
        "| category | " + " | ".join(TITLES[k] for k in METHODS) + " |",
        "|---" * (len(METHODS) + 1) + "|",
    ]
    for c in cats:
        out.append(f"| {c} | " + " | ".join(_pm([r["per_seed"][s][c]["miou"][k] for s in seeds]) for k in METHODS) + " |")
    mean = r["mean_over_categories"]
    out.append("| **mean** | " + " | ".join(_pm([mean[s][k] for s in seeds]) for k in METHODS) + " |")
    out += [
        "",
        "The **mean** row: the mean over categories per seed, then mean ± std over seeds. Per seed:",
        "",
        "| seed | " + " | ".join(TITLES[k] for k in METHODS) + " |",
        "|---" * (len(METHODS) + 1) + "|",
    ]
    out += [f"| {s} | " + " | ".join(_f(mean[s][k]) for k in METHODS) + " |" for s in seeds]
    pd = r["paper_distance"]
    out += [
        "",
        "## Distance to the paper's ablation",
        "",
        "Δ = method − PartSLIP (mean over the 6 categories, mIoU points); distance = Δ here − Δ in the paper "
        "(PartSLIP 58.0, w/o SAM 62.1, w/o weights 61.9, full 65.0 on PartNetE, real GLIP and SAM). Nothing "
        "was tuned towards the paper.",
        "",
        "| method | paper Δ | " + " | ".join(f"Δ seed {s}" for s in seeds) + " | Δ mean ± std | distance mean ± std |",
        "|---" * (n + 4) + "|",
    ]
    for k in ABLATIONS[1:]:
        out.append(
            f"| {TITLES[k]} | {PAPER[k] - PAPER['partslip']:+.1f} | "
            + " | ".join(_f(pd[s]["delta"][k], signed=True) for s in seeds)
            + f" | {_pm([pd[s]['delta'][k] for s in seeds], signed=True)} | {_pm([pd[s]['distance'][k] for s in seeds], signed=True)} |"
        )
    out += [
        "",
        "| seed | RMS distance | method pairs ordered unlike the paper (of 6) |",
        "|---|---|---|",
    ]
    out += [f"| {s} | {pd[s]['rms']:.1f} | {pd[s]['discordant_pairs']} |" for s in seeds]
    ac = r["auto_check"]
    below = [x for x in ac["rows"] if x["below"]]
    out += [
        "",
        "## auto against the best of PartSLIP and w/o weights",
        "",
        "auto picks, per category, the method with the highest validation mIoU among PartSLIP, w/o weights, "
        "w/o SAM and full (stages/evaluate.py `auto_choice`; ties keep the simpler one). Requirement (issue 20): "
        f"on test it is never more than {ac['tolerance']:g} point below the better of PartSLIP and w/o weights "
        "(the two methods without training). gap = auto − that best, on test.",
        "",
        f"**{len(below)} of {len(ac['rows'])}** (category, seed) pairs fall more than {ac['tolerance']:g} point below"
        + (": " + ", ".join(f"{x['category']} seed {x['seed']} ({x['gap']:+.1f})" for x in below) + "." if below else "."),
        "",
        "| category | seed | auto picked | auto | best of the two | gap | validation mIoU (PartSLIP / w/o weights / w/o SAM / full) | same gap on validation |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for x in ac["rows"]:
        v = x["val_miou"] or {}
        vals = " / ".join(_f(v.get(k)) for k in ("partslip", "masks_only", "partstad_boxes", "partstad"))
        flag = " **below**" if x["below"] else ""
        out.append(
            f"| {x['category']} | {x['seed']} | {TITLES.get(x['auto_pick'], x['auto_pick'])} | {_f(x['auto'])} | "
            f"{TITLES[x['best_floor']]} {_f(x['best_floor_miou'])} | {_f(x['gap'], signed=True)}{flag} | {vals} | "
            f"{_f(val_gap(x), signed=True)} |"
        )
    if below:
        out += [
            "",
            "Why: auto decides on the 4 validation shapes of a category, and a ranking seen on 4 shapes does not "
            "always hold on the 8 test shapes. In every pair marked **below**, the picked method was ahead of the "
            "better of PartSLIP and w/o weights on validation (last column, by "
            + ", ".join(f"{val_gap(x):+.1f}" for x in below if val_gap(x) is not None)
            + " points) and behind it on test: the validation and test shapes of one seed are different draws, "
            "and with so few shapes per split a category's mIoU moves by several points between draws (the std "
            "columns above). The pick stays the paper's protocol (chosen on validation only, never on test); "
            "nothing was tuned to pass this check.",
        ]
    out += ["", "## Linear probe of box features → box correctness", ""]
    out += [
        "A box is correct when its IoU with a ground-truth box of its own label in its view is ≥ 0.5; a logistic "
        "regression on the box feature, fitted on the few-shot + val shapes' boxes, scored on the test shapes' "
        "boxes (benchmarks/probe_box_features.py), pooled over the 6 categories; the detector score alone for "
        "comparison. AUC 0.5 = the feature says nothing about box quality.",
        "",
        "| settings | seed | test boxes | correct | AUC feature | AUC score |",
        "|---|---|---|---|---|---|",
    ]
    for kind, label in (("demo", "demo"), ("small", "small (beyond_paper)")):
        pr = r["probe"].get(kind, {})
        for s in seeds:
            if s in pr:
                p = pr[s]["pooled"]
                out.append(f"| {label} | {s} | {p['boxes']} | {p['correct']:.2f} | {p['auc_feature']:.3f} | {p['auc_score']:.3f} |")
        if pr:
            pooled = [pr[s]["pooled"] for s in pr]
            out.append(
                f"| {label} | mean ± std | – | {_pm([p['correct'] for p in pooled], digits=2)} | "
                f"{_pm([p['auc_feature'] for p in pooled], digits=3)} | {_pm([p['auc_score'] for p in pooled], digits=3)} |"
            )
    out += ["", f"Small settings: {r['small_settings']}."]
    if r["seed0_from"]:
        out += [
            "",
            "The demo probe of seed 0 reads a fresh ingest, render and detect at the demo's settings (what the probe needs; the committed cache is not read).",
        ]
    out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", default="demo,probe,write")
    ap.add_argument("--reuse-seed0", type=Path, default=None, help="metrics/evaluate of the committed demo (seed 0)")
    ap.add_argument("--small", type=Path, default=None, help="beyond_paper.py's <work>/<backend> (probe its caches too)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "seed_study.md")
    a = ap.parse_args(argv)
    seeds = [int(s) for s in a.seeds.split(",")]
    steps = a.steps.split(",")
    reuse = a.reuse_seed0
    if reuse is not None:
        why = reusable_seed0(reuse, demo_params(), a.work)
        if why:
            print(f"seed 0 not reused ({why}): it is run", flush=True)
            reuse = None
    if "demo" in steps:
        run_demo(a.work, seeds, reuse)
    if "probe" in steps:
        run_probe(a.work, seeds, a.small)
    if "write" in steps:
        rec = collect(a.work, seeds, reuse)
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.with_suffix(".json").write_text(json.dumps(rec, indent=1))
        a.out.write_text(markdown(rec))
        print(a.out.read_text())


if __name__ == "__main__":
    main()
