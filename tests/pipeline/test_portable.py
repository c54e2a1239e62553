"""pipeline/portable.py: accuracy against NumPy, special values, and the same bits whatever
SIMD kernels NumPy and OpenBLAS pick (checked in subprocesses with the kernels switched off)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from pipeline import portable as pm

#: NumPy's dispatched SIMD levels above its x86-64 baseline (numpy 2.x names); disabling
#: one that the CPU lacks is allowed, so the same string works on every x86-64 machine.
NUMPY_NO_SIMD = "AVX512_SPR AVX512_ICL X86_V4 X86_V3"


def _ulps(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.spacing(np.maximum(np.abs(b), 1e-300))))


def test_trig_exp_log_agree_with_numpy_to_a_few_ulp():
    rng = np.random.default_rng(0)
    x = rng.uniform(-200.0, 200.0, 50_000)
    assert np.max(np.abs(pm.sin(x) - np.sin(x))) < 1e-15
    assert np.max(np.abs(pm.cos(x) - np.cos(x))) < 1e-15
    t = rng.uniform(-1.5, 1.5, 10_000)
    np.testing.assert_allclose(pm.tan(t), np.tan(t), rtol=1e-14)
    e = rng.uniform(-700.0, 700.0, 50_000)
    assert _ulps(pm.exp(e), np.exp(e)) <= 2
    y = np.exp(rng.uniform(-700.0, 700.0, 50_000))
    assert _ulps(pm.log(y), np.log(y)) <= 4
    np.testing.assert_allclose(pm.power(np.array([0.25, 0.5, 2.0]), 1.6), np.array([0.25, 0.5, 2.0]) ** 1.6, rtol=1e-14)


def test_scalars_stay_scalars_and_special_values():
    assert isinstance(pm.sin(0.5), float) and pm.sin(0.0) == 0.0 and pm.cos(0.0) == 1.0
    assert pm.exp(0.0) == 1.0 and pm.log(1.0) == 0.0
    assert pm.power(0.0, 0.9) == 0.0
    out = pm.exp(np.array([np.nan, np.inf, -np.inf, 800.0, -800.0]))
    assert np.isnan(out[0]) and out[1] == np.inf and out[2] == 0.0 and out[3] == np.inf and out[4] == 0.0
    lg = pm.log(np.array([0.0, -1.0, np.inf, np.nan]))
    assert lg[0] == -np.inf and np.isnan(lg[1]) and lg[2] == np.inf and np.isnan(lg[3])
    assert np.isnan(pm.sin(np.array([np.inf]))[0])
    with pytest.raises(ValueError, match="x >= 0"):
        pm.power(np.array([-1.0]), 0.5)


def test_matmul_rotate_norm_match_blas_to_rounding():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(40, 7)), rng.normal(size=(7, 5))
    np.testing.assert_allclose(pm.matmul(a, b), a @ b, rtol=1e-12, atol=1e-13)
    v, r = rng.normal(size=(30, 3)), rng.normal(size=(3, 3))
    np.testing.assert_allclose(pm.rotate(v, r), v @ r.T, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(pm.norm(v, axis=1), np.linalg.norm(v, axis=1), rtol=1e-15)
    np.testing.assert_allclose(pm.rowdot(v, v), (v * v).sum(1), rtol=1e-15)
    with pytest.raises(ValueError, match="inner dimensions"):
        pm.matmul(a, a)


def test_smallest_eigenvectors_are_unit_eigenvectors_of_the_smallest_eigenvalue():
    rng = np.random.default_rng(2)
    m = rng.normal(size=(500, 3, 3))
    cov = m @ m.transpose(0, 2, 1)
    cov[0] = np.diag([3.0, 1.0, 2.0])  # already diagonal
    cov[1] = 0.0  # degenerate: lowest index wins
    cov[2] = np.diag([1.0, 1.0, 5.0])  # tie between two axes: lowest index wins
    n = pm.smallest_eigenvectors(cov)
    w, vecs = np.linalg.eigh(cov)
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, rtol=1e-12)
    residual = np.einsum("nij,nj->ni", cov, n) - w[:, :1] * n
    assert np.abs(residual).max() < 1e-12
    np.testing.assert_allclose(np.abs((vecs[3:, :, 0] * n[3:]).sum(1)), 1.0, atol=1e-9)
    np.testing.assert_array_equal(np.abs(n[0]), [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(n[1], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(np.abs(n[2]), [1.0, 0.0, 0.0])


_DIGEST = """
import hashlib, numpy as np
from pipeline import portable as pm
rng = np.random.default_rng(3)
x = rng.uniform(-300, 300, 20000)
m = rng.normal(size=(2000, 3, 3)); cov = m * m.transpose(0, 2, 1) + np.eye(3) * 1e-9
outs = [pm.sin(x), pm.cos(x), pm.exp(x), pm.log(np.abs(x)), pm.power(np.abs(x), 1.6),
        pm.matmul(rng.normal(size=(50, 30)), rng.normal(size=(30, 20))),
        pm.smallest_eigenvectors(cov + cov.transpose(0, 2, 1))]
print(hashlib.sha256(b"".join(np.ascontiguousarray(o).tobytes() for o in outs)).hexdigest())
"""


def _digest(env_extra: dict[str, str]) -> str:
    env = {**os.environ, **env_extra}
    out = subprocess.run(
        [sys.executable, "-c", _DIGEST],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )
    return out.stdout.strip()


def test_same_bits_with_numpy_and_openblas_simd_switched_off():
    native = _digest({})
    assert len(native) == 64
    assert _digest({"NPY_DISABLE_CPU_FEATURES": NUMPY_NO_SIMD, "OPENBLAS_CORETYPE": "Prescott", "OMP_NUM_THREADS": "1"}) == native
