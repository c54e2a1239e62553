"""Cost of the 2D model components per object (CPU), measured side by side in one run.

- tiny random-weight SAM through the real SamPredictor path: seconds per view (encoder)
  and per box (batched decoder), at the tests' size (img 128) and the real input geometry
  (img 1024, 64x64 embeddings, but a 1-layer 32-d encoder: a lower bound for ViT-B/H);
- SIMULATED detector + SIMULATED SAM (oracle backends) and rectangle masks per object of
  10 views x 800 x 800 with a synthetic pix2pt;
- the import backend reading one 10 x 800 x 800 object in the original PartSTAD layout.

Run: python benchmarks/bench_models.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_sam(repeats: int, n_views: int = 10, boxes_per_view: int = 8, size: int = 800) -> list[tuple[str, float, str]]:
    import torch

    from pipeline.detect.types import Detections
    from pipeline.segment.sam import SamMasker, build_tiny_sam

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n_views, size, size, 3), dtype=np.uint8)
    xy = rng.uniform(0, size * 0.7, (n_views * boxes_per_view, 2))
    wh = rng.uniform(20, size * 0.3, (n_views * boxes_per_view, 2))
    n = n_views * boxes_per_view
    det = Detections(
        np.concatenate([xy, xy + wh], 1), np.repeat(np.arange(n_views), boxes_per_view), np.zeros(n), np.ones(n), np.zeros((n, 4))
    )
    rows = []
    for img_size in (128, 1024):
        masker = SamMasker(build_tiny_sam(img_size=img_size, patch_size=16))
        with torch.inference_mode():
            _, emb = masker.masks_for_object(images, det)  # warm-up
            t_full = _best(lambda: masker.masks_for_object(images, det), repeats)
            t_dec = _best(lambda: masker.masks_for_object(images, det, embeddings=emb), repeats)
        enc_per_view = (t_full - t_dec) / n_views
        rows.append((f"tiny SAM img{img_size}: encoder per view", enc_per_view, "s"))
        rows.append((f"tiny SAM img{img_size}: decoder per box ({boxes_per_view}/view batch)", t_dec / n, "s"))
        rows.append((f"tiny SAM img{img_size}: object, fresh / cached embeddings", t_full / t_dec, "ratio"))
    return rows


def bench_oracle(repeats: int, n_views: int = 10, size: int = 800) -> tuple[list[tuple[str, float, str]], object]:
    from pipeline.detect.oracle import oracle_detect
    from pipeline.detect.synthetic import synthetic_scene
    from pipeline.segment.box import box_masks
    from pipeline.segment.oracle import oracle_masks

    sc = synthetic_scene(
        n_views=n_views, height=size, width=size, part_names=("arm", "back", "leg", "seat", "wheel"), instances_per_part=(1, 4), seed=0
    )
    det, _ = oracle_detect(sc.pix2pt, sc.sem, sc.ins, sc.part_names, seed=0)
    t_det = _best(lambda: oracle_detect(sc.pix2pt, sc.sem, sc.ins, sc.part_names, seed=0), repeats)
    t_seg = _best(lambda: oracle_masks(det, sc.pix2pt, sc.sem, sc.ins, seed=0), repeats)
    t_box = _best(lambda: box_masks(det, size, size), repeats)
    rows = [
        (f"oracle detect per object ({n_views}x{size}^2, {len(det)} boxes)", t_det, "s"),
        ("oracle segment per object", t_seg, "s"),
        ("oracle detect + segment per object", t_det + t_seg, "s"),
        ("box masks per object", t_box, "s"),
        ("oracle segment / box masks", t_seg / max(t_box, 1e-9), "ratio"),
    ]
    return rows, (sc, det)


def bench_import(repeats: int, scene_det) -> list[tuple[str, float, str]]:
    from PIL import Image

    from pipeline.detect.imported import object_paths, read_partstad_preprocessed
    from pipeline.segment.oracle import oracle_masks

    sc, det = scene_det
    V, H, W = sc.pix2pt.shape
    N = sc.sem.shape[0]
    with tempfile.TemporaryDirectory() as tmp:
        P = object_paths(tmp, "Chair", "0")
        P["rendered_img"].mkdir(parents=True)
        P["pc_idx"].parent.mkdir(parents=True, exist_ok=True)
        P["pred"].parent.mkdir(parents=True)
        P["mask"].parent.mkdir(parents=True)
        for v in range(V):
            rgba = np.concatenate([sc.rgb[v], np.full((H, W, 1), 255, np.uint8)], 2)
            Image.fromarray(rgba, "RGBA").save(P["rendered_img"] / f"{v}.png")
        np.save(P["pc_idx"], sc.pix2pt.astype(np.int64))
        np.save(P["screen_coords"], np.zeros((V, N, 2), np.float32))
        sp = np.empty(N // 8, dtype=object)
        sp[:] = [list(range(i * 8, (i + 1) * 8)) for i in range(N // 8)]
        np.save(P["superpoint"], sp, allow_pickle=True)
        xyxy = det.xyxy.astype(float)
        recs = [
            {
                "image_id": int(det.view[b]),
                "category_id": int(det.label[b]) + 1,
                "bbox": [xyxy[b, 0], xyxy[b, 1], xyxy[b, 2] - xyxy[b, 0], xyxy[b, 3] - xyxy[b, 1]],
                "score": float(det.score[b]),
            }
            for b in range(len(det))
        ]
        P["pred"].write_text(json.dumps(recs))
        np.savez_compressed(P["feature"], feature=det.feat)
        np.savez_compressed(P["mask"], mask=oracle_masks(det, sc.pix2pt, sc.sem, sc.ins).astype(np.float64))
        size_mb = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file()) / 2**20
        t = _best(lambda: read_partstad_preprocessed(tmp, "Chair", "0"), repeats)
    return [(f"import backend read per object ({len(det)} boxes, {size_mb:.0f} MB on disk)", t, "s")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import torch

    rows = bench_sam(args.repeats)
    orows, scene_det = bench_oracle(args.repeats)
    rows += orows
    rows += bench_import(args.repeats, scene_det)
    print(f"# bench_models  (torch {torch.__version__}, {torch.get_num_threads()} threads, best of {args.repeats})")
    w = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{w}}  {'value':>10}  unit")
    for name, val, unit in rows:
        txt = f"{val * 1000:10.2f}  ms" if unit == "s" else f"{val:10.2f}  x"
        print(f"{name:<{w}}  {txt}")


if __name__ == "__main__":
    main()
