"""Training loop, checkpoint selection, inference decoding and ablations (SPEC §7.9-7.11)."""

import json
import math

import numpy as np
import pytest
import torch

from pipeline.lift import lift_object
from pipeline.metrics import object_miou
from pipeline.model import WeightNet, z_null_value
from pipeline.partslip import semantic_scores
from pipeline.train.ablations import masks_without_weights
from pipeline.train.checkpoint import canonical_safetensors, load_net, load_weights, save_weights
from pipeline.train.decode import labels_from_probs, labels_without_threshold, predict
from pipeline.train.decode import sp_miou as _sp_miou
from pipeline.train.loop import TrainParams, TrainResult, object_loss, train_weight_net, validation_miou
from pipeline.train.objects import TrainObject
from tests.oracles import ref_threshold_labels, synthetic_scene

SCENE = dict(
    n_points=600,
    n_sp=30,
    n_views=6,
    n_parts=3,
    boxes_per_view=8,
    H=48,
    W=48,
    dilate=1,
    wrong_frac=0.4,
    feat_dim=4,
    drop_visible=0.2,
    wrong_kind="label",
    unlabeled_frac=0.0,
)


def make(seed, reveal=True, pos_enc=True, **kw):
    sc = synthetic_scene(seed=seed, **{**SCENE, **kw})
    if not reveal:  # the "wrong" flag becomes noise
        sc.feat[:, 0] = np.random.default_rng(seed).random(len(sc.feat)) < 0.4
    sc.feat[:, 1] = 1 - sc.feat[:, 0]
    L = lift_object(sc.sp, sc.visible, sc.uv, sc.xyxy, sc.box_view, sc.box_label, sc.masks, sem=sc.sem, n_parts=sc.n_parts)
    obj = TrainObject.from_lifted(
        L,
        sc.feat,
        sc.view_dirs,
        sc.xyxy,
        sc.H,
        sc.W,
        pos_enc=pos_enc,
        sem=sc.sem,
        small_part_flags=[False, True, False],
        object_id=f"toy{seed}",
    )
    return obj, sc, L


def test_two_epoch_training_curve_selection_and_weights_file(tmp_path):
    train = [make(s)[0] for s in range(3)]
    val = [make(s)[0] for s in (50, 51)]
    seen = []
    res = train_weight_net(train, val, TrainParams(epochs=2, lr=1e-2), progress=seen.append)
    assert [e["epoch"] for e in res.curve] == [0, 1, 2] and seen == res.curve  # epoch 0 = untrained
    assert all(set(e) == {"epoch", "loss", "val_miou"} for e in res.curve)
    vals = [e["val_miou"] for e in res.curve]
    assert res.best_epoch == int(np.argmax(vals)) and res.best_val_miou == max(vals)
    assert res.best_epoch > 0  # this toy task is learnable: training beats the untrained state
    # the selected weights reproduce the selected validation score
    assert validation_miou(load_net(res), z_null_value(res.theta_null), val) == pytest.approx(res.best_val_miou)
    # weights moved away from the seeded initialisation; θ_null moved from τ
    torch.manual_seed(0)
    init = WeightNet(train[0].x.shape[1])
    path = tmp_path / "w.safetensors"
    save_weights(path, res, {"category": "Toy"})
    net, theta, meta = load_weights(path)
    assert meta["category"] == "Toy" and meta["best_epoch"] == str(res.best_epoch)
    assert theta == pytest.approx(res.theta_null) and theta != 10.0
    assert not torch.allclose(net.out.weight, init.out.weight)
    torch.testing.assert_close(net.cn.weight, res.state_dict["cn.weight"])
    P = predict(net, theta, val[0])
    assert P.shape == (val[0].index.n_sp, 4) and P.dtype == np.float32
    np.testing.assert_allclose(P.sum(1), 1.0, atol=1e-5)


