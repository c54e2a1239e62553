"""Ground-truth oracle vs pixels simulators: PartSLIP / w/o SAM / w/o weights / full, and the box-feature probe.

Runs the real stage commands (benchmarks/simbench.py) at the small benchmark settings for
each named setting: the shape stages once into ``<work>/base``, then detect … evaluate per
setting in ``<work>/<setting>``. Prints the test mIoU table per setting and the pooled AUC
of benchmarks/probe_box_features.py. **Simulated numbers** (simulated detector and SAM,
synthetic shapes, small settings); docs/pixel_simulators.md shows a run.

    python benchmarks/compare_simulators.py --work /tmp/sims [--categories Chair,Kettle,StorageFurniture] \\
        [--settings oracle,pixels,pixels_det,pixels_sam] [--seed 0]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from probe_box_features import main as probe  # noqa: E402
from simbench import ABLATIONS, SHAPE_STAGES, SMALL_ORACLE, TITLES, merge, run_setting  # noqa: E402

SETTINGS = {
    "oracle": {},
    "pixels": {"detect": {"backend": "pixels"}, "segment": {"mode": "pixels"}},
    "pixels_det": {"detect": {"backend": "pixels"}},  # pixels detector, oracle SAM
    "pixels_sam": {"segment": {"mode": "pixels"}},  # oracle detector, pixels SAM
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", required=True, help="working directory (caches, models, metrics)")
    ap.add_argument("--categories", default="Chair,Kettle,StorageFurniture")
    ap.add_argument("--settings", default="oracle,pixels")
    ap.add_argument("--seed", type=int, default=0, help="detect.seed, segment.seed and train.seed")
    args = ap.parse_args(argv)
    root, cats = Path(args.work), args.categories.split(",")
    base = merge(SMALL_ORACLE, {"categories": cats})
    if not (root / "base" / "cache" / "superpoints").exists():
        run_setting(root / "base", base, stages=SHAPE_STAGES, log=lambda s: None)
    seeds = {"detect": {"seed": args.seed}, "segment": {"seed": args.seed}, "train": {"seed": args.seed}}
    for name in args.settings.split(","):
        t0 = time.perf_counter()
        work = root / (name if args.seed == 0 else f"{name}_s{args.seed}")
        with contextlib.redirect_stdout(io.StringIO()):
            m = run_setting(work, merge(merge(base, seeds), SETTINGS[name]), base_cache=root / "base" / "cache", log=lambda s: None)
        rows = {c: {a: m[c]["methods"][a]["miou"] for a in ABLATIONS} for c in cats}
        rows["mean"] = {a: sum(rows[c][a] for c in cats) / len(cats) for a in ABLATIONS}
        print(f"\n{name} (seed {args.seed}, {time.perf_counter() - t0:.0f} s), test mIoU %, SIMULATED")
        print("| category | " + " | ".join(TITLES[a] for a in ABLATIONS) + " |")
        print("|---" * (len(ABLATIONS) + 1) + "|")
        for c, r in rows.items():
            print(f"| {c} | " + " | ".join(f"{r[a]:.1f}" for a in ABLATIONS) + " |")
        probe([str(work / "cache"), "--categories", ",".join(cats)])


if __name__ == "__main__":
    main()
