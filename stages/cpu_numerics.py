"""One answer on every CPU for the torch stages (train, evaluate).

Why: torch picks its CPU kernels by the machine (AVX-512, AVX2 or plain: other vector
code for exp, sums and fused multiply-adds) and MKL picks its GEMM code path the same way,
so the same tensors trained on two machines give weights that differ in the last bits,
and a fresh clone's `dvc repro` would rewrite the committed models and dvc.lock. Before
torch is imported, the train and evaluate commands ask both libraries for their portable
path: ``ATEN_CPU_CAPABILITY=default`` (the same kernels on every x86-64 CPU) and
``MKL_CBWR=COMPATIBLE`` (MKL's conditional numerical reproducibility mode), and the
weight network runs on one thread (that mode splits sums by thread count). Its matrix
products run at less than half the native speed (docs/reproducibility.md); the big models
(SAM, Grounding DINO) keep the fast native kernels. A value the user has set in the
environment wins (it is not yet written into the model files' provenance).

The cached stages before them (ingest … lift) do not need this: they use no torch in the
simulated chain and compute with `pipeline.portable`.
"""

from __future__ import annotations

import os
import sys

#: environment variable -> value that gives the same torch results on every x86-64 CPU
PORTABLE_TORCH_ENV: dict[str, str] = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}

#: CLI commands whose torch numerics decide cached or committed outputs
PINNED_COMMANDS: frozenset[str] = frozenset({"train", "evaluate"})


def pin_portable_torch_numerics() -> bool:
    """Set the portable kernel choices unless the user chose others; True when they apply.

    Must run before the first ``import torch`` of the process: afterwards torch has chosen
    its kernels and this only reports that it could not apply them.
    """
    if "torch" in sys.modules:
        return all(os.environ.get(k) == v for k, v in PORTABLE_TORCH_ENV.items())
    for key, value in PORTABLE_TORCH_ENV.items():
        os.environ.setdefault(key, value)
    return True


def torch_numerics() -> dict[str, str]:
    """What this process's torch computes with (printed by benchmarks/bench_train.py)."""
    import torch

    return {
        "aten_cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "mkl_cbwr": os.environ.get("MKL_CBWR", "unset"),
        "torch": torch.__version__,
    }
