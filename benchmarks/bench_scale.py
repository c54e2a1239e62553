"""Scale benchmark: per-stage throughput (sync vs a 2-worker LocalCluster), peak memory and
cache size per object compared with the original PartSTAD preprocessing format (SPEC §9).

Run: ``python benchmarks/bench_scale.py [--objects 8] [--image-size 256] [--points 20000]``.

Three ways to run each stage, side by side in one run on the same machine:
``sync`` (one process), ``local:2`` (a LocalCluster started by the command itself, as a
user would type it) and ``tcp://…`` (a cluster started beforehand with
``dask scheduler`` + ``dask worker --nworkers 2 --nthreads 1 --resources GPU=1``, as on a
real cluster; workers are restarted before each stage so their peak memory is per stage).
Every stage runs as ``partstad <stage>`` in its own wrapper process; peak RSS is
``getrusage(RUSAGE_CHILDREN).ru_maxrss`` of that wrapper (the largest single process: the
CLI or one LocalCluster worker) and, for the tcp cluster, the largest worker's own
``ru_maxrss``. Objects/min comes from the stage's own timing line ("(X s)", which for
``local:2`` includes starting the cluster) and, in brackets, from the wall time including
Python start-up.

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
import time
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


def start_cluster(work: Path, n_workers: int):
    """`dask scheduler` + `dask worker` processes, exactly as the docs start a real cluster."""
    from distributed import Client

    sched_file = work / "scheduler.json"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    procs = [
        subprocess.Popen(
            ["dask", "scheduler", "--scheduler-file", str(sched_file), "--port", "0", "--no-dashboard"],
            cwd=work,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    for _ in range(600):
        if sched_file.exists():
            break
        time.sleep(0.1)
    procs.append(
        subprocess.Popen(
            [
                "dask",
                "worker",
                "--scheduler-file",
                str(sched_file),
                "--nworkers",
                str(n_workers),
                "--nthreads",
                "1",
                "--resources",
                "GPU=1",
                "--no-dashboard",
            ],
            cwd=work,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    client = Client(scheduler_file=str(sched_file))
    client.wait_for_workers(n_workers, timeout=120)
    return procs, client


def _warm_up() -> None:
    import stages.cli  # noqa: F401  (imports every stage module, torch included)


def _worker_maxrss_kb() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def group_bytes(cache: Path, stage: str) -> dict[str, int]:
    store = cache / stage / "Chair.zarr"
    return {
        g.name: sum(f.stat().st_size for f in g.rglob("*") if f.is_file())
        for g in store.iterdir()
        if g.is_dir() and not g.name.startswith(".")
    }


def original_bytes(cache: Path) -> dict[str, list[tuple[float, float]]]:
    """Per object, (bytes at this run's H×W, bytes at 800×800) of the SPEC §9 files."""
    from stages.store import CategoryStore

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
    procs, client = start_cluster(work, args.workers)
    address = client.scheduler.address
    rows = []
    try:
        for stage in STAGES:  # the same stage with every scheduler, side by side
            a = run_stage(stage, work, "cache_sync", "sync")
            b = run_stage(stage, work, "cache_dist", dist)
            client.restart()  # fresh worker processes: per-stage peak memory
            client.run(_warm_up)  # imports done before the clock starts, as on a long-lived cluster
            c = run_stage(stage, work, "cache_tcp", address)
            c["maxrss_kb"] = max([c["maxrss_kb"], *client.run(_worker_maxrss_kb).values()])
            rows.append((stage, a, b, c))
    finally:
        client.close()
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)
    n = args.objects
    print(
        f"\n# bench_scale: {n} synthetic Chair objects, {args.points} points, {args.image_size}x{args.image_size} px, 10 views; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end"
    )
    print(f"\n| stage | sync obj/min | {dist} obj/min | tcp cluster ({args.workers} workers) obj/min | peak RSS sync / {dist} / tcp |")
    print("|---|---|---|---|---|")
    for stage, a, b, c in rows:
        cells = [f"{n / r['seconds'] * 60:.0f} ({n / r['wall'] * 60:.0f})" for r in (a, b, c)]
        rss = " / ".join(f"{r['maxrss_kb'] / 1024:.0f}" for r in (a, b, c))
        print(f"| {stage} | {cells[0]} | {cells[1]} | {cells[2]} | {rss} MB |")
    tot = [sum(r[i]["seconds"] for r in rows) for i in (1, 2, 3)]
    print(f"| **chain** | {n / tot[0] * 60:.0f} | {n / tot[1] * 60:.0f} | {n / tot[2] * 60:.0f} | |")
    print(
        f"\nspeed-up over sync for the chain: {dist} {tot[0] / tot[1]:.2f}x, tcp cluster {tot[0] / tot[2]:.2f}x. "
        "obj/min from the stage's own timing (in brackets: including process start-up); local:N includes starting the cluster."
    )

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
    print(
        f"| **all stages** | {fmt_bytes(total_ours)} | {fmt_bytes(total_orig)} | {total_orig / total_ours:.0f}x smaller | {fmt_bytes(sum(mean([x[1] for x in orig[k]]) for k in orig))} |"
    )
    from stages.store import CategoryStore

    det = CategoryStore(cache, "detect", "Chair")
    bs = [det.attrs(o)["n_boxes"] for o in det.object_ids()]
    print(
        f"\nboxes per object: mean {mean(bs):.0f} (min {min(bs)}, max {max(bs)}); original sizes exclude PNGs, pred.json and visualisations."
    )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
