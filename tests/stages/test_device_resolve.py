"""``--device auto|cuda`` on a CPU build of torch is answered without importing torch.

Importing torch costs seconds; ``partstad train`` resolves the device in its parent process
before starting the per-category workers (which import torch themselves)."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import pytest

from stages.common import ParamsError, resolve_device

CPU_BUILD = version("torch").endswith("+cpu")


@pytest.mark.skipif(not CPU_BUILD, reason="needs the CPU build of torch (the lock's)")
def test_auto_is_cpu_without_importing_torch():
    code = "import sys; from stages.common import resolve_device; print(resolve_device('auto'), 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["cpu", "False"]


@pytest.mark.skipif(not CPU_BUILD, reason="needs the CPU build of torch (the lock's)")
def test_cuda_on_a_cpu_build_is_a_params_error():
    with pytest.raises(ParamsError, match="--device cuda"):
        resolve_device("cuda")


def test_explicit_devices_pass_through():
    assert resolve_device("cpu") == "cpu" and resolve_device("mps") == "mps"
