"""WeightNet / NullLogit (SPEC §7.5-7.6) and the box positional encoding (§7.4, bugs §11.3-11.5 fixed)."""

import numpy as np
import pytest
import torch

from pipeline.model import NullLogit, WeightNet, z_null_value
from pipeline.posenc import (
    POSENC_DIM,
    box_inputs,
    box_query,
    input_dim,
    positional_encoding,
    view_directions,
)


def test_weight_net_init_gives_tau_and_shapes():
    torch.manual_seed(0)
    net = WeightNet(20)
    assert net.cn.weight.std().item() == pytest.approx(1e-4, rel=0.2)
    assert torch.all(net.cn.bias == 0) and torch.all(net.out.bias == 0)
    w = net(torch.randn(7, 20))
    assert w.shape == (7,)
    assert torch.allclose(w, torch.full((7,), 10.0), atol=0.05)


def test_context_normalisation_statistics():
    torch.manual_seed(1)
    net = WeightNet(6, eps=0.0)
    x = torch.randn(50, 6)
    h = net.cn(x)
    hn = (h - h.mean(0)) / h.std(0, correction=0)
    # with identity output weights on the normalised branch, o = Σ ReLU(h̃) + Σ x
    with torch.no_grad():
        net.out.weight.fill_(1.0)
    expected = torch.relu(10 + (x + torch.relu(hn)).sum(1))
    torch.testing.assert_close(net(x), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("B", [0, 1])
def test_weight_net_small_contexts_have_no_nan(B):
    net = WeightNet(5)
    x = torch.randn(B, 5, requires_grad=True)
    w = net(x)
    assert w.shape == (B,)
    assert not torch.isnan(w).any()
    if B:
        w.sum().backward()
        assert all(not torch.isnan(p.grad).any() for p in net.parameters())
        assert not torch.isnan(x.grad).any()
        with torch.no_grad():  # B = 1: h̃ = 0 exactly, so w = τ + out(x)
            assert float(w[0]) == pytest.approx(10.0 + float(net.out(x).squeeze()), abs=1e-5)


def test_constant_channel_gives_no_nan():
    net = WeightNet(4)
    x = torch.ones(6, 4, requires_grad=True)
    net(x).sum().backward()
    assert not torch.isnan(net.cn.weight.grad).any()


def test_weight_net_state_dict_roundtrip():
    net = WeightNet(9)
    net2 = WeightNet.from_state_dict(net.state_dict())
    x = torch.randn(4, 9)
    torch.testing.assert_close(net(x), net2(x))


def test_null_logit_floor():
    null = NullLogit()
    assert float(null().detach()) == 10.0
    with torch.no_grad():
        null.theta.fill_(-3.0)
    assert float(null().detach()) == pytest.approx(5e-4)
    assert z_null_value(-1.0) == 5e-4 and z_null_value(2.5) == 2.5


def test_positional_encoding_layout():
    q = np.arange(7, dtype=np.float64)[None] / 10
    g = positional_encoding(q)
    assert g.shape == (1, POSENC_DIM) == (1, 147)
    np.testing.assert_allclose(g[0, :7], q[0], atol=1e-7)
    np.testing.assert_allclose(g[0, 7:14], np.sin(q[0]), atol=1e-6)
    np.testing.assert_allclose(g[0, 14:21], np.cos(q[0]), atol=1e-6)
    np.testing.assert_allclose(g[0, -14:-7], np.sin(512 * q[0]), atol=1e-6)
    np.testing.assert_allclose(g[0, -7:], np.cos(512 * q[0]), atol=1e-6)


def test_box_query_uses_true_direction_and_width_height():
    dirs = view_directions(np.array([[0, 0, 2.2], [2.2, 0, 0]]))
    np.testing.assert_allclose(dirs, [[0, 0, -1], [-1, 0, 0]], atol=1e-7)
    xyxy = np.array([[10, 20, 50, 40]], np.float32)
    q = box_query(dirs * 3, xyxy, np.array([1]), H=100, W=200)  # non-unit input is normalised
    np.testing.assert_allclose(q[0], [-1, 0, 0, 10 / 200, 20 / 100, 50 / 200, 40 / 100], atol=1e-7)
    x = box_inputs(np.ones((1, 4)), dirs, xyxy, np.array([1]), 100, 200)
    assert x.shape == (1, input_dim(4)) == (1, 151)
    assert box_inputs(np.ones((1, 4)), dirs, xyxy, np.array([1]), 100, 200, pos_enc=False).shape == (1, 4)
    assert box_inputs(np.zeros((0, 4)), dirs, np.zeros((0, 4)), np.zeros(0, int), 100, 200).shape == (0, 151)
