"""Beyond the paper, on the SIMULATED benchmark: shared weight network, k-shot and view sweeps.

Run: ``python benchmarks/beyond_paper.py [--what shared,kshot,views] [--cache DIR --params FILE]
[--out docs/beyond_paper.md]``. With ``--cache``/``--params`` (a cache that went through
``lift`` and ``evaluate``, e.g. the one of ``sweep_informativeness.py --work``) the shared and
k-shot studies reuse it; otherwise one is built at the small settings of :mod:`simbench`.

* shared: one weight network per category (the paper) vs one network trained on the few-shot
  shapes of all categories together vs that shared network fine-tuned per category (its
  weights as the starting point and as the epoch-0 checkpoint candidate).
* kshot: per-category networks trained on the first k = 1, 2, 4, 8 few-shot shapes.
* views: the whole chain re-run with 4, 6, 10 (the paper's) and 14 camera views.

Test mIoU (%) exactly as ``partstad evaluate`` computes it (point level, §8.1); PartSLIP from the
same run for reference. Markdown (and PNG plots, if matplotlib is installed) go to
``--out`` and beside it; never edit the numbers by hand. All numbers: SIMULATED detector and
SAM on synthetic shapes, small settings.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from simbench import DEMO_CATEGORIES, ROOT, SMALL, merge, run_setting, settings_text

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


def study_kshot(data: dict, tp: TrainParams, metrics_dir: Path, ks=(1, 2, 4, 8)) -> dict:
    rows = {}
    for c, d in data.items():
        K = len(part_names(c))
        rows[c] = {"partslip": partslip_miou(metrics_dir, c)}
        for k in ks:
            if k <= len(d["fewshot"]):
                rows[c][f"k={k}"] = test_miou(train_weight_net(d["fewshot"][:k], d["val"], tp), d["test"], K)
        print(f"  {c}: {rows[c]}", flush=True)
    return rows


def study_views(work: Path, base: dict) -> dict:
    rows = {}
    for n, views in VIEW_SETS.items():
        print(f"  {n} views", flush=True)
        metrics = run_setting(work / f"views{n}", merge(base, {"render": {"views": views}}))
        rows[n] = {c: {m: metrics[c]["methods"][m]["miou"] for m in ("partslip", "partstad", "auto")} for c in metrics}
    return rows


def _mean(rows: dict, key: str) -> float:
    v = [r[key] for r in rows.values() if r.get(key) is not None]
    return float(np.mean(v)) if v else float("nan")


def _fmt(v) -> str:
    return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.1f}"


def md_table(rows: dict, cols: list[str], first: str = "category") -> str:
    out = [f"| {first} | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    out += [f"| {c} | " + " | ".join(_fmt(r.get(k)) for k in cols) + " |" for c, r in rows.items()]
    out.append("| **mean** | " + " | ".join(_fmt(_mean(rows, k)) for k in cols) + " |")
    return "\n".join(out)


def _colour(name: str, i: int) -> str:
    """The report's colour of a method (per_category = PartSTAD as in the paper), one palette for all figures."""
    from pipeline.report_style import method_colour

    return method_colour({"per_category": "partstad"}.get(name, name), i)


