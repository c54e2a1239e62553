"""How much do the cached box features tell about box correctness? A linear probe.

A box is *correct* when its IoU with a ground-truth part box of its own label in its view is
at least 0.5 (the boxes PartSTAD's weighting should keep). A logistic regression on the box
feature (``detect/feat``), fitted on the boxes of some objects and scored on the boxes of
others, gives the AUC with which a linear read-out separates correct from wrong boxes: near
0.5 the feature says nothing about quality, near 1 it gives it away. The same for the
detector score alone, for comparison.

Usage (any cache root with ingest, render and detect for some categories):

    python benchmarks/probe_box_features.py /tmp/run/cache [--categories Chair,Kettle] [--train-splits fewshot,val]

Objects of ``--train-splits`` (default fewshot and val) train the probe; the others (test)
score it. Every number is printed per category and pooled over categories (one probe per
category; pooled AUC over the concatenated held-out scores).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.boxes import box_iou_matrix  # noqa: E402
from pipeline.detect.scene import instance_table, view_instances  # noqa: E402
from stages.common import manifest  # noqa: E402
from stages.store import CategoryStore  # noqa: E402


def box_correctness(cache: str, category: str, object_id: str) -> dict[str, np.ndarray]:
    """Features, scores and correctness (IoU >= 0.5 with a GT box of the box's label) of one object's boxes."""
    det = CategoryStore(cache, "detect", category).read_all(object_id, ["xyxy", "view", "label", "score", "feat"])
    ing = CategoryStore(cache, "ingest", category)
    pix2pt = CategoryStore(cache, "render", category).read(object_id, "pix2pt")
    point_inst, inst_label = instance_table(ing.read(object_id, "sem"), ing.read(object_id, "ins"))
    ok = np.zeros(det["label"].shape[0], bool)
    best = np.zeros(det["label"].shape[0])
    for v in np.unique(det["view"]):
        rows = np.flatnonzero(det["view"] == v)
        vi = view_instances(pix2pt[int(v)], point_inst, inst_label)
        if vi.inst.size == 0:
            continue
        iou = box_iou_matrix(det["xyxy"][rows], vi.xyxy)
        same = det["label"][rows, None].astype(np.int64) == vi.label[None, :].astype(np.int64)
        best[rows] = np.where(same, iou, 0.0).max(1)
        ok[rows] = best[rows] >= 0.5
    return {"feat": det["feat"].astype(np.float64), "score": det["score"].astype(np.float64), "ok": ok, "iou": best}


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    score, positive = np.asarray(score, np.float64), np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="stable")
    ranks = np.empty(score.shape[0])
    s = score[order]
    i = 0
    while i < s.shape[0]:  # average ranks over ties
        j = i
        while j + 1 < s.shape[0] and s[j + 1] == s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def fit_probe(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 500, lr: float = 0.5):
    """Balanced L2 logistic regression on standardised features (full-batch gradient descent)."""
    mean, sd = x.mean(0), x.std(0)
    sd = np.where(sd > 1e-9, sd, 1.0)
    xs = (x - mean) / sd
    w = np.zeros(x.shape[1])
    b = 0.0
    pos = y.astype(bool)
    sw = np.where(pos, 0.5 / max(pos.sum(), 1), 0.5 / max((~pos).sum(), 1))
    for _ in range(steps):
        z = xs @ w + b
        p = 1.0 / (1.0 + np.exp(-z))
        r = (p - pos) * sw
        w -= lr * (xs.T @ r + l2 * w)
        b -= lr * r.sum()
    return lambda q: ((q - mean) / sd) @ w + b


def probe_cache(cache: str, categories: list[str] | None = None, train_splits: tuple[str, ...] = ("fewshot", "val")) -> dict[str, Any]:
    """Probe every category of ``cache``: {"categories": {cat: row}, "pooled": row}, a row being
    {"boxes": held-out boxes, "correct": their fraction correct, "auc_feature", "auc_score"}.
    One probe per category; the pooled AUC is over the concatenated held-out scores (the probe's
    standardised per category so that categories share one scale)."""
    cats = categories or sorted(p.name[:-5] for p in (Path(cache) / "detect").glob("*.zarr"))
    pooled: dict[str, list[np.ndarray]] = {"probe": [], "score": [], "ok": []}
    out: dict[str, Any] = {"categories": {}, "train_splits": list(train_splits)}
    for cat in cats:
        tr: dict[str, list[np.ndarray]] = {"feat": [], "ok": []}
        te: dict[str, list[np.ndarray]] = {"feat": [], "score": [], "ok": []}
        for r in manifest(cache, cat):
            d = box_correctness(cache, cat, r["object"])
            part = tr if r["split"] in train_splits else te
            for k in part:
                part[k].append(d[k])
        xtr, ytr = np.concatenate(tr["feat"]), np.concatenate(tr["ok"])
        xte, yte, ste = np.concatenate(te["feat"]), np.concatenate(te["ok"]), np.concatenate(te["score"])
        probe = fit_probe(xtr, ytr)(xte)
        out["categories"][cat] = _row(yte, probe, ste)
        pooled["probe"].append((probe - probe.mean()) / max(probe.std(), 1e-12))
        pooled["score"].append(ste)
        pooled["ok"].append(yte)
    out["pooled"] = _row(*(np.concatenate(pooled[k]) for k in ("ok", "probe", "score")))
    return out


def _row(ok: np.ndarray, probe: np.ndarray, score: np.ndarray) -> dict[str, float]:
    return {"boxes": int(ok.size), "correct": float(ok.mean()), "auc_feature": auc(probe, ok), "auc_score": auc(score, ok)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cache", help="cache root (with ingest, render and detect stores)")
    ap.add_argument("--categories", default=None, help="comma-separated (default: every category with a detect store)")
    ap.add_argument("--train-splits", default="fewshot,val", help="splits whose objects train the probe (the others score it)")
    args = ap.parse_args(argv)
    train_splits = tuple(args.train_splits.split(","))
    res = probe_cache(args.cache, args.categories.split(",") if args.categories else None, train_splits)
    print(f"cache {args.cache}: probe on {'+'.join(sorted(train_splits))}, held out: the other splits")
    print(f"{'category':18s} {'boxes(test)':>11s} {'correct':>8s} {'AUC feat':>9s} {'AUC score':>9s}")
    for name, r in [*res["categories"].items(), ("pooled", res["pooled"])]:
        print(f"{name:18s} {r['boxes']:11d} {r['correct']:8.2f} {r['auc_feature']:9.3f} {r['auc_score']:9.3f}")


if __name__ == "__main__":
    main()
