"""Detect + segment per object with random models of the real sizes (no weights downloaded).

Grounding DINO tiny / base are built from transformers configs (Swin-T / Swin-B backbone,
BERT-base text encoder, 900 queries), SAM vit_b / vit_l / vit_h from segment_anything's
registry with ``checkpoint=None``. Random weights give meaningless boxes and masks but the
real cost: the same layers, shapes and input sizes as the released checkpoints (the
detector's boxes are not used: SAM gets ``--boxes-per-view`` random boxes per view).

Per model: seconds per object (V views x S px) with the configured batch size / precision,
the same with one view per forward (the ratio is measured side by side in this run),
objects per hour for detect + segment of the pair, and peak memory (CUDA: allocated by
torch; CPU: the process's resident set, sampled).

``--sizes small`` runs tiny random models of the same code paths (for a CPU smoke run);
``--sizes real`` the real sizes. Target on one modern GPU: <= 3 s per object for
Grounding DINO base + SAM vit_h at 10 views x 800 px.

    # CPU smoke run (about 1-2 min on 2 busy cores)
    python benchmarks/bench_real_models.py --device cpu --sizes small --views 2 --image-size 256
    # the GPU run (keep the defaults: 10 views x 800 px, batch all views, bf16 autocast)
    python benchmarks/bench_real_models.py --device cuda --sizes real
"""

from __future__ import annotations

import argparse
import resource
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.tiny_gdino: the tests' tiny architecture

PARTS = ("arm", "back", "leg", "seat", "wheel")


# -- models -----------------------------------------------------------------------------------
def _tokenizer():
    """A BERT-base-sized WordPiece vocabulary (30522 ids) with the special tokens where BERT has them."""
    from transformers import BertTokenizer

    special = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]", 1012: ".", 1029: "?"}
    vocab = [f"[unused{i}]" for i in range(30522)]
    for i, w in special.items():
        vocab[i] = w
    for k, w in enumerate(PARTS):
        vocab[2000 + k] = w
    return BertTokenizer(vocab={w: i for i, w in enumerate(vocab)})


def gdino_config(name: str):
    """transformers config of Grounding DINO ``tiny`` / ``base`` (IDEA-Research releases) or ``small`` (tests' size)."""
    from transformers import GroundingDinoConfig, SwinConfig

    from tests.tiny_gdino import tiny_gdino_config

    if name == "tiny":  # GroundingDinoConfig's defaults are Grounding DINO-T (Swin-T, BERT-base)
        return GroundingDinoConfig()
    if name == "base":
        swin = SwinConfig(
            embed_dim=128,
            depths=[2, 2, 18, 2],
            num_heads=[4, 8, 16, 32],
            window_size=12,
            image_size=384,
            out_features=["stage2", "stage3", "stage4"],
        )
        return GroundingDinoConfig(backbone_config=swin)
    if name == "small":
        return tiny_gdino_config(30522, num_queries=100)
    raise ValueError(name)


def build_gdino(name: str, image_size: int, device: str, batch_size: int | None, precision: str):
    import torch
    import transformers  # noqa: F401  (before segment_anything's torchvision shim)
    from transformers import GroundingDinoForObjectDetection, GroundingDinoProcessor
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import GroundingDinoImageProcessorPil

    from pipeline.detect.grounding_dino import GroundingDinoDetector

    torch.manual_seed(0)
    model = GroundingDinoForObjectDetection(gdino_config(name)).eval()
    longest = max(1333, image_size)  # the released processor: shortest edge 800, longest 1333
    proc = GroundingDinoProcessor(
        GroundingDinoImageProcessorPil(size={"shortest_edge": min(800, image_size), "longest_edge": longest}), _tokenizer()
    )
    return GroundingDinoDetector((model, proc), device=device, score_threshold=0.0, batch_size=batch_size, precision=precision)


def build_sam(name: str, device: str, batch_size: int | None, precision: str):
    import torch

    from pipeline.segment.sam import SamMasker, _import_segment_anything, build_tiny_sam

    torch.manual_seed(0)
    if name == "small":
        sam = build_tiny_sam(img_size=1024, patch_size=16, dim=32)
    else:
        sam = _import_segment_anything().sam_model_registry[name](checkpoint=None)
    return SamMasker(sam, device=device, batch_size=batch_size, precision=precision)


