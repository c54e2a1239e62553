"""Beyond the paper, on the SIMULATED benchmark, over seeds: shared weight network, k-shot and views.

Run: ``python benchmarks/beyond_paper.py --work DIR [--what shared,kshot] [--seeds 0,1,2]
[--backend pixels|oracle] [--out docs/beyond_paper.md]`` and ``--what views --out
docs/beyond_paper_views.md`` (same ``--work``: the views study reuses the 10-view runs). Per seed s
(data, detect, segment and train seed all s: new shapes, detector, SAM noise and training) the
whole chain runs once at the small settings of :mod:`simbench` into ``<work>/<backend>/seed<s>/main``,
then:

* shared: one weight network per category (the paper) vs one network trained on the few-shot
  shapes of all categories together vs that shared network fine-tuned per category (its
  weights as the starting point and as the epoch-0 checkpoint candidate).
* kshot: per-category networks trained on the first k = 1, 2, 4, 8 few-shot shapes (k = 8 is
  the per-category network of the shared study).
* views: the whole chain re-run with 4, 6, 10 (the paper's) and 14 camera views.

Every result is kept as JSON under ``--work`` (a re-run only computes what is missing) and the
tables say mean ± std over the seeds (std with ddof 1); the **mean** row is the mean over
categories, computed per seed, then mean ± std over seeds. Test mIoU (%) exactly as
``partstad evaluate`` computes it (point level, §8.1); PartSLIP from the same run. Markdown, JSON
and PNG plots (error bars: the std over seeds) go to ``--out`` and beside it; never edit the
numbers by hand. All numbers: SIMULATED detector and SAM on synthetic shapes, small settings.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from simbench import BACKENDS, DEMO_CATEGORIES, ROOT, SMALL, merge, run_setting, settings_text, with_seed

from pipeline.meta import part_names  # noqa: E402
from pipeline.metrics import category_miou  # noqa: E402
from pipeline.train.checkpoint import load_net  # noqa: E402
from pipeline.train.decode import labels_from_probs, predict  # noqa: E402
from pipeline.train.loop import TrainParams, train_weight_net  # noqa: E402
from stages.common import select_objects  # noqa: E402
from stages.config import load_config  # noqa: E402
from stages.runner import StageContext  # noqa: E402
from stages.train_io import prepare_object  # noqa: E402

PAPER_VIEWS = [[10, 0], [10, 90], [10, 180], [10, 270], [40, 0], [40, 120], [40, 240], [-20, 60], [-20, 180], [-20, 300]]
VIEW_SETS = {
    4: PAPER_VIEWS[:4],
    6: PAPER_VIEWS[:4] + [[40, 0], [-20, 180]],
    10: PAPER_VIEWS,
    14: PAPER_VIEWS + [[70, 0], [70, 180], [-50, 90], [-50, 270]],
}


def load_objects(cache: Path, params: Path, category: str) -> dict[str, list]:
    ctx = StageContext("train", category, str(cache), load_config(params))
    return {
        s: [prepare_object(ctx, o, "mask", pos_enc=True) for o in select_objects(str(cache), category, None, (s,))]
        for s in ("fewshot", "val", "test")
    }


def point_arrays(obj, labels_sp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Point-level (pred, gt) of one object rebuilt from its superpoint GT counts (exact: all
    points of a superpoint share its label)."""
    counts = obj.label_counts
    K1 = counts.shape[1]
    gt = np.repeat(np.tile(np.arange(-1, K1 - 1), counts.shape[0]), counts.ravel())
    pred = np.repeat(np.repeat(np.asarray(labels_sp), K1), counts.ravel())
    return pred, gt


def test_miou(result, objs, n_parts: int) -> float:
    net, zn = load_net(result), result.theta_null
    preds, gts = [], []
    for o in objs:
        P = predict(net, zn, o)
        p, g = point_arrays(o, labels_from_probs(P, o.valid.numpy(), o.small_flags))
        preds.append(p)
        gts.append(g)
    return 100.0 * category_miou(preds, gts, n_parts)


def partslip_miou(metrics_dir: Path, category: str) -> float | None:
    f = metrics_dir / "evaluate" / f"{category}.json"
    return json.loads(f.read_text())["methods"]["partslip"]["miou"] if f.is_file() else None


def cached(path: Path, compute: Callable[[], Any]) -> Any:
    """``compute()``'s JSON result, kept at ``path`` so that a re-run skips it."""
    if path.is_file():
        return json.loads(path.read_text())
    out = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    return out


