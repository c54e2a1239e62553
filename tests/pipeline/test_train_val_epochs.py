"""Validation of many epochs at once (pipeline.train.val_epochs) and the loop that defers its
validation: the same scores as one state at a time, the same curve and selection as the
per-object loop (tests/oracle_train.py) across several deferred runs of epochs."""

import math

import numpy as np
import pytest
import torch

import pipeline.train.loop as loop
from pipeline.model import NullLogit, WeightNet
from pipeline.train.loop import NonFiniteTraining, TrainParams, train_weight_net
from pipeline.train.stack import stacked_mious, stacks_by_parts
from pipeline.train.val_epochs import mious_many, probabilities_many
from tests.oracle_train import ref_train_weight_net
from tests.pipeline.test_train_stack import obj, trained_like


def _states(in_dim: int, seeds: list[int]) -> list[tuple[WeightNet, NullLogit]]:
    out = []
    for s in seeds:
        net, null = trained_like(in_dim, seed=s)
        with torch.no_grad():
            null.theta.fill_(1.0 + s)
            net.out.bias.fill_(0.1 * s - 0.2)
        out.append((net, null))
    return out


def test_many_states_score_as_each_one_alone():
    # two part counts (two stacks), a one-box object and an object without boxes
    objs = [obj(20), obj(21, n_parts=2), obj(22, n_boxes=1), obj(23, n_boxes=0), obj(24, n_parts=2)]
    stacks = stacks_by_parts(objs)
    states = _states(objs[0].x.shape[1], [3, 4, 5])
    W = torch.stack([n.cn.weight.detach() for n, _ in states])
    w_out = torch.stack([n.out.weight.detach()[0] for n, _ in states])
    b_out = torch.stack([n.out.bias.detach()[0] for n, _ in states])
    z_null = torch.stack([z().detach() for _, z in states])
    for _, st in stacks:  # every epoch's probabilities are the single-state pass's, bit for bit
        P = probabilities_many(W, w_out, b_out, z_null, st, 10.0, 1e-5)
        assert P.shape == (3, st.groups.n_sp, st.groups.n_parts + 1)
        for e, (net, null) in enumerate(states):
            assert torch.equal(P[e], st.probabilities(net, null().detach()))
    got = mious_many(stacks, W, w_out, b_out, z_null, 10.0, 1e-5)
    ref = np.stack([stacked_mious(n, z().detach(), stacks) for n, z in states])
    assert got.shape == (3, 5)
    np.testing.assert_array_equal(got, ref)  # NaN where no GT part, at the same places
    assert len({tuple(np.round(r[~np.isnan(r)], 6)) for r in got}) == 3  # the states score differently


def _curves(res):
    return np.array([e["loss"] for e in res.curve]), np.array([e["val_miou"] for e in res.curve])


@pytest.mark.parametrize("chunk", [1, 4, 16])
def test_deferred_validation_selects_like_the_per_object_loop(monkeypatch, chunk):
    """37 epochs: several deferred runs of epochs and a short last one; the same losses to
    float rounding, the same validation curve and the same selected epoch and weights."""
    monkeypatch.setattr(loop, "VAL_CHUNK", chunk)
    train = [obj(s) for s in range(4)] + [obj(5, n_boxes=1)]
    val = [obj(s) for s in (50, 51, 52)]
    params = TrainParams(epochs=37, lr=1e-2, batch_size=2)
    seen: list[dict] = []
    new = train_weight_net(train, val, params, progress=seen.append)
    old = ref_train_weight_net(train, val, params)
    (loss_new, val_new), (loss_old, val_old) = _curves(new), _curves(old)
    np.testing.assert_allclose(loss_new, loss_old, rtol=1e-5)
    np.testing.assert_array_equal(val_new, val_old)
    assert [e["epoch"] for e in seen] == list(range(38)) and seen == new.curve
    assert new.best_epoch == old.best_epoch > 0 and new.best_val_miou == old.best_val_miou
    assert len(set(val_new)) > 3  # the curve moves: the comparison means something
    assert new.theta_null == pytest.approx(old.theta_null, rel=1e-4)
    for k in ("cn.weight", "out.weight", "out.bias"):
        a, b = new.state_dict[k], old.state_dict[k]
        assert a.shape == b.shape and float((a - b).norm() / b.norm()) < 1e-4
    # the cn bias cancels in the normalisation: never trained here (the loop's Adam moves it by rounding noise)
    assert new.state_dict["cn.bias"].shape == old.state_dict["cn.bias"].shape and not new.state_dict["cn.bias"].any()


def test_the_same_run_gives_the_same_bits_whatever_the_chunk(monkeypatch):
    train, val = [obj(s) for s in range(4)], [obj(50), obj(51)]
    params = TrainParams(epochs=9, lr=1e-2, batch_size=2)
    runs = []
    for chunk in (1, 4):
        monkeypatch.setattr(loop, "VAL_CHUNK", chunk)
        runs.append(train_weight_net(train, val, params))
    a, b = runs
    assert a.curve == b.curve and a.best_epoch == b.best_epoch and a.theta_null == b.theta_null
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)


def test_no_validation_keeps_the_last_epoch(monkeypatch):
    monkeypatch.setattr(loop, "VAL_CHUNK", 4)
    res = train_weight_net([obj(0), obj(1)], [], TrainParams(epochs=6, lr=1e-2))
    assert res.best_epoch == 6 and math.isnan(res.best_val_miou)
    assert all(math.isnan(e["val_miou"]) for e in res.curve) and len(res.curve) == 7


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_a_failure_inside_a_deferred_run_reports_the_epochs_before_it(monkeypatch):
    """Weights that grow until they overflow (a negative weight decay multiplies them by 11 per
    step) fail at epoch k inside the second deferred run: epochs 0..k-1 are reported, k is not."""
    monkeypatch.setattr(loop, "VAL_CHUNK", 8)
    train, val = [obj(s) for s in range(4)], [obj(50)]
    seen: list[dict] = []
    with pytest.raises(NonFiniteTraining) as err:
        train_weight_net(train, val, TrainParams(epochs=30, lr=1e-2, weight_decay=-1e3, batch_size=2), progress=seen.append)
    k = err.value.epoch
    assert 8 < k < 16 and [e["epoch"] for e in seen] == list(range(k))
    assert all(math.isfinite(e["loss"]) for e in seen)
