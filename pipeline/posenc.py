"""Per-box network inputs: positional encoding of the box geometry (SPEC §7.4).

q_b ∈ R⁷ = [view direction of view(b) (3), x1/W, y1/H, x2/W, y2/H], encoded NeRF-style
and concatenated to the detector feature: x_b = [feat_b ‖ γ(q_b)].

Fixes of the official code:
* §11.4: the direction is the **true** unit vector from the camera to the object centre
  (the official ``view.npy`` treats elevation as a polar angle and clamps negatives).
* §11.3: the far corner is (x2, y2) of the box, normalised by the image **width** for x
  and **height** for y (the official code swaps width and height).
"""

from __future__ import annotations

import numpy as np

N_FREQS = 10
QUERY_DIM = 7
POSENC_DIM = QUERY_DIM * (1 + 2 * N_FREQS)  # 147


def positional_encoding(q: np.ndarray, n_freqs: int = N_FREQS) -> np.ndarray:
    """γ(q) = [q, sin(2⁰q), cos(2⁰q), …, sin(2^(n-1) q), cos(2^(n-1) q)] along the last axis.

    (…, D) → (…, D·(1 + 2·n_freqs)) float32; computed in float64 so that sin(512·q) keeps
    its precision.
    """
    q = np.asarray(q, dtype=np.float64)
    parts = [q]
    for f in 2.0 ** np.arange(n_freqs):
        parts.append(np.sin(f * q))
        parts.append(np.cos(f * q))
    return np.concatenate(parts, axis=-1).astype(np.float32)


def view_directions(camera_centres: np.ndarray, target: np.ndarray | None = None) -> np.ndarray:
    """(V, 3) unit vectors from each camera centre towards the target (default the origin)."""
    c = np.asarray(camera_centres, dtype=np.float64)
    t = np.zeros(3) if target is None else np.asarray(target, dtype=np.float64)
    d = t[None] - c
    return (d / np.linalg.norm(d, axis=1, keepdims=True)).astype(np.float32)


def box_query(view_dirs: np.ndarray, xyxy: np.ndarray, box_view: np.ndarray, H: int, W: int) -> np.ndarray:
    """(B, 7) float32 query q_b = [dir(view(b)), x1/W, y1/H, x2/W, y2/H] (bugs §11.3/§11.4 fixed).

    ``view_dirs`` are normalised defensively so that un-normalised camera vectors are fine.
    """
    d = np.asarray(view_dirs, dtype=np.float64).reshape(-1, 3)
    d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    scale = np.array([W, H, W, H], dtype=np.float64)
    v = np.asarray(box_view).astype(np.int64).reshape(-1)
    return np.concatenate([d[v], xyxy / scale], axis=1).astype(np.float32)


def box_inputs(
    feat: np.ndarray,
    view_dirs: np.ndarray,
    xyxy: np.ndarray,
    box_view: np.ndarray,
    H: int,
    W: int,
    pos_enc: bool = True,
) -> np.ndarray:
    """(B, D + 147) network input x_b = [feat_b ‖ γ(q_b)], or (B, D) with ``pos_enc=False``."""
    feat = np.asarray(feat, dtype=np.float32)
    feat = feat.reshape(feat.shape[0], -1) if feat.ndim != 2 else feat
    if not pos_enc:
        return feat
    return np.concatenate([feat, positional_encoding(box_query(view_dirs, xyxy, box_view, H, W))], axis=1)


def input_dim(feat_dim: int, pos_enc: bool = True) -> int:
    """Network input width C for a detector feature width D."""
    return feat_dim + (POSENC_DIM if pos_enc else 0)
