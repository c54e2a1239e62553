"""One input, one answer on every CPU: the simulated chain (ingest → lift), training and evaluation run
in subprocesses under other torch, NumPy and OpenBLAS kernel levels and thread counts, and
every cached zip and model file must come out byte for byte the same.

The "other machine" switches every SIMD choice it can: NumPy's dispatched kernels off, the
OpenBLAS core of a 2004 CPU, torch's plain kernels, MKL without AVX, one thread.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from stages.stage_table import chain

REPO = Path(__file__).resolve().parents[2]
CHAIN = chain("lift")

NATIVE: dict[str, str] = {}
OTHER_CPU: dict[str, str] = {
    "NPY_DISABLE_CPU_FEATURES": "AVX512_SPR AVX512_ICL X86_V4 X86_V3",
    "OPENBLAS_CORETYPE": "Prescott",
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}
_KERNEL_VARS = (
    "NPY_DISABLE_CPU_FEATURES",
    "OPENBLAS_CORETYPE",
    "ATEN_CPU_CAPABILITY",
    "MKL_CBWR",
    "MKL_ENABLE_INSTRUCTIONS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
)


def _partstad(args: list[str], cwd: Path, env_extra: dict[str, str]) -> None:
    env = {k: v for k, v in os.environ.items() if k not in _KERNEL_VARS}
    env.update(env_extra)
    env["PARTSTAD_JOBS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    res = subprocess.run([sys.executable, "-m", "stages.cli", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert res.returncode == 0, f"partstad {' '.join(args)} under {env_extra}: exit {res.returncode}\n{res.stderr[-3000:]}"


def _run_chain(root: Path, params: Path, env_extra: dict[str, str]) -> Path:
    """The chain and training in `root`, with relative paths (models record their inputs' paths)."""
    root.mkdir()
    for stage in CHAIN:
        _partstad([stage, "--params", str(params), "--cache", "cache"], root, env_extra)
    _partstad(
        ["train", "--params", str(params), "--cache", "cache", "--models", "models", "--metrics", "metrics", "--plots", "plots"],
        root,
        env_extra,
    )
    _partstad(["evaluate", "--params", str(params), "--cache", "cache", "--models", "models", "--metrics", "metrics"], root, env_extra)
    return root


def _files(root: Path) -> dict[str, bytes]:
    out = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.glob("cache/**/*.zip"))}
    out.update({str(p.relative_to(root)): p.read_bytes() for p in sorted(root.glob("models/**/*.safetensors"))})
    out.update({str(p.relative_to(root)): p.read_bytes() for p in sorted(root.glob("metrics/evaluate/*.json"))})
    return out


@pytest.fixture(scope="module")
def two_machines(tmp_path_factory, write_params):
    base = tmp_path_factory.mktemp("portable")
    params = write_params(
        base, ["Kettle"], data={"n_points": 4000, "n_fewshot": 2, "n_val": 1, "n_test": 1}, render={"image_size": 96}, train={"epochs": 8}
    )
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(_run_chain, base / "native", params, NATIVE)
        b = pool.submit(_run_chain, base / "other", params, OTHER_CPU)
        return _files(a.result()), _files(b.result())


def test_every_cached_zip_is_byte_identical_under_other_kernels(two_machines):
    native, other = two_machines
    zips = [k for k in native if k.endswith(".zip")]
    stages = {k.split("/")[1] for k in zips}
    assert stages == {*CHAIN, "evaluate"}, f"missing stages: {set(CHAIN) - stages}"
    assert len([k for k in zips if k.split("/")[1] in CHAIN]) == 4 * len(CHAIN)  # 4 objects per stage
    assert sorted(k for k in other if k.endswith(".zip")) == sorted(zips)
    differing = [k for k in zips if native[k] != other[k]]
    assert differing == [], f"{len(differing)} of {len(zips)} zips differ: {differing[:10]}"


def test_trained_models_are_byte_identical_under_other_kernels(two_machines):
    native, other = two_machines
    models = [k for k in native if k.endswith(".safetensors")]
    assert {Path(k).name for k in models} >= {"partstad.safetensors", "partstad_boxes.safetensors"}
    differing = [k for k in models if native[k] != other.get(k)]
    assert differing == [], f"model files differ: {differing}"


def test_evaluation_metrics_are_byte_identical_under_other_kernels(two_machines):
    native, other = two_machines
    assert "metrics/evaluate/Kettle.json" in native
    assert native["metrics/evaluate/Kettle.json"] == other["metrics/evaluate/Kettle.json"]