def test_the_untrained_state_is_a_candidate_and_wins_ties():
    """Epoch 0 (the seeded initialisation, θ_null = τ) is a checkpoint candidate; a later epoch
    replaces it only when strictly better. With zero learning rates every epoch ties with it."""
    train = [make(s)[0] for s in range(3)]
    val = [make(s)[0] for s in (70, 71)]
    res = train_weight_net(train, val, TrainParams(epochs=4, lr=0.0, lr_null=0.0))
    vals = [e["val_miou"] for e in res.curve]
    assert [e["epoch"] for e in res.curve] == [0, 1, 2, 3, 4] and len(set(vals)) == 1
    assert res.best_epoch == 0 and res.best_val_miou == vals[0] and res.theta_null == 10.0
    torch.manual_seed(0)
    init = WeightNet(train[0].x.shape[1])
    for k, v in init.state_dict().items():
        torch.testing.assert_close(res.state_dict[k], v)
    # the epoch-0 loss is the untrained mean per-object loss on the training objects
    with torch.no_grad():
        ref = np.mean([float(object_loss(init, torch.tensor(10.0), o)) for o in train])
    assert res.curve[0]["loss"] == pytest.approx(ref, rel=1e-5)


def test_training_can_start_from_given_weights():
    """init=(state, θ_null): epoch 0 is that state (fine-tuning a shared network)."""
    train = [make(s)[0] for s in range(3)]
    val = [make(s)[0] for s in (70, 71)]
    first = train_weight_net(train, val, TrainParams(epochs=5, lr=1e-2))
    again = train_weight_net(train, val, TrainParams(epochs=3, lr=0.0, lr_null=0.0, seed=5), init=(first.state_dict, first.theta_null))
    assert again.curve[0]["val_miou"] == pytest.approx(validation_miou(load_net(first), z_null_value(first.theta_null), val))
    assert again.best_epoch == 0 and again.theta_null == pytest.approx(first.theta_null)
    for k, v in first.state_dict.items():
        torch.testing.assert_close(again.state_dict[k], v)


def test_loss_decreases_and_no_validation_keeps_last_epoch():
    train = [make(s)[0] for s in range(2)]
    res = train_weight_net(train, [], TrainParams(epochs=15, lr=1e-2, batch_size=1))
    assert len(res.curve) == 16 and res.best_epoch == 15
    assert math.isnan(res.curve[0]["val_miou"]) and math.isnan(res.best_val_miou)
    assert res.curve[-1]["loss"] < res.curve[0]["loss"] - 0.1
    with pytest.raises(ValueError):
        train_weight_net([], [], TrainParams(epochs=1))


def test_training_learns_to_downweight_revealed_wrong_boxes():
    """Toy problem: 40 % of boxes carry a wrong label; feature 0 says which.

    Trained weights must separate wrong from right boxes, and validation mIoU must beat
    both the untrained network and a control run whose flag is noise.
    """
    results = {}
    for reveal in (True, False):
        tr = [make(s, reveal)[0] for s in range(4)]
        va_full = [make(s, reveal) for s in range(100, 104)]
        va = [v[0] for v in va_full]
        res = train_weight_net(tr, va, TrainParams(epochs=60, lr=1e-2))
        net = load_net(res)
        w = np.concatenate([net(o.x).detach().numpy() for o in va])
        wrong = np.concatenate([v[1].wrong for v in va_full])
        results[reveal] = (res, w[wrong].mean() / w[~wrong].mean())
    res, ratio = results[True]
    assert res.best_val_miou > res.curve[0]["val_miou"] + 0.2
    assert res.best_val_miou > results[False][0].best_val_miou + 0.05
    assert ratio < 0.8 and results[False][1] > 0.85


def test_superpoint_level_miou_equals_point_level_metric():
    obj, sc, L = make(3)
    rng = np.random.default_rng(0)
    for _ in range(5):
        lab = rng.integers(-1, 3, L.n_sp)
        assert _sp_miou(lab, obj.label_counts) == pytest.approx(object_miou(lab[sc.sp], sc.sem, 3))


def test_label_decoding_rules():
    rng = np.random.default_rng(1)
    P = rng.dirichlet(np.ones(4) * 0.3, 300)
    P[0] = [0.5, 0.5, 0, 0]  # exactly 0.5 counts thanks to the 1e-4 tolerance
    valid = rng.random(300) < 0.8
    small = [False, True, True]
    got = labels_from_probs(P, valid, small)
    ref = np.where(valid, ref_threshold_labels(P[:, 1:], small, 0.5 - 1e-4), -1)
    np.testing.assert_array_equal(got, ref)
    assert labels_from_probs(P[:1], [True], small)[0] == 0
    wo = labels_without_threshold(np.array([[0.4, 0.4, 0.2], [0.2, 0.4, 0.4], [0.6, 0.2, 0.2]]), [True] * 3)
    np.testing.assert_array_equal(wo, [0, 1, -1])  # ties go to the higher index; null → -1
    assert labels_without_threshold(np.array([[0.1, 0.9]]), [False])[0] == -1


