"""Geometry benchmark: renderers side by side, superpoint speed and quality.

    python benchmarks/bench_geometry.py [--points 100000] [--size 800] [--repeats 3]

Prints one table. Rendering: the numpy splat (disc = PyTorch3D parity, square = the GL
footprint) and pyrender (EGL/OSMesa offscreen, if a context exists) on the same cloud and
cameras, interleaved, median of ``--repeats`` runs, in ms per view; plus their pix2pt
agreement. Superpoints: seconds per 100k points, and purity (share of points whose
superpoint's majority label is their own) with superpoints per 100 points, on the
synthetic generator's shapes (indices 0-3 at 10k and 20k points, and the acceptance set:
the test split, indices 12-19, at 20k) and on the shared PartNet-Mobility sample if
present. Targets (docs/stack.md): numpy <= 60 ms/view, pyrender <= 40 ms/view, superpoints
<= 2 s / 100k, purity >= 0.97 at <= 1 per 100 points.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.cameras import make_cameras  # noqa: E402
from pipeline.render import render_views  # noqa: E402
from pipeline.render.gl_setup import gl_available, gl_error  # noqa: E402
from pipeline.superpoints import compute_superpoints  # noqa: E402

MOBILITY = Path(os.environ.get("PARTSTAD_MOBILITY_SAMPLE", "data/mobility/40147/point_sample"))  # optional: a PartNet-Mobility object
CATEGORIES = ("Chair", "Table", "StorageFurniture", "Bottle", "Kettle", "Lamp")


def purity(sp: np.ndarray, labels: np.ndarray) -> float:
    lab = np.unique(labels, return_inverse=True)[1]
    m = np.zeros((sp.max() + 1, lab.max() + 1), np.int64)
    np.add.at(m, (sp, lab), 1)
    return float(m.max(axis=1).sum() / len(sp))


def cloud(n: int, category: str = "Chair", index: int = 0):
    """A synthetic shape when the generator exists, else points on a box + rod."""
    try:
        from pipeline.data.synthetic import generate_shape

        c = generate_shape(category, index, n_points=n, seed=0)
        return c.xyz, c.rgb, c.sem.astype(np.int64), f"synthetic {category}/{index}"
    except ImportError:
        rng = np.random.default_rng(0)
        m = n * 3 // 4
        face = rng.integers(0, 3, m)
        half = np.array([0.5, 0.3, 0.4])
        box = rng.uniform(-1, 1, (m, 3)) * half
        box[np.arange(m), face] = rng.choice([-1.0, 1.0], m) * half[face]
        t = rng.uniform(0, 2 * np.pi, n - m)
        rod = np.stack([0.08 * np.cos(t), rng.uniform(0.3, 0.9, n - m), 0.08 * np.sin(t)], axis=1)
        xyz = np.concatenate([box, rod])
        xyz = (xyz - xyz.mean(0)) / np.linalg.norm(xyz - xyz.mean(0), axis=1).max()
        lab = np.r_[np.zeros(m, int), np.ones(n - m, int)]
        rgb = np.where(lab[:, None] == 0, [200, 40, 40], [40, 40, 200]).astype(np.uint8)
        return xyz.astype(np.float32), rgb, lab, "box + rod"


def bench_render(n: int, size: int, repeats: int) -> list[tuple[str, str]]:
    xyz, rgb, _, name = cloud(n)
    cams = make_cameras(image_size=size)
    nv = cams.n_views
    runs = {"numpy disc": [], "numpy square": []}
    cpu = {k: [] for k in ("numpy disc", "numpy square", "pyrender")}
    has_gl = gl_available()
    if has_gl:
        runs["pyrender"] = []
        render_views(xyz[:100], rgb[:100], cams, backend="pyrender")  # context + shaders warm
    render_views(xyz[:100], rgb[:100], cams, backend="numpy")
    results = {}
    for _ in range(repeats):  # interleaved so that machine load hits all alike
        for key in runs:
            kw = {"backend": "pyrender"} if key == "pyrender" else {"backend": "numpy", "footprint": key.split()[1]}
            t, c = time.perf_counter(), time.process_time()
            results[key] = render_views(xyz, rgb, cams, **kw)
            runs[key].append((time.perf_counter() - t) * 1000 / nv)
            cpu[key].append((time.process_time() - c) * 1000 / nv)
    rows = [("render cloud", f"{name}, {n} points, {nv} views, {size}x{size}, radius {0.005 * size / 2:g} px")]
    for key, ms in runs.items():
        rows.append(
            (
                f"{key} ms/view",
                f"{statistics.median(ms):.1f} wall, "
                f"{statistics.median(cpu[key]):.1f} CPU  (wall runs: " + ", ".join(f"{m:.1f}" for m in ms) + ")",
            )
        )
    if has_gl:
        a, b = results["numpy square"], results["pyrender"]
        both = (a.pix2pt >= 0) & (b.pix2pt >= 0)
        agree = float((a.pix2pt[both] == b.pix2pt[both]).mean())
        ratio = statistics.median(runs["pyrender"]) / statistics.median(runs["numpy disc"])
        rows.append(("pyrender / numpy disc time", f"{ratio:.2f}"))
        rows.append(("pix2pt agreement pyrender vs numpy square", f"{100 * agree:.3f} % of {both.sum()} common fg px"))
    else:
        rows.append(("pyrender", f"skipped: no offscreen GL ({gl_error()})"))
    return rows


def bench_superpoints(n_big: int) -> list[tuple[str, str]]:
    rows = []
    xyz, rgb, lab, name = cloud(n_big)
    compute_superpoints(xyz[:2000], rgb[:2000])
    times, cpu = [], []
    for _ in range(2):
        t, c = time.perf_counter(), time.process_time()
        res = compute_superpoints(xyz, rgb)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    per100k = min(times) * 100_000 / n_big
    rows.append(
        (
            "superpoints s / 100k points",
            f"{per100k:.2f} wall, {min(cpu) * 100_000 / n_big:.2f} CPU  "
            f"({name}, {n_big} points; "
            f"purity {purity(res.sp, lab):.4f}, {100 * res.n_superpoints / n_big:.2f} per 100 pts)",
        )
    )
    try:
        from pipeline.data.synthetic import generate_shape  # noqa: F401

        # indices 0-3 (few-shot shapes) at two densities, and the acceptance set: the
        # test split (indices 12-19) at the data stage's default 20k points
        for n, indices in ((10000, range(4)), (20000, range(4)), (20000, range(12, 20))):
            pur, cnt = [], []
            per_cat = []
            for cat in CATEGORIES:
                p_c = []
                for index in indices:
                    x, c, lb, _ = cloud(n, cat, index)
                    r = compute_superpoints(x, c)
                    p_c.append(purity(r.sp, lb))
                    cnt.append(r.n_superpoints / n * 100)
                pur += p_c
                per_cat.append(f"{cat} {np.mean(p_c):.3f}")
            rows.append(
                (
                    f"synthetic {n // 1000}k pts, idx {indices.start}-{indices.stop - 1}: purity / sp per 100",
                    f"{np.mean(pur):.4f} (min {np.min(pur):.3f}) / {np.mean(cnt):.2f}  [{len(pur)} shapes; {', '.join(per_cat)}]",
                )
            )
    except ImportError:
        rows.append(("synthetic shapes", "skipped: pipeline.data.synthetic missing"))
    if MOBILITY.exists():
        a = np.loadtxt(MOBILITY / "sample-points-all-pts-nor-rgba-10000.txt")
        lb = np.loadtxt(MOBILITY / "sample-points-all-label-10000.txt").astype(np.int64)
        x = a[:, :3] - a[:, :3].mean(0)
        x /= np.linalg.norm(x, axis=1).max()
        r = compute_superpoints(x, a[:, 6:9].astype(np.uint8))
        rows.append(
            (
                "mobility 40147 (leaf labels): purity / sp per 100",
                f"{purity(r.sp, lb):.4f} / {100 * r.n_superpoints / len(x):.2f}  ({r.n_superpoints} sp, {len(np.unique(lb))} leaf parts)",
            )
        )
        try:
            from pipeline.data.mobility import read_mobility_object

            obj = read_mobility_object(MOBILITY.parent)
            r = compute_superpoints(obj.xyz, obj.rgb)
            rows.append(
                (
                    "mobility 40147 (semantic labels): purity / sp per 100",
                    f"{purity(r.sp, obj.sem):.4f} / {100 * r.n_superpoints / len(obj.xyz):.2f}",
                )
            )
        except ImportError:
            pass
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=800)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import os

    print(f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (other processes skew wall times)")
    rows = bench_render(args.points, args.size, args.repeats) + bench_superpoints(args.points)
    width = max(len(k) for k, _ in rows)
    print(f"{'measure':<{width}}  value")
    print("-" * (width + 60))
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
