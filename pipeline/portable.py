"""Arithmetic that gives the same bits on every x86-64 CPU.

Why: cached arrays are shared between machines (DVC remote) and keyed by their inputs, so
one input must give one answer everywhere. NumPy picks SIMD kernels for its transcendental
functions at run time (SVML on AVX-512, its own on AVX2, libm otherwise) and these differ in
the last bit; BLAS (`@`, `np.dot`, `np.linalg`) picks kernels by CPU too (FMA or not, other
blockings), and LAPACK's eigenvectors of nearly degenerate matrices can point anywhere.
A last-bit difference upstream of a discrete decision (a superpoint merge, a pixel, a
detection draw) becomes a different result.

Everything here uses only IEEE-754 basic operations (+, −, ×, ÷, √, floor, rint, ldexp),
each one NumPy ufunc call over whole arrays, so no compiler can fuse them into FMAs and no
SIMD width changes a result: the same inputs give the same bits on any CPU. Accuracy is a
few ulp (checked against NumPy in the tests), more than any geometry here needs. Sums over
an axis use NumPy's reduction (pairwise, the same order on every CPU); products are taken
as separate ufunc calls before summing (never `einsum`/`dot`, which may fuse or dispatch).
See docs/reproducibility.md.
"""

from __future__ import annotations

from typing import overload

import numpy as np

ArrayLike = np.ndarray | float
# Each function returns a Python float for a scalar or 0-d input and an array otherwise; the
# overloads say so for floats and arrays (a 0-d array is typed as an array, but gives a float).

# Cody–Waite splits (fdlibm): the high parts have few enough bits that k × high is exact.
_PIO2_1 = 1.57079632673412561417e00  # first 33 bits of π/2
_PIO2_2 = 6.07710050630396597660e-11  # next 33 bits
_PIO2_2T = 2.02226624879595063154e-21  # π/2 − (_PIO2_1 + _PIO2_2)
_INV_PIO2 = 6.36619772367581382433e-01
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
_SQRT_HALF = 0.70710678118654752440

_SIN = [(-1.0) ** i / float(np.prod(np.arange(1, 2 * i + 2, dtype=np.float64))) for i in range(1, 11)]
_COS = [(-1.0) ** i / float(np.prod(np.arange(1, 2 * i + 1, dtype=np.float64))) for i in range(1, 11)]
_EXP = [1.0 / float(np.prod(np.arange(1, i + 1, dtype=np.float64))) for i in range(0, 16)]


def _horner(z: np.ndarray, coeffs: list[float]) -> np.ndarray:
    """Σ coeffs[i] z^i by Horner's rule, one ufunc per step."""
    acc = np.full_like(z, coeffs[-1])
    for c in reversed(coeffs[:-1]):
        acc = acc * z
        acc = acc + c
    return acc


def _out(x: ArrayLike, y: np.ndarray) -> ArrayLike:
    return float(y) if np.ndim(x) == 0 else y


