"""Cost of few-shot detector adaptation (pipeline/detect/adapt.py), measured on this CPU.

Measured, side by side in one run, with the tests' tiny random Grounding DINO (d_model 32,
ResNet-8/16/32/64 backbone, 20 queries; tests/tiny_gdino.py) on renders of synthetic Kettle
shapes: seconds per training epoch per view (forward + transformers loss + backward + AdamW)
for `trainable` = prompt / heads / all, validation seconds per view, and the bytes of the tensors
autograd keeps for backward in one step at batch 1 and batch 4 (-> activation bytes per image).

Memory formula (fp32, AdamW):  weights 4 P  +  grads and two moments 12 T  +  activations A x batch
(P all parameters, T trainable ones, A per image; :func:`pipeline.detect.adapt.memory_estimate_bytes`).

Also printed: an ESTIMATE (not a measurement: no GPU here, no real weights offline) for
grounding-dino-tiny / -base on a GPU with 8 few-shot shapes x 10 views at 800 px.

Run: python benchmarks/bench_adapt.py [--epochs 3] [--size 128]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

#: Parameter counts of the released checkpoints (Hugging Face model cards: IDEA-Research/grounding-dino-tiny /
#: -base): used only for the estimate below.
REAL_MODELS = {"grounding-dino-tiny": 172e6, "grounding-dino-base": 233e6}
#: ASSUMPTIONS of the GPU estimate (not measured here): training throughput of Grounding DINO at 800 px
#: (forward + backward) on one A100/H100-class GPU, and activation memory per 800-px image with the
#: Swin backbone trainable (all) or frozen (heads/prompt, no backbone activations kept).
ASSUMED_IMAGES_PER_S = {"grounding-dino-tiny": 8.0, "grounding-dino-base": 5.0}
ASSUMED_ACT_GB_PER_IMAGE = {"all": 3.0, "heads": 1.0, "prompt": 1.0}


def kettle_views(size: int, n_shapes: int = 2, n_views: int = 10):
    from pipeline.cameras import PAPER_VIEWS, make_cameras
    from pipeline.data.synthetic import generate_shape
    from pipeline.detect.adapt import build_dataset
    from pipeline.meta import part_names
    from pipeline.render.render import render_views

    cams = make_cameras(views=PAPER_VIEWS[:n_views], image_size=size)
    objs = []
    for i in range(n_shapes):
        c = generate_shape("Kettle", i, n_points=8000)
        r = render_views(c.xyz, c.rgb, cams, backend="numpy")
        objs.append((c.object_id, r.rgb, r.pix2pt, c.sem, c.ins))
    names = list(part_names("Kettle"))
    return build_dataset(objs, len(names)), names


def bench(epochs: int, size: int) -> dict:
    import torch

    from pipeline.detect.adapt import AdaptParams, fine_tune, memory_estimate_bytes
    from pipeline.detect.grounding_dino import load_grounding_dino
    from tests.tiny_gdino import save_tiny_gdino

    torch.set_num_threads(2)
    train, names = kettle_views(size)
    out: dict = {"views": len(train), "image_px": size, "epochs": epochs, "threads": torch.get_num_threads(), "modes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        base = save_tiny_gdino(Path(tmp) / "base", names, image_size=size)
        for mode in ("prompt", "heads", "all"):
            model, proc = load_grounding_dino(base)
            res = fine_tune(model, proc, train, train, names, AdaptParams(epochs=epochs, batch_size=4, lr=1e-3, trainable=mode))
            n_params = sum(p.numel() for p in model.parameters())
            out["modes"][mode] = {
                "s_per_epoch_per_view": res.seconds_train / epochs / len(train),
                "eval_s_per_view": res.seconds_eval / (epochs + 1) / len(train),
                "n_params": n_params,
                "n_trainable": len(res.trainable_names)
                and sum(p.numel() for n, p in model.named_parameters() if n in set(res.trainable_names)),
            }
        # activation memory: bytes of the tensors autograd saves for backward in one step, batch 1 and 4
        from pipeline.detect.adapt import _encode, to_target  # noqa: PLC2701 - benchmark of internals

        model, proc = load_grounding_dino(base)
        model.train()
        text = " . ".join(names) + " ."
        saved = {}
        for bs in (1, 4):
            total = [0]
            seen: set[int] = set()

            def pack(t, total=total, seen=seen):
                if t.data_ptr() not in seen:
                    seen.add(t.data_ptr())
                    total[0] += t.numel() * t.element_size()
                return t

            batch = train[:bs]
            inputs = _encode(proc, batch, text, "cpu")
            labels = [{k: torch.as_tensor(v) for k, v in to_target(s).items()} for s in batch]
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                loss = model(**inputs, labels=labels).loss
            loss.backward()
            saved[bs] = total[0]
        act = (saved[4] - saved[1]) / 3
        out["saved_tensor_bytes"] = saved
        out["activation_bytes_per_image_cpu"] = act
        out["memory_formula_tiny_all_bs4_mb"] = (
            memory_estimate_bytes(out["modes"]["all"]["n_params"], out["modes"]["all"]["n_trainable"], act, 4) / 2**20
        )
    return out


def gpu_estimate(shapes: int = 8, views: int = 10, epochs: int = 20, val_views: int = 40) -> list[str]:
    lines = ["ESTIMATE (assumed throughput and activation sizes, NOT measured): 8 shapes x 10 views at 800 px, batch 4"]
    for name, P in REAL_MODELS.items():
        ips = ASSUMED_IMAGES_PER_S[name]
        per_epoch = shapes * views / ips + val_views / (3 * ips)  # validation: forward only (~3x faster)
        for mode, T in (("all", P), ("heads", 0.03 * P)):
            gb = (4 * P + 12 * T) / 1e9 + ASSUMED_ACT_GB_PER_IMAGE[mode] * 4
            lines.append(
                f"  {name} trainable={mode}: ~{per_epoch:.0f} s/epoch, ~{epochs * per_epoch / 60:.0f} min for {epochs} epochs; "
                f"~{gb:.0f} GB GPU memory (weights {4 * P / 1e9:.1f} GB + optimiser {12 * T / 1e9:.1f} GB + activations)"
            )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args()
    r = bench(args.epochs, args.size)
    print(
        f"tiny random Grounding DINO, CPU ({r['threads']} threads), {r['views']} views of {r['image_px']} px, batch 4, {r['epochs']} epochs:"
    )
    for mode, m in r["modes"].items():
        print(
            f"  trainable={mode:6s}: {1000 * m['s_per_epoch_per_view']:.1f} ms per epoch per view (train), "
            f"{1000 * m['eval_s_per_view']:.1f} ms per view (validation); {m['n_trainable']}/{m['n_params']} parameters train"
        )
    print(
        f"  activations ~{r['activation_bytes_per_image_cpu'] / 2**20:.1f} MB per image (tensors saved for backward, batch 4 vs 1); "
        f"formula 4P + 12T + A*batch -> {r['memory_formula_tiny_all_bs4_mb']:.1f} MB for all/batch 4"
    )
    for line in gpu_estimate():
        print(line)
    print(json.dumps(r, default=float))


if __name__ == "__main__":
    main()
