"""NumpyAdamW (pipeline.train.adamw) against torch.optim.AdamW."""

import numpy as np
import pytest
import torch

from pipeline.train.adamw import NumpyAdamW


def _params(seed: int = 0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=g)) for shape in ((40, 40), (40,), (1, 40), ())]


@pytest.mark.parametrize("weight_decay", [0.01, 0.0])
def test_updates_equal_torch_adamw(weight_decay):
    ours, ref = _params(), _params()
    opt = NumpyAdamW([(ours[:3], 1e-2), (ours[3:], 0.05)], weight_decay=weight_decay)
    ref_opts = [
        torch.optim.AdamW(ref[:3], lr=1e-2, weight_decay=weight_decay),
        torch.optim.AdamW(ref[3:], lr=0.05, weight_decay=weight_decay),
    ]
    g = torch.Generator().manual_seed(1)
    for step in range(30):
        opt.zero_grad()
        for o in ref_opts:
            o.zero_grad(set_to_none=True)
        for i, (p, q) in enumerate(zip(ours, ref)):
            if step % 7 == 3 and i == 1:  # a parameter without gradient in this step: left alone
                continue
            p.grad = torch.randn(p.shape, generator=g)
            q.grad = p.grad.clone()
        opt.step()
        for o in ref_opts:
            o.step()
    for p, q in zip(ours, ref):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-6)
    assert not torch.equal(ours[0].detach(), _params()[0].detach())  # it moved


def test_parameters_without_gradient_keep_no_state_and_bad_parameters_are_refused():
    p, q = _params()[:2]
    opt = NumpyAdamW([([p, q], 1e-3)])
    p.grad = torch.ones_like(p)
    before = q.detach().clone()
    opt.step()
    assert p in opt.state and q not in opt.state and torch.equal(q.detach(), before)
    m, v, step = opt.state[p][:3]
    assert step == [1.0] and np.allclose(m, 0.1) and np.allclose(v, 0.001)
    opt.zero_grad()
    assert p.grad is None
    with pytest.raises(ValueError):
        NumpyAdamW([([torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))], 1e-3)])
