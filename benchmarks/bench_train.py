"""Training speed: the stacked training loop vs the per-object loop it replaced, side by side.

Run: ``python benchmarks/bench_train.py [--params params.yaml] [--cache cache] [--epochs 400]
[--batch 2] [--categories Chair,Table] [--build]``.

For every category of the params file and every variant ``partstad train`` fits (masks; and
boxes with ``train.ablation_boxes``), the same prepared objects are trained twice in this
process, one thread each, with the portable torch kernels ``partstad train`` pins
(:mod:`stages.cpu_numerics`; set ``ATEN_CPU_CAPABILITY``/``MKL_CBWR`` to measure others):
by :func:`pipeline.train.loop.train_weight_net` (stacked objects)
and by ``tests/oracle_train.py`` (the per-object loop, as it was). Printed per variant: CPU
seconds of each (process time, robust to other load on the machine; wall seconds in the
totals), their ratio, the selected epochs and validation mIoUs, and how far the loss curves
drift apart (at epoch 10 and at most). The last lines give the totals and the wall time the
stage would need on 2 idle cores (``partstad train`` runs categories in 2 worker processes,
taking the next category when one finishes; loading and start-up not included).

Needs a cache that went through ``lift`` (and ``detect``) for these params: the demo's
``dvc repro`` cache, or ``--build`` to run ingest..lift into ``--cache`` first (minutes).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stages.cpu_numerics import pin_portable_torch_numerics, torch_numerics  # noqa: E402

pin_portable_torch_numerics()  # as `partstad train` does, before torch is imported

from pipeline.meta import register_part_names  # noqa: E402
from pipeline.train.loop import train_weight_net  # noqa: E402
from stages.common import load_params, make_context, select_objects  # noqa: E402
from stages.train import load_split, train_params  # noqa: E402
from tests.oracle_train import ref_train_weight_net  # noqa: E402

STAGES = ["ingest", "render", "visibility", "superpoints", "detect", "segment", "lift"]


def build(params: Path, cache: Path) -> None:
    """Run the stages up to lift into ``cache`` (the inputs of training)."""
    for stage in STAGES:
        cmd = [sys.executable, "-m", "stages.cli", stage, "--params", str(params), "--cache", str(cache)]
        print("$", " ".join(cmd[2:]), flush=True)
        subprocess.run(cmd, cwd=ROOT, check=True)


def timed(fn, *args):
    c, t = time.process_time(), time.perf_counter()
    res = fn(*args)
    return res, time.process_time() - c, time.perf_counter() - t


def drift(a, b, epoch: int | None = None) -> float:
    """Relative difference of two loss curves, at one epoch or the largest."""
    la, lb = (np.array([e["loss"] for e in r.curve]) for r in (a, b))
    rel = np.abs(la / lb - 1)
    return float(rel[min(epoch, len(rel) - 1)] if epoch is not None else rel.max())


def two_workers(seconds: list[float]) -> float:
    """Wall time of categories taken in order by 2 workers, each taking the next when free."""
    free = [0.0, 0.0]
    for s in seconds:
        free[free.index(min(free))] += s
    return max(free)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--cache", default=str(ROOT / "cache"))
    ap.add_argument("--categories", default=None, help="comma-separated (default: all in params)")
    ap.add_argument("--epochs", type=int, default=None, help="default: train.epochs of the params (demo: 400)")
    ap.add_argument("--batch", type=int, default=None, help="default: train.batch_size of the params (demo: 2)")
    ap.add_argument("--build", action="store_true", help="run ingest..lift into --cache first")
    args = ap.parse_args()
    params, cache = Path(args.params), Path(args.cache)
    if args.build:
        build(params, cache)
    cfg = load_params(str(params))
    register_part_names(cfg.data.part_names)
    cats = args.categories.split(",") if args.categories else list(cfg.categories)
    missing = [c for c in cats if not (cache / "lift" / f"{c}.zarr").is_dir()]
    if missing:
        sys.exit(f"no lift outputs for {', '.join(missing)} in {cache}: run `dvc repro lift`, or this script with --build")
    tp = train_params(cfg.train, "cpu")
    if args.epochs is not None:
        tp.epochs = args.epochs
    if args.batch is not None:
        tp.batch_size = args.batch
    variants = [("partstad", "mask")] + ([("partstad_boxes", "box")] if cfg.train.ablation_boxes else [])
    print(
        f"{len(cats)} categories x {len(variants)} variants, {tp.epochs} epochs, batch {tp.batch_size}, {tp.threads} thread(s); "
        f"torch numerics {torch_numerics()}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        f"{'category':<17}{'variant':<15}{'old s':>7}{'new s':>7}{'ratio':>7}  best epoch old/new  best val old/new   loss drift ep10/max"
    )
    per_cat: dict[str, list[float]] = {}
    tot = np.zeros(4)  # old cpu, new cpu, old wall, new wall
    same = 0
    for cat in cats:
        ctx = make_context("train", cat, str(cache), cfg, "cpu")
        for name, mode in variants:
            skipped: list = []
            tr = load_split(ctx, select_objects(str(cache), cat, None, ("fewshot",)), mode, tp.pos_enc, "cpu", skipped)
            va = [
                o
                for o in load_split(ctx, select_objects(str(cache), cat, None, ("val",)), mode, tp.pos_enc, "cpu", skipped)
                if o.label_counts is not None
            ]
            old, c_old, w_old = timed(ref_train_weight_net, tr, va, tp)
            new, c_new, w_new = timed(train_weight_net, tr, va, tp)
            tot += (c_old, c_new, w_old, w_new)
            per_cat.setdefault(cat, [0.0, 0.0])
            per_cat[cat][0] += c_old
            per_cat[cat][1] += c_new
            same += old.best_epoch == new.best_epoch
            print(
                f"{cat:<17}{name:<15}{c_old:7.2f}{c_new:7.2f}{c_old / c_new:7.2f}  {old.best_epoch:>9d} /{new.best_epoch:>4d}"
                f"   {old.best_val_miou:.4f} / {new.best_val_miou:.4f}   {drift(old, new, 10):.1e} / {drift(old, new):.1e}",
                flush=True,
            )
    n = len(cats) * len(variants)
    print(
        f"total CPU s: old {tot[0]:.1f}, new {tot[1]:.1f}, ratio {tot[0] / tot[1]:.2f} (wall s: old {tot[2]:.1f}, new {tot[3]:.1f}, "
        f"ratio {tot[2] / tot[3]:.2f}); same selected epoch in {same} of {n} variants"
    )
    print(
        f"on 2 idle cores (categories over 2 workers): old {two_workers([v[0] for v in per_cat.values()]):.1f} s, "
        f"new {two_workers([v[1] for v in per_cat.values()]):.1f} s; load average now {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
