"""Training speed: the stacked training loop vs the per-object loop it replaced, side by side.

Run: ``python benchmarks/bench_train.py [--params params.yaml] [--cache cache] [--epochs 400]
[--batch 2] [--categories Chair,Table] [--build] [--no-stage] [--no-compare]``.

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
taking the next category when one finishes; loading and start-up not included), and the
floor under any loop: the network's matrix products (two per step, one per validated
epoch) at the portable kernels' measured GEMM rate.

Then (unless ``--no-stage``) the whole stage as a user runs it: ``partstad train`` over the
categories of the params file, on a temporary copy of the cache's ingest, lift and detect
stores, writing models, metrics and plots to a temporary directory (the repository's
``models/`` and ``metrics/`` are never touched): its wall time, the CPU seconds of its
processes and the load average around it (other work on the machine stretches the wall time).

Needs a cache that went through ``lift`` (and ``detect``) for these params: the demo's
``dvc repro`` cache, or ``--build`` to run ingest..lift into ``--cache`` first (minutes).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
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


def gemm_rate(B: int = 130, C: int = 403) -> float:
    """GFLOP/s of one (B×C)·(C×C) float32 product on one thread with this process's kernels."""
    import torch

    torch.set_num_threads(1)
    x, w = torch.randn(B, C), torch.randn(C, C)
    for _ in range(10):
        torch.mm(x, w.t())
    best = float("inf")
    for _ in range(5):
        c = time.process_time()
        for _ in range(50):
            torch.mm(x, w.t())
        best = min(best, (time.process_time() - c) / 50)
    return 2 * B * C * C / best / 1e9


def gemm_flops(train: list, val: list, epochs: int) -> float:
    """Floating-point operations of the network's two big matrix products per step (forward
    and weight gradient, B×C·C each) and of the validation's one per epoch."""
    C = int(train[0].x.shape[1])
    n_train = sum(int(o.x.shape[0]) for o in train)
    n_val = sum(int(o.x.shape[0]) for o in val)
    return epochs * (4 * C * C * n_train + 2 * C * C * n_val)


def run_stage(params: Path, cache: Path, categories: list[str]) -> None:
    """``partstad train`` as a user runs it, on a copy of the stores it reads, outputs in a temp dir."""
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        work = Path(tmp)
        for store in ("ingest", "detect", "lift"):  # what train reads (manifest, boxes, lifted masks)
            shutil.copytree(cache / store, work / "cache" / store)
        cmd = [sys.executable, "-m", "stages.cli", "train", "--params", str(params.resolve()), "--cache", "cache"]
        cmd += ["--models", "models", "--metrics", "metrics", "--plots", "plots"]
        for cat in categories:
            cmd += ["--category", cat]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        load0, before = os.getloadavg()[0], resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        res = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if res.returncode != 0:
            sys.exit(f"partstad train failed (exit {res.returncode}):\n{res.stderr[-3000:]}")
        print(
            f"partstad train, {len(categories)} categories: wall {wall:.1f} s, CPU {cpu:.1f} s (all its processes) on "
            f"{os.cpu_count()} CPUs; load average {load0:.1f} before, {os.getloadavg()[0]:.1f} after"
        )
        outs = [p.relative_to(work) for d in ("models", "metrics/train", "plots/train") for p in sorted((work / d).rglob("*.*"))]
        outs = [p for p in outs if p.suffix != ".lock" and (ROOT / p).is_file()]
        same = sum((work / p).read_bytes() == (ROOT / p).read_bytes() for p in outs)
        print(f"outputs byte-identical to the repository's committed ones: {same} of {len(outs)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--cache", default=str(ROOT / "cache"))
    ap.add_argument("--categories", default=None, help="comma-separated (default: all in params)")
    ap.add_argument("--epochs", type=int, default=None, help="default: train.epochs of the params (demo: 400)")
    ap.add_argument("--batch", type=int, default=None, help="default: train.batch_size of the params (demo: 2)")
    ap.add_argument("--build", action="store_true", help="run ingest..lift into --cache first")
    ap.add_argument("--no-stage", dest="stage", action="store_false", help="skip timing the whole `partstad train` stage")
    ap.add_argument("--no-compare", dest="compare", action="store_false", help="skip the in-process old/new comparison")
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
    if not args.compare:
        run_stage(params, cache, cats)
        return
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
    flops = 0.0
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
            flops += gemm_flops(tr, va, tp.epochs)
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
    rate = gemm_rate()
    print(
        f"floor: the network's matrix products are {flops / 1e9:.0f} GFLOP; at this process's {rate:.0f} GFLOP/s "
        f"(one thread, {torch_numerics()['aten_cpu_capability']}/MKL_CBWR={torch_numerics()['mkl_cbwr']}) "
        f"that is {flops / 1e9 / rate:.1f} CPU s of the new loop's {tot[1]:.1f}"
    )
    if args.stage:
        run_stage(params, cache, cats)


if __name__ == "__main__":
    main()
