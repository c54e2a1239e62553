"""Vectorised §7.7 scores and §7.8 loss (values and gradients) against loop references."""

import numpy as np
import pytest
import torch

from pipeline.loss import relaxed_iou, riou_loss
from pipeline.score import ScoreIndex, probabilities, scores_from_index, superpoint_scores
from tests.oracles import ref_riou_loss, ref_scores


def random_problem(seed, N=120, S=12, V=4, K=3, B=9, empty_view=True, n_invalid=3):
    """Random membership with overlapping masks, an empty view, invalid superpoints."""
    rng = np.random.default_rng(seed)
    sp = np.concatenate([np.arange(S), rng.integers(0, S, N - S)])
    box_view = rng.integers(0, V - 1 if empty_view else V, B)  # last view has no box
    box_label = rng.integers(0, K, B)
    member = rng.random((B, N)) < 0.35
    # same-view same-class overlap: duplicate a box with a shifted mask
    if B >= 2:
        box_view[1], box_label[1] = box_view[0], box_label[0]
        member[1] = member[0] | (rng.random(N) < 0.2)
    invalid = rng.choice(S, n_invalid, replace=False)
    member[:, np.isin(sp, invalid)] = False
    vis_count = rng.integers(1, 30, S)
    vis_count[invalid[:1]] = 0  # invisible superpoint
    b, p = np.nonzero(member)
    gt = rng.random((S, K + 1)) * (rng.random((S, K + 1)) < 0.6)
    gt[:, 0] += 1e-3
    gt /= gt.sum(1, keepdims=True)
    gt[:, K] = 0  # part K-1 absent from this object
    gt /= gt.sum(1, keepdims=True)
    sizes = np.bincount(sp, minlength=S)
    valid = np.zeros(S, bool)
    valid[np.unique(sp[p])] = True
    valid &= vis_count > 0
    return dict(
        sp=sp,
        box_view=box_view,
        box_label=box_label,
        member=member,
        point=p,
        box=b,
        vis_count=vis_count,
        gt=gt,
        sizes=sizes,
        valid=valid,
        V=V,
        K=K,
        B=B,
    )


def both(pr, w_np, theta):
    w1 = torch.tensor(w_np, dtype=torch.float64, requires_grad=True)
    t1 = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    w2 = w1.detach().clone().requires_grad_()
    t2 = t1.detach().clone().requires_grad_()
    Z1 = superpoint_scores(w1, pr["point"], pr["box"], pr["box_view"], pr["box_label"], pr["sp"], pr["vis_count"], pr["V"], pr["K"], t1)
    Z2 = ref_scores(w2, pr["member"], pr["box_view"], pr["box_label"], pr["sp"], pr["vis_count"], pr["V"], pr["K"], t2)
    return (w1, t1, Z1), (w2, t2, Z2)


@pytest.mark.parametrize("seed", range(4))
def test_scores_loss_and_gradients_equal_reference(seed):
    pr = random_problem(seed)
    rng = np.random.default_rng(100 + seed)
    w = rng.uniform(0, 12, pr["B"])
    (w1, t1, Z1), (w2, t2, Z2) = both(pr, w, 7.5)
    assert Z1.shape == (len(pr["sizes"]), pr["K"] + 1)
    np.testing.assert_allclose(Z1.detach().numpy(), Z2.detach().numpy(), atol=1e-5)
    gt = torch.tensor(pr["gt"])
    n = torch.tensor(pr["sizes"], dtype=torch.float64)
    valid = torch.tensor(pr["valid"])
    for absent in ("paper", "skip"):
        l1 = riou_loss(probabilities(Z1), gt, n, valid, absent)
        l2 = ref_riou_loss(torch.softmax(Z2, 1), gt, n, valid, absent)
        assert float(l1.detach()) == pytest.approx(float(l2.detach()), abs=1e-5)
    l1 = riou_loss(probabilities(Z1), gt, n, valid)
    l2 = ref_riou_loss(torch.softmax(Z2, 1), gt, n, valid)
    l1.backward()
    l2.backward()
    np.testing.assert_allclose(w1.grad.numpy(), w2.grad.numpy(), atol=1e-5)
    assert float(t1.grad) == pytest.approx(float(t2.grad), abs=1e-5)
    assert np.abs(w1.grad.numpy()).max() > 1e-6  # the comparison is not vacuous
    # a dead box (w = 0, ReLU off) changes nothing in the values
    w[2] = 0.0
    (_, _, Z1), (_, _, Z2) = both(pr, w, 7.5)
    np.testing.assert_allclose(Z1.detach().numpy(), Z2.detach().numpy(), atol=1e-5)


