"""Which ``adapt.trainable`` setting learns: loss on fixed training views before/after fine-tuning.

Measured, side by side in one run, with the tests' tiny random Grounding DINO
(tests/tiny_gdino.py) on renders of 2 synthetic Kettle shapes x 10 views: for each
``trainable`` in prompt / heads / all and each learning rate given, Grounding DINO's
training loss on the fixed training views (eval mode, :func:`pipeline.detect.adapt.fixed_views_loss`)
before fine-tuning, after the last epoch, and with the epoch the AP50 selection keeps; also the
last decoder layer's class (focal), box L1 and GIoU terms, since a falling total can be only the
class logits being rescaled. A ratio before/after of 1.0 means nothing was learned.

Run: python benchmarks/bench_adapt_learning.py [--epochs 20] [--size 128] [--lr 1e-4 1e-3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_adapt import kettle_views  # noqa: E402


def measure(epochs: int, size: int, lrs: list[float], modes: list[str], batch: int = 4, threads: int = 2) -> list[dict]:
    import torch

    from pipeline.detect.adapt import AdaptParams, fine_tune, fixed_views_loss
    from pipeline.detect.grounding_dino import load_grounding_dino
    from tests.tiny_gdino import save_tiny_gdino

    torch.set_num_threads(threads)
    train, names = kettle_views(size)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = save_tiny_gdino(Path(tmp) / "base", names, image_size=size)
        for lr in lrs:
            for mode in modes:
                model, proc = load_grounding_dino(base)
                before = fixed_views_loss(model, proc, train, names)
                last: dict = {}

                def at_epoch_end(e: dict, model=model, proc=proc, last=last) -> None:
                    if "step" not in e and e["epoch"] == epochs:  # the last epoch's weights, before selection
                        last.update(fixed_views_loss(model, proc, train, names))

                res = fine_tune(
                    model,
                    proc,
                    train,
                    train,
                    names,
                    AdaptParams(epochs=epochs, batch_size=batch, lr=lr, trainable=mode, seed=0),
                    progress=at_epoch_end,
                )
                chosen = fixed_views_loss(model, proc, train, names)  # the selected epoch's weights
                rows.append(
                    {
                        "trainable": mode,
                        "lr": lr,
                        "epochs": epochs,
                        "views": len(train),
                        "before": before,
                        "last_epoch": last,
                        "chosen": chosen,
                        "best_epoch": res.best_epoch,
                        "best_ap50": res.best_ap50,
                        "n_trainable": sum(p.numel() for n, p in model.named_parameters() if n in set(res.trainable_names)),
                        "seconds_train": round(res.seconds_train, 1),
                    }
                )
                r = rows[-1]
                terms = ", ".join(f"{k[5:]} {before[k]:.3f}->{last[k]:.3f}" for k in ("loss_ce", "loss_bbox", "loss_giou"))
                print(
                    f"trainable={mode:6s} lr={lr:g}: fixed-view loss {before['loss']:.1f} -> {last['loss']:.1f} after epoch {epochs} "
                    f"({before['loss'] / last['loss']:.1f}x; last decoder layer: {terms}); chosen epoch {res.best_epoch} "
                    f"(AP50 {res.best_ap50:.3f}) loss {chosen['loss']:.1f}; {r['n_trainable']} trainable, {r['seconds_train']} s",
                    flush=True,
                )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--lr", type=float, nargs="+", default=[1e-4, 1e-3])
    ap.add_argument("--modes", nargs="+", default=["prompt", "heads", "all"])
    args = ap.parse_args()
    print(json.dumps(measure(args.epochs, args.size, args.lr, args.modes), default=float))


if __name__ == "__main__":
    main()