def _reduce_quadrant(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x = k·π/2 + r with |r| ≲ π/4 (exact for |x| < 2^20·π/2), k mod 4."""
    k = np.rint(x * _INV_PIO2)
    r = x - k * _PIO2_1
    r = r - k * _PIO2_2
    r = r - k * _PIO2_2T
    return r, np.mod(k, 4.0).astype(np.int8)


def _sin_cos_kernels(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = r * r
    s = r + (r * z) * _horner(z, _SIN)
    c = 1.0 + z * _horner(z, _COS)
    return s, c


@overload
def sin(x: float) -> float: ...
@overload
def sin(x: np.ndarray) -> np.ndarray: ...
def sin(x: ArrayLike) -> ArrayLike:
    """sin(x), float64, identical on every CPU (|x| < 1e6 reduces exactly)."""
    a = np.asarray(x, dtype=np.float64)
    r, q = _reduce_quadrant(np.where(np.isfinite(a), a, 0.0))
    s, c = _sin_cos_kernels(r)
    y = np.select([q == 0, q == 1, q == 2], [s, c, -s], -c)
    return _out(x, np.where(np.isfinite(a), y, np.nan))


@overload
def cos(x: float) -> float: ...
@overload
def cos(x: np.ndarray) -> np.ndarray: ...
def cos(x: ArrayLike) -> ArrayLike:
    """cos(x), float64, identical on every CPU (|x| < 1e6 reduces exactly)."""
    a = np.asarray(x, dtype=np.float64)
    r, q = _reduce_quadrant(np.where(np.isfinite(a), a, 0.0))
    s, c = _sin_cos_kernels(r)
    y = np.select([q == 0, q == 1, q == 2], [c, -s, -c], s)
    return _out(x, np.where(np.isfinite(a), y, np.nan))


@overload
def tan(x: float) -> float: ...
@overload
def tan(x: np.ndarray) -> np.ndarray: ...
def tan(x: ArrayLike) -> ArrayLike:
    """tan(x) = sin/cos, float64, identical on every CPU."""
    a = np.asarray(x, dtype=np.float64)
    return _out(x, np.asarray(sin(a)) / np.asarray(cos(a)))


@overload
def exp(x: float) -> float: ...
@overload
def exp(x: np.ndarray) -> np.ndarray: ...
def exp(x: ArrayLike) -> ArrayLike:
    """e^x, float64, identical on every CPU (0 below −745, inf above 709.78, NaN kept)."""
    a = np.asarray(x, dtype=np.float64)
    safe = np.clip(np.where(np.isnan(a), 0.0, a), -746.0, 710.0)
    k = np.rint(safe * _INV_LN2)
    r = safe - k * _LN2_HI
    r = r - k * _LN2_LO
    with np.errstate(over="ignore", under="ignore"):
        y = np.ldexp(_horner(r, _EXP), k.astype(np.int64))
    y = np.where(a > 709.782712893384, np.inf, np.where(a < -745.1332191019412, 0.0, y))
    return _out(x, np.where(np.isnan(a), np.nan, y))


@overload
def log(x: float) -> float: ...
@overload
def log(x: np.ndarray) -> np.ndarray: ...
def log(x: ArrayLike) -> ArrayLike:
    """Natural logarithm, float64, identical on every CPU (−inf at 0, NaN below)."""
    a = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(a) & (a > 0)
    m, e = np.frexp(np.where(ok, a, 1.0))
    low = m < _SQRT_HALF
    m = np.where(low, m * 2.0, m)
    e = (e - low).astype(np.float64)
    s = (m - 1.0) / (m + 1.0)
    z = s * s
    series = _horner(z, [1.0 / (2 * i + 1) for i in range(12)])
    lm = 2.0 * s * series
    y = e * _LN2_HI + (e * _LN2_LO + lm)
    y = np.where(ok, y, np.where(a == 0, -np.inf, np.where(a == np.inf, np.inf, np.nan)))
    return _out(x, y)


@overload
def power(x: float, p: float) -> float: ...
@overload
def power(x: np.ndarray, p: float) -> np.ndarray: ...
def power(x: ArrayLike, p: float) -> ArrayLike:
    """x**p for x >= 0 (0**p = 0 for p > 0), float64, identical on every CPU."""
    a = np.asarray(x, dtype=np.float64)
    if np.any(a < 0):
        raise ValueError("portable.power needs x >= 0")
    y = np.where(a > 0, np.asarray(exp(float(p) * np.asarray(log(np.where(a > 0, a, 1.0))))), 0.0 if p > 0 else 1.0)
    return _out(x, y)


def rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Σ_k a[..., k]·b[..., k] (products first, then NumPy's fixed-order sum)."""
    return np.sum(np.multiply(a, b), axis=-1)


def norm(a: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """Euclidean norm along `axis` (no BLAS)."""
    a = np.asarray(a, dtype=np.float64)
    return np.sqrt(np.sum(a * a, axis=axis, keepdims=keepdims))


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a (..., K) @ b (K, M) in float64, accumulated over k in order (no BLAS)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape[-1] != b.shape[0]:
        raise ValueError(f"matmul: inner dimensions differ, {a.shape} @ {b.shape}")
    out = np.zeros(a.shape[:-1] + b.shape[1:], dtype=np.float64)
    for k in range(b.shape[0]):
        out += a[..., k, None] * b[k]
    return out


def rotate(v: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """v (..., 3) @ rot.T, i.e. rot applied to each row vector (no BLAS)."""
    return matmul(v, np.asarray(rot, dtype=np.float64).T)


def smallest_eigenvectors(cov: np.ndarray, sweeps: int = 8) -> np.ndarray:
    """Unit eigenvector of the smallest eigenvalue of each symmetric 3×3 matrix (n,3,3).

    Cyclic Jacobi rotations with basic operations only, so that nearly degenerate
    neighbourhoods (rods, where two eigenvalues almost tie) get the same axis on every CPU;
    LAPACK's answer there depends on its kernels. Ties pick the lowest index. The six
    distinct entries and the nine of the rotation are kept as contiguous (n,) arrays.
    """
    cov = np.asarray(cov, dtype=np.float64)
    n = cov.shape[0]
    a = {(i, j): cov[:, i, j].copy() for i in range(3) for j in range(i, 3)}
    v = {(i, j): np.full(n, 1.0 if i == j else 0.0) for i in range(3) for j in range(3)}

    def sym(i: int, j: int) -> tuple[int, int]:
        return (i, j) if i <= j else (j, i)

    for _ in range(int(sweeps)):
        if not (a[0, 1].any() or a[0, 2].any() or a[1, 2].any()):
            break  # every rotation left would be the identity: same bits, less work
        for p, q in ((0, 1), (0, 2), (1, 2)):
            r = 3 - p - q
            apq = a[p, q]
            nz = apq != 0
            with np.errstate(over="ignore"):
                theta = (a[q, q] - a[p, p]) / np.where(nz, 2.0 * apq, 1.0)
            big = ~(np.abs(theta) <= 1e150)
            th = np.where(big, 0.0, theta)
            t = np.where(theta >= 0, 1.0, -1.0) / (np.abs(th) + np.sqrt(th * th + 1.0))
            t = np.where(big, 0.5 / np.where(big, theta, 1.0), t)
            t = np.where(nz, t, 0.0)
            c = 1.0 / np.sqrt(t * t + 1.0)
            s = t * c
            tau = s / (1.0 + c)
            a[p, p] = a[p, p] - t * apq
            a[q, q] = a[q, q] + t * apq
            a[p, q] = np.zeros(n)
            arp, arq = a[sym(r, p)], a[sym(r, q)]
            a[sym(r, p)] = arp - s * (arq + tau * arp)
            a[sym(r, q)] = arq + s * (arp - tau * arq)
            for k in range(3):
                vp, vq = v[k, p], v[k, q]
                v[k, p] = vp - s * (vq + tau * vp)
                v[k, q] = vq + s * (vp - tau * vq)
    lam = np.stack([a[0, 0], a[1, 1], a[2, 2]], axis=1)
    idx = np.argmin(lam, axis=1)
    cols = np.stack([np.stack([v[k, j] for k in range(3)], axis=1) for j in range(3)], axis=1)  # (n, j, k)
    out = cols[np.arange(n), idx]
    return out / norm(out, keepdims=True)
