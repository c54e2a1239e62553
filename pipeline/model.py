"""Box weight network and null logit (SPEC §7.5, §7.6).

The network sees the set of all B boxes of one object at once (one "context"):

    h  = Linear_C→C(x)
    h̃  = (h − mean_B h) / (std_B h + eps)        population std, eps = 1e-5 (fixes §11.5)
    x' = x + ReLU(h̃)                             skip connection
    w  = ReLU(τ + Linear_C→1(x'))                 τ = 10, so w ≈ 10 at init

Weights are initialised N(0, 1e-4²) and biases 0. With B = 1 (or a constant channel)
h − mean = 0 and h̃ = 0 exactly, without NaN in the value or the gradient. B = 0 gives
an empty weight vector.
"""

from __future__ import annotations

import torch
from torch import nn

TAU = 10.0
CN_EPS = 1e-5
INIT_STD = 1e-4
Z_NULL_FLOOR = 5e-4


class WeightNet(nn.Module):
    """Per-box weight predictor w_b = ReLU(τ + o_b) with one context-normalisation layer."""

    def __init__(self, in_dim: int, tau: float = TAU, eps: float = CN_EPS, init_std: float = INIT_STD, skip: bool = True):
        super().__init__()
        self.in_dim = int(in_dim)
        self.tau = float(tau)
        self.eps = float(eps)
        self.skip = bool(skip)
        self.cn = nn.Linear(self.in_dim, self.in_dim)
        self.out = nn.Linear(self.in_dim, 1)
        for lin in (self.cn, self.out):
            nn.init.normal_(lin.weight, mean=0.0, std=init_std)
            nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C) → w (B,) non-negative box weights of one object."""
        if x.shape[0] == 0:
            return x.new_zeros(0)
        h = self.cn(x)
        centred = h - h.mean(dim=0, keepdim=True)
        var = (centred * centred).mean(dim=0, keepdim=True)
        # clamp keeps d sqrt/d var finite when a channel is constant (B = 1 in particular);
        # centred is then exactly 0, so the clamp does not change the value.
        std = torch.sqrt(var.clamp_min(1e-30))
        a = torch.relu(centred / (std + self.eps))
        xp = x + a if self.skip else a
        o = self.out(xp).squeeze(-1)
        return torch.relu(self.tau + o)

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor], tau: float = TAU, eps: float = CN_EPS) -> WeightNet:
        """Rebuild a network from ``state_dict()`` output (the input width is read from it)."""
        net = cls(int(state["cn.weight"].shape[1]), tau=tau, eps=eps)
        net.load_state_dict(state)
        return net


class NullLogit(nn.Module):
    """Global learnable null ("other") logit: z_null = max(ReLU(θ), 5e-4), θ initialised to τ."""

    def __init__(self, init: float = TAU, floor: float = Z_NULL_FLOOR):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(float(init)))
        self.floor = float(floor)

    def forward(self) -> torch.Tensor:
        return torch.clamp(torch.relu(self.theta), min=self.floor)


def z_null_value(theta: float, floor: float = Z_NULL_FLOOR) -> float:
    """The null logit for a stored θ_null (inference)."""
    return max(max(float(theta), 0.0), floor)
