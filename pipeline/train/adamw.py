"""AdamW on CPU with NumPy's ufuncs: torch's update, operation for operation, at SIMD speed.

``partstad train`` runs torch with its plain (non-vectorised) kernels so that every CPU
computes the same bits (:mod:`stages.cpu_numerics`). Under them ``torch.optim.AdamW`` spends
1.5 ms per step on the 403×403 weight, about as long as the rest of a training step. Its
update needs only + − × ÷ and √, which IEEE 754 rounds correctly: NumPy's vectorised ufuncs
give the same bits in any SIMD width, so the update below is as portable and 4× faster.
It is the sequence of torch's single-tensor AdamW (amsgrad off), each torch expression split
into the roundings torch's CPU kernels make; it equals torch's bit for bit except where
torch's ``sqrt`` is not correctly rounded (a fifth of float32 inputs, MKL's vector square
root): there NumPy's exact one is used, a last-bit difference in the denominator.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

F32 = np.float32


class NumpyAdamW:
    """AdamW with decoupled weight decay over CPU float32 parameters, one learning rate per
    group; ``zero_grad``/``step`` as a torch optimiser (parameters without a gradient are
    left alone, moments included)."""

    def __init__(
        self,
        groups: Sequence[tuple[Sequence[torch.nn.Parameter], float]],
        weight_decay: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        self.groups = [(list(params), float(lr)) for params, lr in groups]
        for params, _ in self.groups:
            for p in params:
                if p.device.type != "cpu" or p.dtype != torch.float32:
                    raise ValueError(f"NumpyAdamW needs CPU float32 parameters, got {p.dtype} on {p.device}")
        self.weight_decay, (self.beta1, self.beta2), self.eps = float(weight_decay), betas, float(eps)
        #: per parameter: exp_avg, exp_avg_sq, [step], two scratch arrays
        self.state: dict[torch.nn.Parameter, tuple[np.ndarray, np.ndarray, list[float], np.ndarray, np.ndarray]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for params, _ in self.groups:
            for p in params:
                p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for params, lr in self.groups:
            for p in params:
                if p.grad is not None:
                    self._update(p, p.grad, lr)

    def _update(self, p: torch.nn.Parameter, grad: torch.Tensor, lr: float) -> None:
        x, g = p.detach().numpy(), grad.detach().numpy()  # views: updated in place
        st = self.state.get(p)
        if st is None:
            st = self.state[p] = (np.zeros_like(x), np.zeros_like(x), [0.0], np.empty_like(x), np.empty_like(x))
        m, v, step, tmp, upd = st
        step[0] += 1.0
        b1, b2 = self.beta1, self.beta2
        if self.weight_decay:
            np.multiply(x, F32(1 - lr * self.weight_decay), out=x)  # param.mul_(1 - lr·wd)
        np.subtract(g, m, out=tmp)  # exp_avg.lerp_(grad, 1 − β1) = m + w·(g − m) for w < 0.5
        np.multiply(tmp, F32(1 - b1), out=tmp)
        np.add(m, tmp, out=m)
        np.multiply(v, F32(b2), out=v)  # exp_avg_sq.mul_(β2).addcmul_(grad, grad, value=1 − β2)
        np.multiply(g, F32(1 - b2), out=tmp)
        np.multiply(tmp, g, out=tmp)
        np.add(v, tmp, out=v)
        bias_correction1 = 1 - b1 ** step[0]
        bias_correction2_sqrt = (1 - b2 ** step[0]) ** 0.5
        np.sqrt(v, out=tmp)  # denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
        np.divide(tmp, F32(bias_correction2_sqrt), out=tmp)
        np.add(tmp, F32(self.eps), out=tmp)
        np.multiply(m, F32(-(lr / bias_correction1)), out=upd)  # param.addcdiv_(exp_avg, denom, value=−step_size)
        np.divide(upd, tmp, out=upd)
        np.add(x, upd, out=x)
