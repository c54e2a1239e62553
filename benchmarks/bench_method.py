"""Benchmark of the method at array level (lift, vote, loss, training, inference).

Run: ``python benchmarks/bench_method.py [--epochs 400] [--objects 8]``. Everything is
measured side by side in one run on synthetic objects of realistic size (20k points,
~300 superpoints, ~100 boxes, 10 views, 800×800 masks; :func:`tests.oracles.synthetic_scene`):

1. score + loss forward/backward: vectorised (:mod:`pipeline.score`, :mod:`pipeline.loss`)
   vs the literal loop reference of :mod:`tests.oracles` and vs a dense torch version of the
   official formulation ((B, N) weighted masks, max per view and part) — the fair baseline;
2. training: ``objects`` train + ``objects`` validation objects × ``epochs`` (target ≤ 60 s
   for 8 × 400 on a 2-core CPU);
3. per-object inference: lift + predict + labels + instances (target ≤ 1 s), and PartSLIP.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.oracles

from pipeline.lift import lift_object, whole_object_valid  # noqa: E402
from pipeline.loss import riou_loss  # noqa: E402
from pipeline.partslip import partslip_instances, partslip_semantic, partstad_instances  # noqa: E402
from pipeline.score import ScoreIndex, probabilities, scores_from_index  # noqa: E402
from pipeline.train.checkpoint import load_net  # noqa: E402
from pipeline.train.decode import labels_from_probs, predict  # noqa: E402
from pipeline.train.loop import TrainParams, train_weight_net  # noqa: E402
from pipeline.train.objects import TrainObject  # noqa: E402
from tests.oracles import ref_riou_loss, ref_scores, synthetic_scene  # noqa: E402

SMALL = [False, True, False, False]
REALISTIC = dict(n_points=20000, n_sp=300, n_views=10, n_parts=4, boxes_per_view=13, H=800, W=800, dilate=3, feat_dim=256, wrong_frac=0.2)


def timeit(fn, repeat: int = 1) -> float:
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat


def prepare(seed: int):
    sc = synthetic_scene(seed=seed, **REALISTIC)
    L = lift_object(sc.sp, sc.visible, sc.uv, sc.xyxy, sc.box_view, sc.box_label, sc.masks, sem=sc.sem, n_parts=4)
    obj = TrainObject.from_lifted(L, sc.feat, sc.view_dirs, sc.xyxy, sc.H, sc.W, sem=sc.sem, small_part_flags=SMALL)
    return sc, L, obj


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=400)
    ap.add_argument("--objects", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows: list[tuple[str, str, str]] = []

    sc, L, obj = prepare(0)
    rows.append(("object", f"N={L.n_points} S={L.n_sp} V={L.n_views} B={L.n_boxes} nnz={L.point.size}", ""))
    t_lift = timeit(lambda: lift_object(sc.sp, sc.visible, sc.uv, sc.xyxy, sc.box_view, sc.box_label, sc.masks, sem=sc.sem, n_parts=4), 3)
    rows.append(("lift_object (mask mode)", f"{t_lift * 1e3:.1f} ms", ""))

    # 1. score + loss forward/backward
    rng = np.random.default_rng(0)
    w_np = rng.uniform(5, 15, L.n_boxes)
    gt = torch.tensor(L.gt, dtype=torch.float64)
    n_s = torch.tensor(L.sp_size, dtype=torch.float64)
    valid = torch.tensor(L.valid)
    dense = np.zeros((L.n_boxes, L.n_points), bool)
    dense[L.box, L.point] = True

    def ref_step():
        w = torch.tensor(w_np, requires_grad=True)
        Z = ref_scores(w, dense, L.box_view, L.box_label, L.sp, L.vis_count, L.n_views, 4, torch.tensor(10.0))
        ref_riou_loss(torch.softmax(Z, 1), gt, n_s, valid).backward()
        return w.grad

    dense_t = torch.tensor(dense, dtype=torch.float64)
    key = torch.as_tensor(L.box_view * 4 + L.box_label, dtype=torch.long)
    sp_t = torch.as_tensor(L.sp, dtype=torch.long)
    inv_vis = 1.0 / (torch.as_tensor(L.vis_count, dtype=torch.float64) + 1e-6)

    def dense_step():
        """The official formulation: dense (B, N) weighted masks, max per (view, part), sum per superpoint."""
        w = torch.tensor(w_np, requires_grad=True)
        M = w[:, None] * dense_t  # (B, N)
        m = torch.zeros(L.n_views * 4, L.n_points, dtype=torch.float64)
        m = m.scatter_reduce(0, key[:, None].expand(-1, L.n_points), M, reduce="amax", include_self=True)
        per_point = m.view(L.n_views, 4, L.n_points).sum(0).T  # (N, K)
        Zp = torch.zeros(L.n_sp, 4, dtype=torch.float64).index_add(0, sp_t, per_point) * inv_vis[:, None]
        Z = torch.cat([torch.full((L.n_sp, 1), 10.0, dtype=torch.float64), Zp], 1)
        riou_loss(probabilities(Z), gt, n_s, valid).backward()
        return w.grad

    index = ScoreIndex.from_lifted(L)

    def vec_step(idx=index):
        w = torch.tensor(w_np, requires_grad=True)
        Z = scores_from_index(w, idx, torch.tensor(10.0, dtype=torch.float64))
        riou_loss(probabilities(Z), gt, n_s, valid).backward()
        return w.grad

    def vec_step_build():
        return vec_step(ScoreIndex.from_lifted(L))

    g_ref, g_vec, g_dense = ref_step(), vec_step(), dense_step()
    err = float((g_ref - g_vec).abs().max())
    err_dense = float((g_dense - g_vec).abs().max())
    t_ref = timeit(ref_step, 1)
    t_dense = timeit(dense_step, 10)
    t_vec = timeit(vec_step, 200)
    t_vec_b = timeit(vec_step_build, 20)
    rows.append(("score+loss fwd+bwd, loop reference", f"{t_ref * 1e3:.1f} ms", ""))
    rows.append(
        (
            "score+loss fwd+bwd, dense torch (official formulation)",
            f"{t_dense * 1e3:.1f} ms",
            f"max |grad_w difference| vs vectorised {err_dense:.1e}",
        )
    )
    rows.append(
        (
            "score+loss fwd+bwd, vectorised (index prebuilt)",
            f"{t_vec * 1e3:.3f} ms",
            f"{t_ref / t_vec:.0f}x faster than loop, {t_dense / t_vec:.1f}x faster than dense torch",
        )
    )
    rows.append(("score+loss fwd+bwd, vectorised incl. index build", f"{t_vec_b * 1e3:.2f} ms", f"{t_ref / t_vec_b:.0f}x faster"))
    rows.append(("  max |grad_w difference|", f"{err:.1e}", f"{index.n_groups} groups from {L.point.size} entries"))

    # 2. training
    t0 = time.perf_counter()
    objs = [obj] + [prepare(s)[2] for s in range(1, 2 * args.objects)]
    rows.append(
        (f"prepare {2 * args.objects} objects (scene+lift+index)", f"{time.perf_counter() - t0:.1f} s", "synthetic scenes dominate")
    )
    tr, va = objs[: args.objects], objs[args.objects :]
    t0 = time.perf_counter()
    res = train_weight_net(tr, va, TrainParams(epochs=args.epochs))
    t_train = time.perf_counter() - t0
    rows.append(
        (
            f"train {args.objects} objects x {args.epochs} epochs (+val {len(va)})",
            f"{t_train:.1f} s",
            f"target <= 60 s; best epoch {res.best_epoch}, val mIoU {res.best_val_miou:.3f}",
        )
    )

    # 3. inference + instances
    net = load_net(res)

    def infer_from_lifted():
        P = predict(net, res.theta_null, obj)
        lab = labels_from_probs(P, L.valid, SMALL)
        return partstad_instances(lab, P, L, sc.xyz, sc.uv, sc.visible, sc.xyxy)

    def infer_from_raw():
        L2 = lift_object(sc.sp, sc.visible, sc.uv, sc.xyxy, sc.box_view, sc.box_label, sc.masks, n_parts=4)
        o2 = TrainObject.from_lifted(L2, sc.feat, sc.view_dirs, sc.xyxy, sc.H, sc.W, small_part_flags=SMALL)
        P = predict(net, res.theta_null, o2)
        lab = labels_from_probs(P, L2.valid, SMALL)
        return partstad_instances(lab, P, L2, sc.xyz, sc.uv, sc.visible, sc.xyxy)

    def partslip_full():
        Lb = lift_object(sc.sp, sc.visible, sc.uv, sc.xyxy, sc.box_view, sc.box_label, None, mode="box", n_parts=4)
        sem = partslip_semantic(Lb, whole_object_valid(sc.uv, sc.xyxy, Lb.box_view), SMALL)
        return partslip_instances(sem, Lb, sc.xyz, sc.uv, sc.visible, sc.xyxy)

    t_inf = timeit(infer_from_lifted, 5)
    t_raw = timeit(infer_from_raw, 3)
    t_ps = timeit(partslip_full, 3)
    n_inst = len(infer_from_lifted().instance_label)
    rows.append(("PartSTAD predict+labels+instances (lifted)", f"{t_inf * 1e3:.1f} ms", f"{n_inst} instances"))
    rows.append(("PartSTAD lift+predict+labels+instances", f"{t_raw * 1e3:.1f} ms", "target <= 1 s"))
    rows.append(("PartSLIP box lift+semantic+instances", f"{t_ps * 1e3:.1f} ms", ""))

    width = max(len(r[0]) for r in rows)
    wv = max(len(r[1]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>{wv}}  note")
    print("-" * (width + wv + 40))
    for name, val, note in rows:
        print(f"{name:<{width}}  {val:>{wv}}  {note}")


if __name__ == "__main__":
    main()