def test_invalid_rows_and_empty_view_and_null_column():
    pr = random_problem(7)
    w = torch.full((pr["B"],), 3.0, dtype=torch.float64)
    Z = superpoint_scores(w, pr["point"], pr["box"], pr["box_view"], pr["box_label"], pr["sp"], pr["vis_count"], pr["V"], pr["K"], 4.0)
    assert torch.all(Z[:, 0] == 4.0)
    has = np.zeros(len(pr["sizes"]), bool)
    has[np.unique(pr["sp"][pr["point"]])] = True
    assert torch.all(Z[torch.as_tensor(~has), 1:] == 0)
    # w ≡ 1 → coverage fraction ≤ 1 (one count per point, view and class)
    Z1 = superpoint_scores(
        torch.ones(pr["B"], dtype=torch.float64),
        pr["point"],
        pr["box"],
        pr["box_view"],
        pr["box_label"],
        pr["sp"],
        np.bincount(pr["sp"]) * pr["V"],
        pr["V"],
        pr["K"],
        0.0,
    )
    assert float(Z1[:, 1:].max()) <= 1.0 + 1e-9


def test_single_box_and_no_box():
    pr = random_problem(3, B=1)
    (w1, t1, Z1), (w2, t2, Z2) = both(pr, np.array([5.0]), 10.0)
    np.testing.assert_allclose(Z1.detach().numpy(), Z2.detach().numpy(), atol=1e-5)
    Z1[:, 1:].sum().backward()
    Z2[:, 1:].sum().backward()
    assert float(w1.grad[0]) == pytest.approx(float(w2.grad[0]), abs=1e-5)
    z = superpoint_scores(
        torch.zeros(0, dtype=torch.float64),
        np.zeros(0, int),
        np.zeros(0, int),
        np.zeros(0, int),
        np.zeros(0, int),
        pr["sp"],
        pr["vis_count"],
        pr["V"],
        pr["K"],
        2.0,
    )
    assert z.shape == (len(pr["sizes"]), pr["K"] + 1)
    assert torch.all(z[:, 1:] == 0) and torch.all(z[:, 0] == 2.0)


def test_index_compression_is_exact_and_float32_close():
    pr = random_problem(11, N=400, S=20, B=15)
    idx = ScoreIndex.build(pr["point"], pr["box"], pr["box_view"], pr["box_label"], pr["sp"], pr["vis_count"], pr["V"], pr["K"])
    assert idx.n_groups < len(np.unique((pr["point"] * pr["V"] + pr["box_view"][pr["box"]]) * pr["K"] + pr["box_label"][pr["box"]]))
    w = torch.tensor(np.random.default_rng(0).uniform(0, 10, pr["B"]))
    Zr = ref_scores(w, pr["member"], pr["box_view"], pr["box_label"], pr["sp"], pr["vis_count"], pr["V"], pr["K"], 1.0)
    Z32 = scores_from_index(w.float(), idx.to(torch.float32), 1.0)
    np.testing.assert_allclose(Z32.numpy(), Zr.numpy(), rtol=1e-5, atol=1e-4)


def test_loss_absent_parts_and_edge_cases():
    S, K = 4, 3
    gt = torch.tensor([[0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0]], dtype=torch.float64)
    n = torch.tensor([10.0, 5, 5, 2], dtype=torch.float64)
    valid = torch.ones(S, dtype=torch.bool)
    P = gt.clone().requires_grad_()  # perfect prediction; part 2 (column 3) absent
    r = relaxed_iou(P, gt, n, valid)
    np.testing.assert_allclose(r.detach().numpy(), [1, 1, 1, 0])
    assert float(riou_loss(P, gt, n, valid).detach()) == pytest.approx(1 / 3)  # absent part adds 1/K
    assert float(riou_loss(P, gt, n, valid, "skip").detach()) == pytest.approx(0.0)
    # the absent part's own term has zero gradient: move mass to it, only coupling counts
    P2 = torch.softmax(torch.randn(S, K + 1, dtype=torch.float64), 1).requires_grad_()
    r2 = relaxed_iou(P2, gt, n, valid)
    r2[3].backward()
    assert torch.all(P2.grad == 0)
    # no valid superpoint → every RIoU is 0 → loss 1 (paper) / 0 (skip)
    none = torch.zeros(S, dtype=torch.bool)
    assert float(riou_loss(P, gt, n, none).detach()) == pytest.approx(1.0)
    assert float(riou_loss(P, gt, n, none, "skip").detach()) == 0.0
    with pytest.raises(ValueError):
        riou_loss(P, gt, n, valid, "bogus")
