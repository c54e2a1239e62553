"""Training that goes non-finite stops with the epoch named instead of returning a model.

Before, a NaN validation score never counted as an improvement, so a diverged run silently
returned the untrained epoch-0 state, which the stage then saved over the trained model.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline.lift import lift_object
from pipeline.train.loop import NonFiniteTraining, TrainParams, train_weight_net
from pipeline.train.objects import TrainObject
from tests.oracles import synthetic_scene

SCENE = dict(
    n_points=300,
    n_sp=20,
    n_views=4,
    n_parts=3,
    boxes_per_view=6,
    H=32,
    W=32,
    dilate=1,
    wrong_frac=0.4,
    feat_dim=4,
    drop_visible=0.2,
    wrong_kind="label",
    unlabeled_frac=0.0,
)


def make(seed: int) -> TrainObject:
    sc = synthetic_scene(seed=seed, **SCENE)
    L = lift_object(sc.sp, sc.visible, sc.uv, sc.xyxy, sc.box_view, sc.box_label, sc.masks, sem=sc.sem, n_parts=sc.n_parts)
    return TrainObject.from_lifted(
        L, sc.feat, sc.view_dirs, sc.xyxy, sc.H, sc.W, sem=sc.sem, small_part_flags=[False, True, False], object_id=f"toy{seed}"
    )


@pytest.fixture(scope="module")
def objs() -> tuple[list[TrainObject], list[TrainObject]]:
    return [make(s) for s in range(3)], [make(50)]


def _fail(objs, **kw) -> tuple[NonFiniteTraining, list[dict]]:
    seen: list[dict] = []
    with pytest.raises(NonFiniteTraining) as err:
        train_weight_net(*objs, TrainParams(epochs=6, **kw), progress=seen.append)
    return err.value, seen


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_a_diverging_learning_rate_stops_at_the_epoch_it_happens(objs):
    exc, seen = _fail(objs, lr=1e30)
    assert exc.epoch >= 1 and f"epoch {exc.epoch}" in str(exc)
    assert "nan" in str(exc) or "inf" in str(exc)
    # every epoch reported before the failure was finite; the failing one was never reported
    assert [e["epoch"] for e in seen] == list(range(exc.epoch))
    assert all(math.isfinite(e["loss"]) for e in seen)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_weight_decay_that_flips_the_weights_stops_on_the_loss(objs):
    exc, seen = _fail(objs, lr=1.0, weight_decay=1e6)
    assert exc.epoch >= 1 and "the loss is nan" in str(exc) and "step 1 of the epoch" in str(exc)
    assert len(seen) == exc.epoch


def test_a_starting_state_that_is_not_finite_stops_at_epoch_0(objs):
    exc, seen = _fail(objs, tau=1e39)  # float32 overflow of the null logit's initial value
    assert exc.epoch == 0 and "theta_null" in str(exc) and seen == []
    torch.manual_seed(0)
    good = train_weight_net(*objs, TrainParams(epochs=1))
    bad = {k: v.clone() for k, v in good.state_dict.items()}
    bad["out.weight"][0, 0] = math.nan
    with pytest.raises(NonFiniteTraining) as err:
        train_weight_net(*objs, TrainParams(epochs=1), init=(bad, good.theta_null))
    assert err.value.epoch == 0 and "out.weight" in str(err.value)
    with pytest.raises(NonFiniteTraining, match="theta_null"):
        train_weight_net(*objs, TrainParams(epochs=1), init=(good.state_dict, math.inf))


def test_finite_training_is_unchanged_by_the_checks(objs):
    """Same seed, same bits twice, every curve value finite (the checks only read)."""
    a = train_weight_net(*objs, TrainParams(epochs=3, lr=1e-2))
    b = train_weight_net(*objs, TrainParams(epochs=3, lr=1e-2))
    assert a.best_epoch == b.best_epoch and a.theta_null == b.theta_null
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert all(math.isfinite(e["loss"]) for e in a.curve) and np.isfinite(a.theta_null)
