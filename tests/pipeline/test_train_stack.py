"""Stacked training (pipeline.train.stack) against the per-object loop it replaced
(tests/oracle_train.py): scores, losses, gradients, validation mIoU, whole training runs."""

import math

import numpy as np
import pytest
import torch

from pipeline.lift import lift_object
from pipeline.model import NullLogit, WeightNet
from pipeline.score import GroupScores, ScoreIndex, scores_from_groups, scores_from_index
from pipeline.train.decode import labels_from_probs, predict, sp_miou
from pipeline.train.loop import TrainParams, train_weight_net, validation_miou
from pipeline.train.objects import TrainObject
from pipeline.train.stack import stacked_losses, stacked_mious, stacks_by_parts
from tests.oracle_train import ref_object_loss, ref_train_weight_net, ref_validation_miou
from tests.oracles import synthetic_scene

SCENE = dict(
    n_points=500,
    n_sp=25,
    n_views=5,
    boxes_per_view=6,
    H=40,
    W=40,
    dilate=1,
    wrong_frac=0.4,
    feat_dim=4,
    drop_visible=0.2,
    wrong_kind="label",
    unlabeled_frac=0.1,
)


def obj(seed: int, n_parts: int = 3, n_boxes: int | None = None) -> TrainObject:
    """A synthetic object whose feature 0 flags wrong boxes; ``n_boxes`` keeps only the first ones."""
    sc = synthetic_scene(seed=seed, n_parts=n_parts, **SCENE)
    sc.feat[:, 1] = 1 - sc.feat[:, 0]
    keep = slice(None) if n_boxes is None else slice(0, n_boxes)
    L = lift_object(
        sc.sp, sc.visible, sc.uv, sc.xyxy[keep], sc.box_view[keep], sc.box_label[keep], sc.masks[keep], sem=sc.sem, n_parts=n_parts
    )
    return TrainObject.from_lifted(
        L,
        sc.feat[keep],
        sc.view_dirs,
        sc.xyxy[keep],
        sc.H,
        sc.W,
        sem=sc.sem,
        small_part_flags=[i % 2 == 1 for i in range(n_parts)],
        object_id=f"toy{seed}",
    )


def trained_like(in_dim: int, seed: int = 1) -> tuple[WeightNet, NullLogit]:
    """A network away from its initialisation (so the context normalisation matters)."""
    torch.manual_seed(seed)
    net, null = WeightNet(in_dim), NullLogit(init=3.0)
    with torch.no_grad():
        net.cn.weight.normal_(0, 0.05)
        net.cn.bias.normal_(0, 0.05)
        net.out.weight.normal_(0, 0.5)
    return net, null


def test_group_scores_equal_the_score_index_per_object():
    objs = [obj(s) for s in range(3)]
    index = ScoreIndex.concat([o.index for o in objs], [o.x.shape[0] for o in objs])
    groups = GroupScores.from_index(index)
    rng = np.random.default_rng(0)
    ws = [torch.as_tensor(rng.uniform(0, 12, o.x.shape[0]), dtype=torch.float32) for o in objs]
    Z = scores_from_groups(torch.cat(ws), groups, 7.5)
    ref = torch.cat([scores_from_index(w, o.index, 7.5) for w, o in zip(ws, objs)])
    assert Z.shape == ref.shape == (sum(o.index.n_sp for o in objs), 4)
    torch.testing.assert_close(Z, ref, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError):
        ScoreIndex.concat([objs[0].index, obj(9, n_parts=2).index], [1, 1])