def test_masks_without_weights_ablation():
    obj, sc, L = make(5, wrong_frac=0.0)
    cov = semantic_scores(L)
    assert cov.shape == (L.n_sp, 3) and cov.max() <= 1.0 + 1e-9 and cov.max() > 0.5
    lab = masks_without_weights(L, [False, False, False])
    np.testing.assert_array_equal(lab, np.where(L.valid, ref_threshold_labels(cov, [False] * 3, 0.5), -1))
    hit = lab[sc.sp] >= 0
    assert (lab[sc.sp][hit] == sc.sem[hit]).mean() > 0.8


def test_box_mode_training_objects_and_no_boxes():
    sc = synthetic_scene(seed=7, **SCENE)
    Lb = lift_object(sc.sp, sc.visible, sc.uv, sc.xyxy, sc.box_view, sc.box_label, None, mode="box", min_visible=1, sem=sc.sem, n_parts=3)
    ob = TrainObject.from_lifted(Lb, sc.feat, sc.view_dirs, sc.xyxy, sc.H, sc.W, sem=sc.sem)
    L0 = lift_object(
        sc.sp,
        sc.visible,
        sc.uv,
        np.zeros((0, 4)),
        np.zeros(0, int),
        np.zeros(0, int),
        np.zeros((0, sc.H, sc.W), bool),
        sem=sc.sem,
        n_parts=3,
    )
    o0 = TrainObject.from_lifted(L0, np.zeros((0, sc.feat.shape[1])), sc.view_dirs, np.zeros((0, 4)), sc.H, sc.W, sem=sc.sem)
    res = train_weight_net([ob, o0], [o0], TrainParams(epochs=2, lr=1e-3))
    assert all(np.isfinite(e["loss"]) for e in res.curve)
    P = predict(load_net(res), res.theta_null, o0)
    assert np.all(labels_from_probs(P, L0.valid, [False] * 3) == -1)


def test_weights_file_bytes_do_not_depend_on_metadata_order(tmp_path):
    """safetensors writes metadata from a hash map (random order per process); the canonical
    header makes the file a function of the tensors and the metadata items only."""
    state = {"out.weight": torch.arange(6.0).reshape(1, 6), "cn.bias": torch.ones(6), "cn.weight": torch.eye(6), "out.bias": torch.zeros(1)}
    res = TrainResult(state_dict=state, theta_null=9.5, best_epoch=3, best_val_miou=0.25)
    meta = {"variant": "partstad", "tau": "10.0", "config": '{"a": 1}', "eps": "1e-05", "zeta": "é"}
    save_weights(tmp_path / "a.safetensors", res, meta)
    save_weights(
        tmp_path / "b.safetensors",
        TrainResult(dict(reversed(state.items())), 9.5, best_epoch=3, best_val_miou=0.25),
        dict(reversed(meta.items())),
    )
    a, b = (tmp_path / "a.safetensors").read_bytes(), (tmp_path / "b.safetensors").read_bytes()
    assert a == b
    n = int.from_bytes(a[:8], "little")
    header = a[8 : 8 + n].decode("utf-8").rstrip(" ")
    assert n % 8 == 0 and header == json.dumps(json.loads(header), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    net, theta, got = load_weights(tmp_path / "a.safetensors")
    assert theta == 9.5 and got == {**meta, "best_epoch": "3", "best_val_miou": "0.25"}
    torch.testing.assert_close(net.cn.weight, torch.eye(6))
    assert canonical_safetensors({"x": torch.ones(2)}, {"b": "1", "a": "2"}) == canonical_safetensors(
        {"x": torch.ones(2)}, {"a": "2", "b": "1"}
    )


def test_retraining_writes_the_same_bytes(tmp_path):
    """Same inputs and seed → bit-identical weights and a byte-identical weights file."""
    train = [make(s)[0] for s in range(3)]
    val = [make(s)[0] for s in (50, 51)]
    paths = []
    for i in range(2):
        res = train_weight_net(train, val, TrainParams(epochs=3, lr=1e-2))
        paths.append(tmp_path / f"w{i}.safetensors")
        save_weights(paths[-1], res, {"category": "Toy", "config": json.dumps({"b": 1, "a": 2}, sort_keys=True)})
    assert paths[0].read_bytes() == paths[1].read_bytes()
