"""Scale benchmark: per-stage throughput (sync vs a 2-worker LocalCluster), peak memory and
cache size per object compared with the original PartSTAD preprocessing format (SPEC §9).

Run: ``python benchmarks/bench_scale.py [--objects 8] [--image-size 256] [--points 20000]``.

Every stage runs as ``partstad <stage>`` in its own wrapper process (so its peak RSS,
``getrusage(RUSAGE_CHILDREN).ru_maxrss``, is its own: the largest single process, i.e. the
CLI or one dask worker). Objects/min comes from the stage's own timing line
("(X s)", which for ``local:2`` includes starting the cluster) and, in brackets, from the
wall time including Python start-up. Both schedulers run side by side on the same machine in
one run; the ratio column is the speed-up of ``local:2`` over ``sync``.

Cache bytes/object are the on-disk bytes of each object's Zarr group (compressed, CRC'd).
The original layout is computed for the same objects from SPEC §9: ``pc_idx`` int64
(V,H,W) and ``screen_coords`` f32 (V,N,2) for rendering (PNGs not counted), GLIP
``glip_feature.npz`` (B,256)×2 f32 + logits + ``image_feature.npz`` for detection,
``sam_mask.npz`` float64 (B,H,W) for SAM, and the dense float64 membership
``sp_map_list`` (N·K·B) + ``view_bbox_mask_list`` (S,10,B) + per-superpoint arrays for
the box info. The last column gives the original size at the paper's 800×800.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["ingest", "render", "visibility", "superpoints", "detect", "segment", "lift"]
WRAPPER = r"""
import json, resource, subprocess, sys, time
t = time.perf_counter()
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - t
print(json.dumps({"rc": r.returncode, "wall": wall, "maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                  "out": r.stdout + r.stderr}))
"""


def params(n_objects: int, image_size: int, n_points: int) -> dict:
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    base["categories"] = ["Chair"]
    base["data"].update({"n_points": n_points, "n_fewshot": n_objects, "n_val": 0, "n_test": 0})
    base["render"]["image_size"] = image_size
    return base


def run_stage(stage: str, workdir: Path, cache: str, scheduler: str) -> dict:
    exe = shutil.which("partstad") or str(Path(sys.executable).parent / "partstad")
    cmd = [sys.executable, "-c", WRAPPER, exe, stage, "--params", "params.yaml", "--cache", cache, "--scheduler", scheduler]
    res = json.loads(subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, check=True).stdout)
    if res["rc"] != 0:
        raise SystemExit(f"partstad {stage} --scheduler {scheduler} failed:\n{res['out']}")
    m = re.search(rf"\[{stage}\] Chair: (\d+) computed, (\d+) up to date, (\d+) failed \(([\d.]+) s\)", res["out"])
    if not m or int(m.group(3)):
        raise SystemExit(f"unexpected output of partstad {stage}:\n{res['out']}")
    res.update(computed=int(m.group(1)), seconds=float(m.group(4)))
    return res


def group_bytes(cache: Path, stage: str) -> dict[str, int]:
    store = cache / stage / "Chair.zarr"
    return {g.name: sum(f.stat().st_size for f in g.rglob("*") if f.is_file()) for g in store.iterdir() if g.is_dir() and not g.name.startswith(".")}


def original_bytes(cache: Path) -> dict[str, list[tuple[float, float]]]:
    """Per object, (bytes at this run's H×W, bytes at 800×800) of the SPEC §9 files."""
    from pipeline.store import CategoryStore

    st = {s: CategoryStore(cache, s, "Chair") for s in STAGES}
    out: dict[str, list[tuple[float, float]]] = {"render+visibility": [], "detect": [], "segment": [], "lift": []}
    for oid in st["lift"].object_ids():
        N = int(st["ingest"].attrs(oid)["n_points"])
        K = len(st["ingest"].attrs(oid)["parts"])
        V, H, W = st["render"].array(oid, "pix2pt").shape
        B = int(st["detect"].attrs(oid)["n_boxes"])
        S = int(st["superpoints"].attrs(oid)["n_superpoints"])
        for key, fn in {
            "render+visibility": lambda h, w: V * h * w * 8 + V * N * 2 * 4,
            "detect": lambda h, w: B * (256 + 256 + K + 1) * 4 + 2 * V * 256 * 7 * 7 * 4,
            "segment": lambda h, w: B * h * w * 8,
            "lift": lambda h, w: N * K * B * 8 + S * V * B * 8 + S * (K + 1) * 8 + S * 3 * 8 + S * V * 8,
        }.items():
            out[key].append((fn(H, W), fn(800, 800)))
    return out


def fmt_bytes(b: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if b < 1000 or unit == "GB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.1f} {unit}"
        b /= 1000
    return f"{b:.1f} GB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--objects", type=int, default=8)
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--points", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", default=None, help="Keep the work directory here instead of a temp dir.")
    args = ap.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "params.yaml").write_text(yaml.safe_dump(params(args.objects, args.image_size, args.points), sort_keys=False))
    dist = f"local:{args.workers}"
    rows = []
    for stage in STAGES:  # the same stage with both schedulers, side by side
        a = run_stage(stage, work, "cache_sync", "sync")
        b = run_stage(stage, work, "cache_dist", dist)
        rows.append((stage, a, b))
    n = args.objects
    print(f"\n# bench_scale: {n} synthetic Chair objects, {args.points} points, {args.image_size}x{args.image_size} px, 10 views; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"\n| stage | sync obj/min | {dist} obj/min | speed-up | sync peak RSS | {dist} peak RSS (largest process) |")
    print("|---|---|---|---|---|---|")
    for stage, a, b in rows:
        pa, pb = n / a["seconds"] * 60, n / b["seconds"] * 60
        wa, wb = n / a["wall"] * 60, n / b["wall"] * 60
        print(f"| {stage} | {pa:.0f} ({wa:.0f}) | {pb:.0f} ({wb:.0f}) | {pb / pa:.2f}x | {a['maxrss_kb'] / 1024:.0f} MB | {b['maxrss_kb'] / 1024:.0f} MB |")
    tot_a = sum(a["seconds"] for _, a, _ in rows)
    tot_b = sum(b["seconds"] for _, _, b in rows)
    print(f"| **chain** | {n / tot_a * 60:.0f} | {n / tot_b * 60:.0f} | {tot_a / tot_b:.2f}x | | |")
    print("\nobj/min from the stage's own timing (in brackets: including process start-up); local:N includes starting the cluster.")

    cache = work / "cache_sync"
    ours = {s: group_bytes(cache, s) for s in STAGES}
    orig = original_bytes(cache)
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    print(f"\n| stage | this cache, bytes/object | original PartSTAD files at {args.image_size} px | ratio | original at 800 px |")
    print("|---|---|---|---|---|")
    for s in STAGES:
        ob = mean(list(ours[s].values()))
        key = {"render": "render+visibility", "detect": "detect", "segment": "segment", "lift": "lift"}.get(s)
        if key is None:
            print(f"| {s} | {fmt_bytes(ob)} | – | – | – |")
            continue
        if s == "render":
            ob += mean(list(ours["visibility"].values()))
        o_here, o_800 = mean([x[0] for x in orig[key]]), mean([x[1] for x in orig[key]])
        label = "render + visibility" if s == "render" else s
        print(f"| {label} | {fmt_bytes(ob)} | {fmt_bytes(o_here)} | {o_here / ob:.0f}x smaller | {fmt_bytes(o_800)} |")
    total_ours = sum(mean(list(ours[s].values())) for s in STAGES)
    total_orig = sum(mean([x[0] for x in orig[k]]) for k in orig)
    print(f"| **all stages** | {fmt_bytes(total_ours)} | {fmt_bytes(total_orig)} | {total_orig / total_ours:.0f}x smaller | {fmt_bytes(sum(mean([x[1] for x in orig[k]]) for k in orig))} |")
    from pipeline.store import CategoryStore

    det = CategoryStore(cache, "detect", "Chair")
    bs = [det.attrs(o)["n_boxes"] for o in det.object_ids()]
    print(f"\nboxes per object: mean {mean(bs):.0f} (min {min(bs)}, max {max(bs)}); original sizes exclude PNGs, pred.json and visualisations.")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