@pytest.mark.parametrize("absent_parts", ["paper", "skip"])
def test_stacked_losses_and_gradients_equal_the_per_object_loop(absent_parts):
    # a one-box object (its context normalisation is 0) and a part absent from one object's GT
    objs = [obj(0), obj(1), obj(2, n_boxes=1), obj(3, n_boxes=4)]
    net, null = trained_like(objs[0].x.shape[1])
    ref_net, ref_null = trained_like(objs[0].x.shape[1])
    got = stacked_losses(net, null(), stacks_by_parts(objs), absent_parts)
    ref = torch.stack([ref_object_loss(ref_net, ref_null(), o, absent_parts) for o in objs])
    assert got.shape == (4,)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-7)
    got.mean().backward()
    ref.mean().backward()
    for (name, p), q in zip(net.named_parameters(), ref_net.parameters()):
        if name == "cn.bias":  # cancels in the normalisation: exactly no gradient, the loop's is rounding noise
            assert p.grad is None and float(q.grad.abs().max()) < 1e-6 * float(ref_net.cn.weight.grad.abs().max())
            continue
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6 * float(q.grad.abs().max()))
    torch.testing.assert_close(null.theta.grad, ref_null.theta.grad, rtol=1e-5, atol=1e-8)


def test_stacked_validation_equals_the_per_object_mious():
    objs = [obj(s) for s in (20, 21, 22)] + [obj(23, n_boxes=0)]
    net, null = trained_like(objs[0].x.shape[1], seed=4)
    zn = float(null().detach())
    got = stacked_mious(net, zn, stacks_by_parts(objs))
    ref = [sp_miou(labels_from_probs(predict(net, null.theta.detach(), o), o.valid.numpy(), o.small_flags), o.label_counts) for o in objs]
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    assert len(set(np.round(got, 6))) > 1  # the objects score differently
    np.testing.assert_allclose(stacked_mious(net, zn, stacks_by_parts(objs, max_objects=3)), got, rtol=1e-12)  # split stacks
    assert validation_miou(net, zn, objs) == pytest.approx(ref_validation_miou(net, zn, objs), rel=1e-12)


def _curves(res):
    return np.array([e["loss"] for e in res.curve]), np.array([e["val_miou"] for e in res.curve])


@pytest.mark.parametrize("batch,absent_parts", [(1, "paper"), (2, "paper"), (3, "skip"), (8, "paper")])
def test_training_equals_the_per_object_loop(batch, absent_parts):
    """Same mini-batches, order, optimiser steps and selection: losses per epoch to float
    rounding and the same selected epoch (short runs: rounding cannot grow much yet)."""
    train = [obj(s) for s in range(5)] + [obj(5, n_boxes=1)]
    val = [obj(s) for s in (50, 51, 52)]
    params = TrainParams(epochs=15, lr=1e-2, batch_size=batch, absent_parts=absent_parts)
    new, old = train_weight_net(train, val, params), ref_train_weight_net(train, val, params)
    (loss_new, val_new), (loss_old, val_old) = _curves(new), _curves(old)
    np.testing.assert_allclose(loss_new, loss_old, rtol=1e-5)
    np.testing.assert_array_equal(val_new, val_old)
    assert new.best_epoch == old.best_epoch and new.best_val_miou == old.best_val_miou
    assert new.best_epoch > 0 and len(set(val_new)) > 3  # the curve moves: the comparison means something
    assert new.theta_null == pytest.approx(old.theta_null, rel=1e-4)
    # Adam turns rounding-level differences of near-zero gradients into whole steps for a few
    # elements: the weights agree as a whole, not element by element
    for k in ("cn.weight", "out.weight"):
        a, b = new.state_dict[k], old.state_dict[k]
        assert float((a - b).norm() / b.norm()) < 1e-4


def test_objects_with_different_part_counts_train_like_the_loop():
    """A network shared across categories sees objects with different K in one mini-batch."""
    train = [obj(0, 3), obj(1, 2), obj(2, 3), obj(3, 2)]
    val = [obj(60, 3), obj(61, 2)]
    params = TrainParams(epochs=6, lr=1e-2, batch_size=2)
    new, old = train_weight_net(train, val, params), ref_train_weight_net(train, val, params)
    np.testing.assert_allclose(_curves(new)[0], _curves(old)[0], rtol=1e-5)
    np.testing.assert_array_equal(_curves(new)[1], _curves(old)[1])
    assert new.best_epoch == old.best_epoch
    assert not math.isnan(new.best_val_miou)