def n_params(module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


# -- measuring --------------------------------------------------------------------------------
@contextmanager
def peak_memory(device: str) -> Iterator[dict]:
    """{'peak_gib': ...} after the block: CUDA max allocated, or the sampled process RSS on CPU."""
    import torch

    out: dict = {}
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        yield out
        torch.cuda.synchronize()
        out["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        return
    import psutil

    proc, stop, peak = psutil.Process(), threading.Event(), [0]

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            stop.wait(0.02)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        yield out
    finally:
        stop.set()
        t.join()
        out["peak_gib"] = max(peak[0], proc.memory_info().rss) / 2**30


def timed(fn: Callable[[], object], device: str, repeats: int) -> float:
    """Best of ``repeats`` seconds after one warm-up call (CUDA synchronised)."""
    import torch

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    fn()
    best = float("inf")
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t)
    return best


def scene(views: int, size: int, boxes_per_view: int):
    from pipeline.detect.types import Detections

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(views, size, size, 3), dtype=np.uint8)
    n = views * boxes_per_view
    xy = rng.uniform(0, size * 0.7, (n, 2))
    wh = rng.uniform(size * 0.05, size * 0.3, (n, 2))
    det = Detections(
        np.concatenate([xy, xy + wh], 1), np.repeat(np.arange(views), boxes_per_view), np.zeros(n), np.ones(n), np.zeros((n, 4))
    )
    return images, det


def bench(kind: str, name: str, args, images, det) -> dict:
    """Seconds per object batched and one view per forward, peak memory, parameter count."""
    import gc

    import torch

    build = (
        (lambda bs: build_gdino(name, args.image_size, args.device, bs, args.precision))
        if kind == "detect"
        else (lambda bs: build_sam(name, args.device, bs, args.precision))
    )
    m = build(args.batch_size)
    run = (lambda m=m: m.detect_object(images, PARTS)) if kind == "detect" else (lambda m=m: m.masks_for_object(images, det))
    with peak_memory(args.device) as mem:
        t = timed(run, args.device, args.repeats)
    row = {
        "kind": kind,
        "model": name,
        "params_m": n_params(m.model if kind == "detect" else m.sam),
        "s": t,
        "batch": m.batch_size,
        "precision": m.precision,
        "peak_gib": mem["peak_gib"],
    }
    if args.compare_unbatched and m.batch_size > 1:
        m.batch_size = 1
        row["s_unbatched"] = timed(run, args.device, args.repeats)
    del m
    gc.collect()
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    ap.add_argument("--sizes", choices=("small", "real"), default="small")
    ap.add_argument("--detectors", default=None, help="comma list of tiny,base (real) / small; default: all of --sizes")
    ap.add_argument("--sams", default=None, help="comma list of vit_b,vit_l,vit_h (real) / small; default: all of --sizes")
    ap.add_argument("--views", type=int, default=10)
    ap.add_argument("--image-size", type=int, default=800)
    ap.add_argument("--boxes-per-view", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=None, help="views per forward (default: all on CUDA, 1 on CPU)")
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    ap.add_argument("--repeats", type=int, default=1, help="timed runs after one warm-up (best is kept)")
    ap.add_argument("--no-compare-unbatched", dest="compare_unbatched", action="store_false", help="skip the one-view-per-forward timing")
    args = ap.parse_args()

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible to torch")
    dets = (args.detectors or ("tiny,base" if args.sizes == "real" else "small")).split(",")
    sams = (args.sams or ("vit_b,vit_l,vit_h" if args.sizes == "real" else "small")).split(",")
    images, det = scene(args.views, args.image_size, args.boxes_per_view)
    dev = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    print(
        f"# bench_real_models  ({dev}; torch {torch.__version__}; {args.views} views x {args.image_size} px, "
        f"{args.boxes_per_view} boxes/view; random weights, real shapes: {args.sizes})",
        flush=True,
    )
    rows = []
    for kind, names in (("detect", dets), ("segment", sams)):
        for name in names:
            rows.append(bench(kind, name, args, images, det))
            r = rows[-1]
            extra = f"  one view/forward {r['s_unbatched']:7.2f} s ({r['s_unbatched'] / r['s']:.2f}x)" if "s_unbatched" in r else ""
            print(
                f"{kind:7s} {name:6s} {r['params_m']:7.1f} M params  batch {r['batch']:2d} {r['precision']:4s}  "
                f"{r['s']:7.2f} s/object  peak {r['peak_gib']:6.2f} GiB{extra}",
                flush=True,
            )
    print("# detect + segment per object (configured batch / precision)")
    for d in (r for r in rows if r["kind"] == "detect"):
        for s in (r for r in rows if r["kind"] == "segment"):
            total = d["s"] + s["s"]
            print(f"{d['model']:6s} + {s['model']:6s}  {total:7.2f} s/object  {3600 / total:8.0f} objects/hour")
    if args.device.startswith("cuda"):
        print(f"# peak torch allocation over the run: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    else:
        print(f"# peak RSS of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