def main_run(work: Path, params: dict[str, Any]) -> Path:
    """The chain at ``params`` in ``work`` (once: skipped when its metrics exist); returns ``work``."""
    if not all((work / "metrics" / "evaluate" / f"{c}.json").is_file() for c in params["categories"]):
        run_setting(work, params, log=lambda m: None)
    return work


def study_shared(data: dict, tp: TrainParams, metrics_dir: Path) -> dict:
    rows = {}
    all_train = [o for d in data.values() for o in d["fewshot"]]
    all_val = [o for d in data.values() for o in d["val"]]
    t0 = time.perf_counter()
    shared = train_weight_net(all_train, all_val, tp)
    print(f"  shared network: best epoch {shared.best_epoch}, {time.perf_counter() - t0:.0f} s", flush=True)
    for c, d in data.items():
        K = len(part_names(c))
        own = train_weight_net(d["fewshot"], d["val"], tp)
        tuned = train_weight_net(d["fewshot"], d["val"], tp, init=(shared.state_dict, shared.theta_null))
        rows[c] = {
            "partslip": partslip_miou(metrics_dir, c),
            "per_category": test_miou(own, d["test"], K),
            "shared": test_miou(shared, d["test"], K),
            "shared_finetuned": test_miou(tuned, d["test"], K),
        }
        print(f"  {c}: {rows[c]}", flush=True)
    return rows


def study_kshot(data: dict, tp: TrainParams, metrics_dir: Path, full: dict | None = None, ks=(1, 2, 4, 8)) -> dict:
    """k-shot rows; ``full`` (the shared study's rows) gives k = all few-shot shapes without retraining."""
    rows = {}
    for c, d in data.items():
        K = len(part_names(c))
        rows[c] = {"partslip": partslip_miou(metrics_dir, c)}
        for k in ks:
            if k == len(d["fewshot"]) and full is not None and c in full:
                rows[c][f"k={k}"] = full[c]["per_category"]  # the same training run (same objects, same seed)
            elif k <= len(d["fewshot"]):
                rows[c][f"k={k}"] = test_miou(train_weight_net(d["fewshot"][:k], d["val"], tp), d["test"], K)
        print(f"  {c}: {rows[c]}", flush=True)
    return rows


def study_views(work: Path, base: dict, main: Path | None) -> dict:
    """{n views: {category: {method: test mIoU}}} for one seed; 10 views = ``main``'s run when given."""
    rows = {}
    for n, views in VIEW_SETS.items():
        if n == 10 and main is not None:
            run = main
        else:
            print(f"  {n} views", flush=True)
            run = main_run(work / f"views{n}", merge(base, {"render": {"views": views}}))
        metrics = {c: json.loads((run / "metrics" / "evaluate" / f"{c}.json").read_text()) for c in base["categories"]}
        rows[str(n)] = {c: {m: metrics[c]["methods"][m]["miou"] for m in ("partslip", "partstad", "auto")} for c in metrics}
    return rows


def _mean(rows: dict, key: str) -> float:
    v = [r[key] for r in rows.values() if r.get(key) is not None]
    return float(np.mean(v)) if v else float("nan")


def over_seeds(per_seed: list[dict], cols: list[str]) -> dict[str, dict[str, list[float]]]:
    """{row: {col: [value per seed]}} with a "mean" row (the mean over categories of each seed)."""
    cats = list(per_seed[0])
    out = {c: {k: [r[c][k] for r in per_seed if r[c].get(k) is not None] for k in cols} for c in cats}
    out["mean"] = {k: [_mean(r, k) for r in per_seed] for k in cols}
    return out


def mean_std(values: list[float]) -> tuple[float, float]:
    v = [x for x in values if x is not None and not np.isnan(x)]
    if not v:
        return float("nan"), float("nan")
    return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


def _pm(values: list[float]) -> str:
    m, s = mean_std(values)
    return "–" if np.isnan(m) else f"{m:.1f} ± {s:.1f}" if len(values) > 1 else f"{m:.1f}"