def plot(path: Path, xs, series: dict[str, list[float]], xlabel: str, title: str, bar: bool = False) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=110)
    if bar:
        ax.bar(list(series), [v[0] for v in series.values()], color=[_colour(n, i) for i, n in enumerate(series)])
    else:
        for i, (name, ys) in enumerate(series.items()):
            ax.plot(xs, ys, marker="o", label=name, color=_colour(name, i))
        ax.legend(fontsize=8)
        ax.set_xticks(list(xs))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test mIoU % (simulated)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--what", default="shared,kshot,views")
    ap.add_argument("--cache", default=None)
    ap.add_argument("--params", default=None)
    ap.add_argument("--metrics", default=None, help="metrics dir of that cache's evaluate run (PartSLIP reference)")
    ap.add_argument("--categories", default=",".join(DEMO_CATEGORIES))
    ap.add_argument("--view-categories", default="Chair,Table,StorageFurniture")
    ap.add_argument("--epochs", type=int, default=SMALL["train"]["epochs"])
    ap.add_argument("--out", default=str(ROOT / "docs" / "beyond_paper.md"))
    ap.add_argument("--informativeness", type=float, default=None, help="default: detect.oracle.informativeness of params.yaml")
    a = ap.parse_args()
    what = a.what.split(",")
    cats = a.categories.split(",")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tp = TrainParams(epochs=a.epochs)
    base = merge(SMALL, {"categories": cats, "train": {"epochs": a.epochs}})
    from stages.config import load_config as _lc

    inf = a.informativeness if a.informativeness is not None else _lc(ROOT / "params.yaml").detect.oracle.informativeness
    base = merge(base, {"detect": {"oracle": {"informativeness": inf}}})
    sections = [
        "# Beyond the paper (SIMULATED benchmark)",
        "",
        "**Simulated numbers**: simulated detector and SAM on synthetic shapes, small settings; they compare "
        "training set-ups inside the simulator, they are not accuracy claims.",
        "",
        f"Settings: {settings_text(base)}, detect.oracle.informativeness {inf:g}; test split mIoU (%). "
        f"Generated by `python benchmarks/beyond_paper.py --what {a.what}"
        + (f" --informativeness {a.informativeness:g}" if a.informativeness is not None else "")
        + (f" --epochs {a.epochs}" if a.epochs != SMALL["train"]["epochs"] else "")
        + "` (do not edit by hand).",
        "",
    ]
    with tempfile.TemporaryDirectory(prefix="beyond_") as tmp:
        work = Path(tmp)
        if {"shared", "kshot"} & set(what):
            if a.cache:
                cache, params, metrics_dir = Path(a.cache), Path(a.params), Path(a.metrics)
            else:
                print("building a cache", flush=True)
                run_setting(work / "main", base)
                cache, params, metrics_dir = work / "main" / "cache", work / "main" / "params.yaml", work / "main" / "metrics"
            data = {c: load_objects(cache, params, c) for c in cats}
        if "shared" in what:
            print("shared network study", flush=True)
            rows = study_shared(data, tp, metrics_dir)
            cols = ["partslip", "per_category", "shared", "shared_finetuned"]
            sections += [
                "## One weight network shared across categories",
                "",
                "per_category = the paper (one network per category); shared = one network trained on the few-shot "
                "shapes of all categories (validation: all their validation shapes); shared_finetuned = the shared "
                "network fine-tuned per category (its weights are the epoch-0 candidate).",
                "",
                md_table(rows, cols),
                "",
            ]
            if plot(out.with_name("beyond_shared.png"), None, {k: [_mean(rows, k)] for k in cols}, "", "mean over categories", bar=True):
                sections += ["![shared network](beyond_shared.png)", ""]
        if "kshot" in what:
            print("k-shot study", flush=True)
            rows = study_kshot(data, tp, metrics_dir)
            cols = ["partslip", "k=1", "k=2", "k=4", "k=8"]
            sections += [
                "## k-shot",
                "",
                "PartSTAD trained on the first k few-shot shapes per category (same validation and test "
                "shapes); PartSLIP does not train (its detector is fixed), so it is one number.",
                "",
                md_table(rows, cols),
                "",
            ]
            ks = [1, 2, 4, 8]
            if plot(
                out.with_name("beyond_kshot.png"),
                ks,
                {"PartSTAD": [_mean(rows, f"k={k}") for k in ks], "PartSLIP": [_mean(rows, "partslip")] * len(ks)},
                "few-shot shapes k",
                "mean over categories",
            ):
                sections += ["![k-shot](beyond_kshot.png)", ""]
        if "views" in what:
            print("views study", flush=True)
            vbase = merge(base, {"categories": a.view_categories.split(",")})
            if what == ["views"]:  # the header's settings line names the categories actually run
                sections[4] = sections[4].replace(settings_text(base), settings_text(vbase))
            rows = study_views(work, vbase)
            flat = {
                f"{n} views": {m: float(np.mean([r[m] for r in per.values()])) for m in ("partslip", "partstad", "auto")}
                for n, per in rows.items()
            }
            sections += [
                "## Number of views",
                "",
                f"The whole chain re-run per view set on {a.view_categories} "
                "(4 = the paper's first four; 6 = those + (40°, 0°), (−20°, 180°); 10 = the paper's; 14 = the paper's + "
                "(70°, 0°), (70°, 180°), (−50°, 90°), (−50°, 270°)). Mean over those categories.",
                "",
                md_table(flat, ["partslip", "partstad", "auto"], first="views").replace("| **mean** |", "| (mean of rows) |"),
                "",
            ]
            ns = list(rows)
            if plot(
                out.with_name("beyond_views.png"),
                ns,
                {m: [flat[f"{n} views"][m] for n in ns] for m in ("partslip", "partstad")},
                "views",
                a.view_categories,
            ):
                sections += ["![views](beyond_views.png)", ""]
    out.write_text("\n".join(sections))
    print("\n".join(sections))


if __name__ == "__main__":
    main()
