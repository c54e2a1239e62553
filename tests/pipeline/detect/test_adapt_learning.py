"""Adaptation that learns: the default trainable group, the fixed-view loss, and an epoch
selection that does not fall back to the base weights when AP50 ties (tiny random Grounding DINO)."""

from __future__ import annotations

import numpy as np
import pytest
import transformers  # noqa: F401

from pipeline.detect.adapt import LOSS_TERMS, AdaptDataError, AdaptParams, AdaptSample, fine_tune, fixed_views_loss
from pipeline.detect.grounding_dino import load_grounding_dino
from stages.config import AdaptConfig
from tests.tiny_gdino import save_tiny_gdino

PARTS = ("lid", "handle", "spout")


def _samples(n: int, size: int = 96, seed: int = 0) -> list[AdaptSample]:
    """Coloured rectangles on grey, one box per part, at random places."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = np.full((size, size, 3), 128, np.uint8)
        boxes, labels = [], []
        for k in range(len(PARTS)):
            x0, y0 = rng.integers(0, size - 30, 2)
            w, h = rng.integers(12, 30, 2)
            img[y0 : y0 + h, x0 : x0 + w] = (60 * (k + 1), 200 - 50 * k, 40 * k)
            boxes.append([x0, y0, x0 + w, y0 + h])
            labels.append(k)
        out.append(AdaptSample(img, np.asarray(boxes, np.float32), np.asarray(labels, np.int64), f"o{i}", 0))
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_gdino(tmp_path_factory.mktemp("gdino_learn"), PARTS, image_size=96)


def test_the_default_trains_every_parameter_in_the_stage_and_the_library():
    """`all` is the one group whose box terms fall at the default lr (docs/detector_weights.md)."""
    assert AdaptConfig().trainable == "all" == AdaptParams().trainable
    assert AdaptConfig().lr == AdaptParams().lr == 1e-4


def test_fixed_views_loss_is_deterministic_and_split_into_terms(tiny):
    model, proc = load_grounding_dino(tiny)
    views = _samples(3)
    a = fixed_views_loss(model, proc, views, PARTS, batch_size=2)
    b = fixed_views_loss(model, proc, views, PARTS, batch_size=2)
    assert set(a) == {"loss", *LOSS_TERMS} and a == b
    assert all(np.isfinite(v) and v > 0 for v in a.values())
    assert not model.training  # loaded in eval mode, left so
    with pytest.raises(AdaptDataError, match="no views"):
        fixed_views_loss(model, proc, [], PARTS)


def test_epochs_tied_on_ap50_go_to_the_lower_loss_not_to_the_base_weights(tiny):
    model, proc = load_grounding_dino(tiny)
    train = _samples(4)
    res = fine_tune(model, proc, train, [], PARTS, AdaptParams(epochs=3, batch_size=2, lr=1e-4, trainable="all", seed=0))
    aps = [e["val_ap50"] for e in res.curve]
    losses = [e["val_loss"] for e in res.curve]
    top = max(aps)
    tied = [i for i, a in enumerate(aps) if a == top]
    assert res.best_epoch == min(tied, key=lambda i: (losses[i], i))
    assert min(losses[1:]) < losses[0]  # training lowered the loss on these views
    assert res.best_epoch > 0 or aps[0] > max(aps[1:])  # the base weights are kept only when strictly better on AP50
    kept = fixed_views_loss(model, proc, train, PARTS, batch_size=AdaptParams().eval_batch_size)["loss"]
    assert kept == pytest.approx(losses[res.best_epoch], rel=1e-5)  # the chosen epoch's weights are in the model