def md_table(agg: dict[str, dict[str, list[float]]], cols: list[str], first: str = "category") -> str:
    out = [f"| {first} | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    out += [f"| {'**mean**' if c == 'mean' else c} | " + " | ".join(_pm(r[k]) for k in cols) + " |" for c, r in agg.items()]
    return "\n".join(out)


def _colour(name: str, i: int) -> str:
    """The report's colour of a method (per_category = PartSTAD as in the paper), one palette for all figures."""
    from pipeline.report_style import method_colour

    return method_colour({"per_category": "partstad"}.get(name, name), i)


def plot(path: Path, xs, series: dict[str, list[list[float]]], xlabel: str, title: str, bar: bool = False) -> bool:
    """A bar or line plot of mean over seeds with the std over seeds as error bars (False without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=110)
    stats = {n: [mean_std(v) for v in vs] for n, vs in series.items()}
    if bar:
        names = list(stats)
        ax.bar(
            names,
            [stats[n][0][0] for n in names],
            yerr=[stats[n][0][1] for n in names],
            capsize=4,
            color=[_colour(n, i) for i, n in enumerate(names)],
        )
    else:
        for i, (name, st) in enumerate(stats.items()):
            ax.errorbar(xs, [m for m, _ in st], yerr=[s for _, s in st], marker="o", capsize=3, label=name, color=_colour(name, i))
        ax.legend(fontsize=8)
        ax.set_xticks(list(xs))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test mIoU % (simulated)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def study_section(result: dict, sections: list[str], key: str, per_seed: list, cols: list[str], title: str, text: str) -> dict:
    """Aggregate one study over seeds into ``result[key]`` and append its Markdown section."""
    agg = over_seeds(per_seed, cols)
    result[key] = {"per_seed": per_seed, "over_seeds": agg}
    sections += [f"## {title}", "", text, "", md_table(agg, cols), ""]
    return agg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", required=True, type=Path, help="runs and per-seed results (kept: a re-run computes only what is missing)")
    ap.add_argument("--what", default="shared,kshot")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--backend", default="pixels", choices=sorted(BACKENDS), help="simulated detector and SAM (the demo: pixels)")
    ap.add_argument("--categories", default=",".join(DEMO_CATEGORIES))
    ap.add_argument("--view-categories", default="Chair,Table,StorageFurniture")
    ap.add_argument("--epochs", type=int, default=SMALL["train"]["epochs"])
    ap.add_argument("--out", default=str(ROOT / "docs" / "beyond_paper.md"))
    ap.add_argument("--informativeness", type=float, default=None, help="backend oracle only: detect.oracle.informativeness (default 1)")
    a = ap.parse_args()
    what = a.what.split(",")
    seeds = [int(s) for s in a.seeds.split(",")]
    cats = a.categories.split(",")
    vcats = a.view_categories.split(",")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    base = merge(merge(SMALL, BACKENDS[a.backend]), {"categories": cats, "train": {"epochs": a.epochs}})
    tag = a.backend
    if a.backend == "oracle":
        inf = 1.0 if a.informativeness is None else a.informativeness
        base = merge(base, {"detect": {"oracle": {"informativeness": inf}}})
        tag = f"oracle_inf{inf:g}"
    if a.epochs != SMALL["train"]["epochs"]:
        tag += f"_e{a.epochs}"
    shown = merge(base, {"categories": vcats}) if what == ["views"] else base
    cmd = f"python benchmarks/beyond_paper.py --work <dir> --what {a.what} --seeds {a.seeds} --backend {a.backend}"
    cmd += (f" --informativeness {a.informativeness:g}" if a.informativeness is not None else "") + (
        f" --epochs {a.epochs}" if a.epochs != SMALL["train"]["epochs"] else ""
    )
    cmd += f" --out docs/{out.name}" if out.name != "beyond_paper.md" else ""
    sections = [
        "# Beyond the paper (SIMULATED benchmark, over seeds)",
        "",
        "**Simulated numbers**: simulated detector and SAM on synthetic shapes, small settings; they compare "
        "training set-ups inside the simulator, they are not accuracy claims.",
        "",
        f"Settings: {settings_text(shown, seeds)}; test split mIoU (%), mean ± std over the {len(seeds)} seeds "
        "(std with ddof 1"
        + ("; the **mean** row: mean over categories per seed, then mean ± std over seeds). " if what != ["views"] else "). ")
        + f"Generated by `{cmd}` (do not edit by hand).",
        "",
    ]
    result: dict[str, Any] = {"simulated": True, "settings": shown, "seeds": seeds, "command": cmd}
    runs = a.work / tag
    per_seed: dict[str, list[dict]] = {"shared": [], "kshot": [], "views": []}
    for s in seeds:
        sdir, params = runs / f"seed{s}", with_seed(base, s)
        tp = TrainParams(epochs=a.epochs, seed=s)
        main_dir = None
        if {"shared", "kshot"} & set(what) or set(vcats) <= set(cats):
            print(f"seed {s}: main run", flush=True)
            main_dir = main_run(sdir / "main", params)
        data: dict[str, Any] = {}

        def load() -> dict[str, Any]:
            if not data:
                data.update({c: load_objects(main_dir / "cache", main_dir / "params.yaml", c) for c in cats})
            return data

        if {"shared", "kshot"} & set(what):
            print(f"seed {s}: shared network study", flush=True)
            shared = cached(sdir / "shared.json", lambda: study_shared(load(), tp, main_dir / "metrics"))
            per_seed["shared"].append(shared)
            if "kshot" in what:
                print(f"seed {s}: k-shot study", flush=True)
                per_seed["kshot"].append(cached(sdir / "kshot.json", lambda: study_kshot(load(), tp, main_dir / "metrics", shared)))
        if "views" in what:
            print(f"seed {s}: views study", flush=True)
            reuse = main_dir if set(vcats) <= set(cats) else None
            per_seed["views"].append(
                cached(
                    sdir / f"views_{'_'.join(vcats)}.json",
                    lambda: study_views(sdir, with_seed(merge(base, {"categories": vcats}), s), reuse),
                )
            )
    if "shared" in what:
        cols = ["partslip", "per_category", "shared", "shared_finetuned"]
        agg = study_section(
            result,
            sections,
            "shared",
            per_seed["shared"],
            cols,
            "One weight network shared across categories",
            "per_category = the paper (one network per category); shared = one network trained on the few-shot "
            "shapes of all categories (validation: all their validation shapes); shared_finetuned = the shared "
            "network fine-tuned per category (its weights are the epoch-0 candidate).",
        )
        if plot(
            out.with_name("beyond_shared.png"),
            None,
            {k: [agg["mean"][k]] for k in cols},
            "",
            f"mean over categories; error bars: std over {len(seeds)} seeds",
            bar=True,
        ):
            sections += ["![shared network](beyond_shared.png)", ""]
    if "kshot" in what:
        ks = [1, 2, 4, 8]
        cols = ["partslip"] + [f"k={k}" for k in ks]
        agg = study_section(
            result,
            sections,
            "kshot",
            per_seed["kshot"],
            cols,
            "k-shot",
            "PartSTAD trained on the first k few-shot shapes per category (same validation and test "
            "shapes); PartSLIP does not train (its detector is fitted on all 8 few-shot shapes, it is not re-fitted per k), "
            "so it is one number per seed.",
        )
        if plot(
            out.with_name("beyond_kshot.png"),
            ks,
            {"PartSTAD": [agg["mean"][f"k={k}"] for k in ks], "PartSLIP": [agg["mean"]["partslip"]] * len(ks)},
            "few-shot shapes k",
            f"mean over categories; error bars: std over {len(seeds)} seeds",
        ):
            sections += ["![k-shot](beyond_kshot.png)", ""]
    if "views" in what:
        methods = ["partslip", "partstad", "auto"]
        ns = list(VIEW_SETS)
        flat = [{f"{n} views": {m: _mean(r[str(n)], m) for m in methods} for n in ns} for r in per_seed["views"]]
        agg = over_seeds(flat, methods)
        agg.pop("mean")
        result["views"] = {"per_seed": per_seed["views"], "over_seeds": agg}
        sections += [
            "## Number of views",
            "",
            f"The whole chain re-run per view set on {', '.join(vcats)} "
            "(4 = the paper's first four; 6 = those + (40°, 0°), (−20°, 180°); 10 = the paper's; 14 = the paper's + "
            "(70°, 0°), (70°, 180°), (−50°, 90°), (−50°, 270°)). Each cell: the mean over those categories per seed, "
            "then mean ± std over seeds.",
            "",
            md_table(agg, methods, first="views"),
            "",
        ]
        if plot(
            out.with_name("beyond_views.png"),
            ns,
            {m: [agg[f"{n} views"][m] for n in ns] for m in ("partslip", "partstad")},
            "views",
            f"{', '.join(vcats)}; error bars: std over {len(seeds)} seeds",
        ):
            sections += ["![views](beyond_views.png)", ""]
    out.write_text("\n".join(sections))
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    print("\n".join(sections))


if __name__ == "__main__":
    main()
