"""The hyper-parameters of training (SPEC §7.9): their one definition, free of torch.

``stages.config`` derives the ``train`` section of params.yaml from :class:`TrainParams` when
it is imported, which is before ``partstad train`` pins torch's portable CPU kernels
(:mod:`stages.cpu_numerics`): importing torch here would make that pinning fail silently
and change the trained bits, so this module imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class TrainParams:
    """Hyper-parameters of §7.9 (defaults = the official `run_partstad.py`).

    The one definition of the ``train`` section of params.yaml: ``stages.config.TrainConfig``
    is derived from these fields (names, types, defaults, docs), minus the run-time ones in
    :data:`RUNTIME_FIELDS`. A field's name is its params.yaml key.
    """

    epochs: int = 400
    """Training epochs (numbered 1..epochs); validation after each one, the first best epoch is kept."""
    batch_size: int = 2
    """Objects per optimisation step; the batch loss is the mean of the per-object losses."""
    lr: float = 1e-4
    """AdamW learning rate of the weight network."""
    lr_null: float = 0.05
    """AdamW learning rate of the null logit (a separate parameter group)."""
    weight_decay: float = 0.01
    """Decoupled weight decay of both optimisers, null logit included as in the official code (each step scales the weights by 1 - lr·weight_decay)."""
    tau: float = 10.0
    """Weight offset: w = ReLU(tau + o); also the initial null logit. Saved with the weights and used by evaluate."""
    seed: int = 0
    """Seed of the initialisation and of the epoch shuffles."""
    pos_enc: bool = True
    """Append the 147-D positional encoding of the box query to the detector feature."""
    absent_parts: Literal["paper", "skip"] = "paper"
    """Loss for parts absent from an object's ground truth: paper (constant 1/K) or skip."""
    device: str = "cpu"
    """Torch device for training ("cpu", "cuda", ...)."""
    eps: float = 1e-5
    """Epsilon added to the std in the context normalisation (fixes §11.5)."""
    threads: int = 1
    """torch CPU threads during training (the ops are tiny: one thread is fastest)."""


#: TrainParams fields that are not settings of params.yaml: where and how the run computes
#: (the device comes from ``--device``; eps and threads are fixed so results are comparable).
RUNTIME_FIELDS: tuple[str, ...] = ("device", "eps", "threads")
