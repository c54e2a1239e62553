"""The ``pixels`` detector's classification head: a part classifier fitted on the few-shot renders.

Why: a real detector fine-tuned on the few-shot shapes (PartSLIP's GLIP) labels a box with
the part whose few-shot appearance it resembles most, and its scores are as (mis)calibrated
as that fit. The simulated detector does the same with a regularised multinomial logistic
regression over the GT-free box descriptors of :mod:`pipeline.detect.pixel_features`: classes
are the K parts plus "background" (column K), fitted on the few-shot objects' part boxes and on
proposals that match no part. Its confusions therefore follow visual similarity.

The fit is full-batch Adam for a fixed number of steps from zeros, with class-balanced
weights. All float work is float64 in basic operations with fixed summation orders (products
first, then NumPy's reductions; :func:`pipeline.portable.exp` for the softmax), so the same
samples give the same bits on every CPU.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from pipeline import portable as pm


@dataclass(frozen=True)
class PixelClassifierParams:
    """Fit settings of the few-shot part classifier."""

    l2: float = 0.01
    """L2 penalty on the weights (standardised descriptors; the bias is not penalised)."""
    steps: int = 400
    """Full-batch Adam steps (fixed: no early stop, so the result depends only on the data)."""
    lr: float = 0.05
    """Adam step size."""
    temperature: float = 1.0
    """Softmax temperature of the predicted probabilities (> 1: less confident scores)."""
    hidden: int = 0
    """Fixed random ReLU units (seeded, not trained) appended to the standardised descriptor, so
    the linear soft-max can draw non-linear class borders (0: plain logistic regression)."""
    seed: int = 0
    """Seed of the random ReLU units."""


@dataclass
class PixelClassifier:
    """Standardisation + linear soft-max over K parts and background (last column)."""

    mean: np.ndarray  # (D,) float64
    scale: np.ndarray  # (D,) float64
    weight: np.ndarray  # (D + hidden, K+1) float64
    bias: np.ndarray  # (K+1,) float64
    n_parts: int
    temperature: float = 1.0
    proj: np.ndarray | None = None  # (D, hidden) float64 random ReLU units, None without
    proj_bias: np.ndarray | None = None  # (hidden,)
    mean2: np.ndarray | None = None  # (D + hidden,) standardisation of the expanded vector
    scale2: np.ndarray | None = None

    @property
    def n_classes(self) -> int:
        return self.n_parts + 1

    def standardised(self, x: np.ndarray) -> np.ndarray:
        """The descriptor standardised by the few-shot statistics (what the head reads first)."""
        return (np.asarray(x, np.float64) - self.mean) / self.scale

    def inputs(self, x: np.ndarray) -> np.ndarray:
        """What the linear soft-max reads: standardised descriptor (+ random ReLU units)."""
        xs = self.standardised(x)
        if self.proj is None:
            return xs
        # proj, proj_bias, mean2 and scale2 are set together by fit_pixel_classifier
        assert self.proj_bias is not None and self.mean2 is not None and self.scale2 is not None
        h = _expand(xs, self.proj, self.proj_bias)
        return (h - self.mean2) / self.scale2

    def logits(self, x: np.ndarray) -> np.ndarray:
        return _x_w(self.inputs(x), self.weight) + self.bias

    def proba(self, x: np.ndarray) -> np.ndarray:
        """(n, K+1) class probabilities (last column: background)."""
        return softmax(self.logits(x) / self.temperature)

    def digest(self) -> str:
        """Content hash of the fitted parameters (provenance)."""
        h = hashlib.sha256()
        for a in (self.mean, self.scale, self.weight, self.bias, self.proj, self.proj_bias, self.mean2, self.scale2):
            if a is None:
                continue
            h.update(np.ascontiguousarray(a, np.float64).tobytes())
        h.update(f"{self.n_parts}|{self.temperature!r}".encode())
        return h.hexdigest()[:20]


def softmax(z: np.ndarray) -> np.ndarray:
    """Row soft-max in float64 with the portable exp."""
    z = np.asarray(z, np.float64)
    if z.size == 0:
        return z.copy()
    e = np.asarray(pm.exp(z - z.max(axis=1, keepdims=True)))
    return e / e.sum(axis=1, keepdims=True)


def _expand(xs: np.ndarray, proj: np.ndarray, proj_bias: np.ndarray) -> np.ndarray:
    return np.concatenate([xs, np.maximum(pm.matmul(xs, proj) + proj_bias, 0.0)], axis=1)


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    sd = np.sqrt(((x - mean) * (x - mean)).mean(axis=0))
    return mean, np.where(sd > 1e-9, sd, 1.0)


def _x_w(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x (n, D) @ w (D, C) for few columns C: per column, products then NumPy's fixed-order
    sum along D (:func:`pipeline.portable.rowdot`; no BLAS)."""
    x = np.ascontiguousarray(x, np.float64)
    return np.stack([pm.rowdot(x, np.ascontiguousarray(w[:, c])[None, :]) for c in range(w.shape[1])], axis=1).reshape(
        x.shape[0], w.shape[1]
    )


def _xt_r(xt: np.ndarray, r: np.ndarray) -> np.ndarray:
    """xᵀ r (D, C) from ``xt`` = xᵀ (D, n) contiguous: per class, products then NumPy's
    fixed-order sum over samples (:func:`pipeline.portable.rowdot`; no BLAS)."""
    return np.stack([pm.rowdot(xt, np.ascontiguousarray(r[:, c])[None, :]) for c in range(r.shape[1])], axis=1)


def fit_classifier(x: np.ndarray, y: np.ndarray, n_parts: int, params: PixelClassifierParams | None = None) -> PixelClassifier:
    """Fit on descriptors ``x`` (n, D) with classes ``y`` (n,) in 0..n_parts (n_parts = background)."""
    prm = params or PixelClassifierParams()
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.int64).reshape(-1)
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x {x.shape} and y {y.shape} do not match")
    C = int(n_parts) + 1
    if y.size and (int(y.min()) < 0 or int(y.max()) >= C):
        raise ValueError(f"classes must lie in 0..{C - 1}")
    n, D = x.shape
    if n == 0:
        raise ValueError("no training samples")
    mean, scale = _standardise(x)
    xs = (x - mean) / scale
    proj = proj_bias = mean2 = scale2 = None
    if prm.hidden > 0:
        rng = np.random.default_rng(np.random.SeedSequence([int(prm.seed), 0x51A]))
        proj = rng.standard_normal((D, int(prm.hidden))) / np.sqrt(float(max(D, 1)))
        proj_bias = rng.uniform(-1.0, 1.0, int(prm.hidden))
        h = _expand(xs, proj, proj_bias)
        mean2, scale2 = _standardise(h)
        xs = (h - mean2) / scale2
        D = xs.shape[1]
    xst = np.ascontiguousarray(xs.T)
    onehot = np.zeros((n, C))
    onehot[np.arange(n), y] = 1.0
    counts = np.bincount(y, minlength=C).astype(np.float64)
    present = counts > 0
    # class-balanced sample weights, summing to 1
    sw = np.where(present, 1.0 / np.maximum(counts, 1.0), 0.0)[y]
    sw = sw / sw.sum()
    W = np.zeros((D, C))
    b = np.zeros(C)
    b[~present] = -30.0  # a class without samples is never predicted
    mW, vW, mb, vb = np.zeros_like(W), np.zeros_like(W), np.zeros_like(b), np.zeros_like(b)
    b1, b2, eps = 0.9, 0.999, 1e-8
    b1t, b2t = 1.0, 1.0
    for _ in range(int(prm.steps)):
        p = softmax(_x_w(xs, W) + b)
        r = (p - onehot) * sw[:, None]
        gW = _xt_r(xst, r) + prm.l2 * W
        gb = np.where(present, r.sum(axis=0), 0.0)
        b1t *= b1
        b2t *= b2
        for g, m, v, par in ((gW, mW, vW, W), (gb, mb, vb, b)):
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * (g * g)
            mhat = m / (1.0 - b1t)
            vhat = v / (1.0 - b2t)
            par -= prm.lr * mhat / (np.sqrt(vhat) + eps)
    return PixelClassifier(
        mean=mean,
        scale=scale,
        weight=W,
        bias=b,
        n_parts=int(n_parts),
        temperature=float(prm.temperature),
        proj=proj,
        proj_bias=proj_bias,
        mean2=mean2,
        scale2=scale2,
    )
