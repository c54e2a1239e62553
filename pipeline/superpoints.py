"""Superpoints: a piecewise-homogeneous partition of the cloud (SPEC §5).

PartSLIP/PartSTAD run L0 cut pursuit (``libcp``, GPL) on a 10-NN graph with node features
``f = [normal, 0.3·rgb]`` and minimise ``Σ‖x_i − f_i‖² + λ Σ_(i,j) w_ij [x_i ≠ x_j]``
(λ = reg = 0.05). The default backend here (``"greedy"``) is an in-house, MIT-licensed
approximation of the same objective on numpy/scipy only:

* start from one region per point; each round, every region-adjacency edge (A,B) gets the
  objective change of merging A and B, ``gain = λ·W_AB − |A||B|/(|A|+|B|)·‖μ_A − μ_B‖²``
  (boundary penalty saved minus squared-error added; W_AB = summed edge weights between
  them); every region picks its best positive-gain neighbour and *mutual* best pairs merge
  (a matching, so no chain can merge regions that were never compared). Rounds repeat
  until no edge has a positive gain. Regions stay connected in the kNN graph; everything
  is vectorised per round (sort / bincount), ~20–40 rounds.
* then components with <= ``min_size`` points are merged into the large component owning
  the nearest neighbour of their first point (SPEC §5.6; if no component is large, the
  whole cloud becomes one superpoint instead of crashing, SPEC §11.19).

Normals (SPEC §5.1): PCA over the neighbours within radius 0.1 (at most 30, the point
itself included; at least 3 so that isolated points still get a normal), smallest
eigenvector of the batched 3×3 covariances. The *returned* normals are oriented away from
the centroid (a deterministic choice; the original leaves the sign to the solver, SPEC
§11.18). The partition itself never sees the sign: its normal feature is the
sign-invariant embedding of ``n nᵀ`` scaled so that ‖·‖² = sin²∠(n, m) (≈ ‖n − m‖² for
small angles, like the original feature), so a flipped normal does not cut a flat patch.

``backend="cutpursuit"`` uses ``pycut_pursuit.cp_d0_dist`` (GPL-3.0, not a dependency,
imported only when asked) on the same graph and features. ``"auto"`` means ``"greedy"``,
so the result never depends on what happens to be installed.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

log = logging.getLogger(__name__)
FEAT = None
CONTRAST = 0.0

BACKENDS = ("auto", "greedy", "cutpursuit")


@dataclass(frozen=True)
class SuperpointResult:
    """``sp`` (N,) int32 superpoint ids, contiguous 0..S-1 numbered by first point;
    ``normals`` (N,3) float32 unit PCA normals oriented away from the centroid."""

    sp: np.ndarray
    normals: np.ndarray

    @property
    def n_superpoints(self) -> int:
        return int(self.sp.max()) + 1 if self.sp.size else 0


# --------------------------------------------------------------------------- normals


def local_geometry(
    xyz: np.ndarray,
    nn_idx: np.ndarray,
    nn_dist: np.ndarray,
    radius: float = 0.1,
    min_nn: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """PCA normals and shape tensors from a sorted kNN table (N,k) (self included, as in
    Open3D's hybrid search).

    Neighbours beyond ``radius`` are ignored, except that the nearest ``min_nn`` always
    count. Returns ``normals`` (N,3) float32 (smallest-eigenvalue axis, oriented away from
    the centroid; degenerate neighbourhoods give the eigensolver's first axis) and the
    shape-tensor embedding (N,6) float64 of ``C / trace(C)`` (see :func:`tensor_embedding`).
    """
    p = np.asarray(xyz, dtype=np.float64)
    n, k = nn_idx.shape
    if n == 0:
        return np.zeros((0, 3), np.float32), np.zeros((0, 6))
    w = (nn_dist <= radius) | (np.arange(k)[None, :] < min_nn)
    w &= nn_idx < n
    idx = np.where(w, nn_idx, 0)
    wf = w.astype(np.float64)
    cnt = wf.sum(axis=1)
    nb = p[idx]  # (N,k,3)
    mean = (nb * wf[..., None]).sum(axis=1) / cnt[:, None]
    d = (nb - mean[:, None, :]) * np.sqrt(wf)[..., None]
    cov = np.einsum("nki,nkj->nij", d, d, optimize=False) / cnt[:, None, None]
    _, vecs = np.linalg.eigh(cov)
    normals = vecs[:, :, 0]
    centred = p - p.mean(axis=0)
    flip = np.einsum("ni,ni->n", normals, centred) < 0
    normals[flip] *= -1.0
    tr = np.trace(cov, axis1=1, axis2=2)
    shape = np.where(tr[:, None, None] > 0, cov / np.where(tr > 0, tr, 1.0)[:, None, None], 0.0)
    return normals.astype(np.float32), tensor_embedding(shape)


def tensor_embedding(t: np.ndarray) -> np.ndarray:
    """(N,3,3) symmetric tensors → (N,6) vectors with ‖e(A) − e(B)‖ = √2·‖A − B‖_F.

    Applied to the normalised covariance ``C/tr C`` of a neighbourhood: for two planar
    patches with normals n, m this distance is sin∠(n, m), the same small-angle behaviour
    as ‖n − m‖ in the original feature, but sign-free (a flipped normal changes nothing)
    and continuous where the normal is undefined: a thin rod, narrower than the
    neighbourhood, is a consistent "line" tensor instead of a random normal per point.
    """
    r2 = np.sqrt(2.0)
    return r2 * np.stack([t[:, 0, 0], t[:, 1, 1], t[:, 2, 2],
                          r2 * t[:, 0, 1], r2 * t[:, 0, 2], r2 * t[:, 1, 2]], axis=1)


def normal_embedding(normals: np.ndarray) -> np.ndarray:
    """Sign-invariant (N,6) embedding of n nᵀ with ‖e(n) − e(m)‖ = sin∠(n, m)."""
    n = np.asarray(normals, dtype=np.float64)
    return tensor_embedding(n[:, :, None] * n[:, None, :]) / 2.0


# --------------------------------------------------------------------------- graph


def knn_graph(nn_idx: np.ndarray, nn_dist: np.ndarray, k_adj: int) -> tuple[np.ndarray, ...]:
    """Directed edges i→j to the first ``k_adj`` neighbours other than i itself."""
    n = nn_idx.shape[0]
    valid = (nn_idx != np.arange(n)[:, None]) & (nn_idx < n)
    valid &= np.cumsum(valid, axis=1) <= k_adj
    src = np.broadcast_to(np.arange(n)[:, None], nn_idx.shape)[valid]
    return src.astype(np.int64), nn_idx[valid].astype(np.int64), nn_dist[valid].astype(np.float64)


def edge_weights(src: np.ndarray, dst: np.ndarray, dist: np.ndarray, feat: np.ndarray) -> np.ndarray:
    """SPEC §5.4: w = (1 / (1 + d/mean(d) + ‖f_i − f_j‖/mean‖f − f‖))²."""
    if src.size == 0:
        return np.zeros(0, np.float64)
    fd = np.linalg.norm(feat[src] - feat[dst], axis=1)
    md = dist.mean()
    mf = fd.mean()
    a = dist / md if md > 0 else np.zeros_like(dist)
    b = fd / mf if mf > 0 else np.zeros_like(fd)
    return (1.0 / (1.0 + a + b)) ** 2


# --------------------------------------------------------------------------- greedy L0


def _aggregate_edges(a: np.ndarray, b: np.ndarray, vals: np.ndarray, n_regions: int):
    """Canonical (a<b) undirected region edges with summed value columns (E,m).

    Returns (a, b, summed vals of the kept pairs, new_region_of_dropped, dropped vals):
    pairs with a == b (edges that became internal) are returned separately so that
    callers can add them to the region's internal statistics.
    """
    lo = np.minimum(a, b)
    hi = np.maximum(a, b)
    internal = lo == hi
    keep = ~internal
    key = lo[keep] * n_regions + hi[keep]
    inner = (lo[internal], vals[internal])
    if key.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, vals.shape[1])), inner
    uniq, inv = np.unique(key, return_inverse=True)
    sums = np.zeros((uniq.size, vals.shape[1]), dtype=np.float64)
    for c in range(vals.shape[1]):
        sums[:, c] = np.bincount(inv, weights=vals[keep, c], minlength=uniq.size)
    return uniq // n_regions, uniq % n_regions, sums, inner


class _RegionGraph:
    """Regions of a node graph and the statistics the merge rules need.

    Per region: size, feature sum, and the sum/count of feature differences over its
    internal node edges. Per adjacent region pair: summed edge weight W, and the
    sum/count of feature differences over the node edges crossing the boundary.
    """

    def __init__(self, feat: np.ndarray, src: np.ndarray, dst: np.ndarray, weight: np.ndarray):
        n = feat.shape[0]
        f = np.asarray(feat, dtype=np.float64)
        self.label = np.arange(n, dtype=np.int64)
        self.cnt = np.ones(n, dtype=np.float64)
        self.sums = f.copy()
        self.inner = np.zeros((n, 2), dtype=np.float64)  # (sum of ‖Δf‖, count) inside
        diff = np.linalg.norm(f[src] - f[dst], axis=1) if src.size else np.zeros(0)
        vals = np.stack([weight, diff, np.ones_like(diff)], axis=1)
        self.a, self.b, self.e, _ = _aggregate_edges(src, dst, vals, n)

    @property
    def n_regions(self) -> int:
        return self.cnt.shape[0]

    def gains(self, reg: float) -> np.ndarray:
        """Objective decrease of merging each adjacent pair: reg·W − |A||B|/(|A|+|B|)·‖Δμ‖²."""
        a, b, cnt = self.a, self.b, self.cnt
        mu = self.sums / cnt[:, None]
        diff = mu[a] - mu[b]
        cost = (cnt[a] * cnt[b] / (cnt[a] + cnt[b])) * np.einsum("ij,ij->i", diff, diff)
        return reg * self.e[:, 0] - cost

    def contrast(self) -> np.ndarray:
        """Mean feature jump across each boundary over the mean jump inside the two regions
        (pooled over their internal edges): ~1 where the boundary is no sharper than the
        surfaces it separates (an over-cut smooth surface), >> 1 at a real discontinuity."""
        a, b = self.a, self.b
        across = self.e[:, 1] / self.e[:, 2]
        inside_sum = self.inner[a, 0] + self.inner[b, 0]
        inside_cnt = self.inner[a, 1] + self.inner[b, 1]
        inside = np.where(inside_cnt > 0, inside_sum / np.maximum(inside_cnt, 1.0), across)
        return across / np.maximum(inside, 1e-12)

    def merge(self, new_id: np.ndarray) -> None:
        """Relabel regions by ``new_id`` (R,) → 0..R'-1 and update all statistics."""
        r_new = int(new_id.max()) + 1
        self.cnt = np.bincount(new_id, weights=self.cnt, minlength=r_new)
        sums = np.zeros((r_new, self.sums.shape[1]), dtype=np.float64)
        inner = np.zeros((r_new, 2), dtype=np.float64)
        for c in range(self.sums.shape[1]):
            sums[:, c] = np.bincount(new_id, weights=self.sums[:, c], minlength=r_new)
        for c in range(2):
            inner[:, c] = np.bincount(new_id, weights=self.inner[:, c], minlength=r_new)
        self.a, self.b, self.e, (ri, vi) = _aggregate_edges(new_id[self.a], new_id[self.b],
                                                           self.e, r_new)
        for c in range(2):
            inner[:, c] += np.bincount(ri, weights=vi[:, c + 1], minlength=r_new)
        self.sums, self.inner = sums, inner
        self.label = new_id[self.label]


def _ranked(score: np.ndarray, a: np.ndarray, b: np.ndarray, n_regions: int,
            candidates: np.ndarray):
    """Rank candidate edges by descending score (ties: edge order) and return the rank
    order and, per region, the rank of its best incident candidate (len(order) if none)."""
    order = candidates[np.argsort(-score[candidates], kind="stable")]
    rank = np.arange(order.size)
    best = np.full(n_regions, order.size, dtype=np.int64)
    np.minimum.at(best, a[order], rank)
    np.minimum.at(best, b[order], rank)
    return order, best


def _merge_mutual_best(g: _RegionGraph, score: np.ndarray, candidates: np.ndarray) -> bool:
    """Merge every candidate pair that is the best-scoring candidate of both its regions
    (a matching: disjoint pairs). Returns False when there was nothing to merge."""
    if candidates.size == 0:
        return False
    order, best = _ranked(score, g.a, g.b, g.n_regions, candidates)
    rank = np.arange(order.size)
    ea, eb = g.a[order], g.b[order]
    sel = (best[ea] == rank) & (best[eb] == rank)
    parent = np.arange(g.n_regions, dtype=np.int64)
    parent[eb[sel]] = ea[sel]
    _, new_id = np.unique(parent, return_inverse=True)
    g.merge(new_id)
    return True


def _l0_rounds(g: _RegionGraph, reg: float, max_rounds: int) -> None:
    """Phase 1: merge mutual-best pairs with a positive L0 gain until none is left."""
    for _ in range(max_rounds):
        if g.a.size == 0:
            return
        gain = g.gains(reg)
        if not _merge_mutual_best(g, gain, np.flatnonzero(gain > 0)):
            return


def _absorb_small(g: _RegionGraph, reg: float, min_size: int, max_rounds: int) -> None:
    """Phase 2: every region with <= min_size points joins its adjacent region of best
    (least negative) gain, i.e. the most similar neighbour given the shared boundary;
    picks are merged as connected components. Repeats until no small region has a
    neighbour."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    for _ in range(max_rounds):
        small = g.cnt <= min_size
        if g.a.size == 0 or not small.any():
            return
        cand = np.flatnonzero(small[g.a] | small[g.b])
        if cand.size == 0:
            return
        gain = g.gains(reg)
        order, best = _ranked(gain, g.a, g.b, g.n_regions, cand)
        pickers = np.flatnonzero(small & (best < order.size))
        e = order[best[pickers]]
        partner = np.where(g.a[e] == pickers, g.b[e], g.a[e])
        r = g.n_regions
        m = coo_matrix((np.ones(pickers.size), (pickers, partner)), shape=(r, r))
        _, new_id = connected_components(m, directed=False)
        g.merge(new_id.astype(np.int64))


def _contrast_rounds(g: _RegionGraph, max_contrast: float, max_rounds: int) -> None:
    """Phase 3: merge mutual-lowest-contrast pairs while the contrast is <= max_contrast."""
    for _ in range(max_rounds):
        if g.a.size == 0:
            return
        c = g.contrast()
        if not _merge_mutual_best(g, -c, np.flatnonzero(c <= max_contrast)):
            return


def greedy_l0_partition(
    feat: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    weight: np.ndarray,
    reg: float,
    min_size: int = 10,
    max_contrast: float = 0.0,
    max_rounds: int = 1000,
) -> np.ndarray:
    """Approximate argmin Σ‖x_i − f_i‖² + reg·Σ w_ij [x_i ≠ x_j] by mutual-best merging,
    absorb regions of <= min_size points into their most similar neighbour, then (if
    max_contrast > 0) merge neighbours separated by no sharper a boundary than their insides.

    Returns a region label per node (not contiguous). Deterministic: ties are broken by the
    canonical edge order. Small regions without any neighbour (isolated graph components)
    are left for :func:`merge_small_components`.
    """
    g = _RegionGraph(feat, src, dst, weight)
    _l0_rounds(g, reg, max_rounds)
    if min_size > 0:
        _absorb_small(g, reg, min_size, max_rounds)
    if max_contrast > 0:
        _contrast_rounds(g, max_contrast, max_rounds)
    return g.label


# --------------------------------------------------------------------------- cut pursuit


def cutpursuit_partition(feat, src, dst, weight, reg) -> np.ndarray:
    """L0 cut pursuit through ``pycut_pursuit`` (GPL-3.0; optional, imported lazily)."""
    try:
        from pycut_pursuit.cp_d0_dist import cp_d0_dist  # type: ignore[import-not-found]
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "backend='cutpursuit' needs pycut-pursuit (GPL-3.0), which is not installed; "
            "see STACK.md §8 for the numpy-2 build, or use backend='greedy'") from exc
    n = feat.shape[0]
    # forward-star graph: both directions of every edge, sorted by source
    s = np.concatenate([src, dst])
    t = np.concatenate([dst, src])
    ww = np.concatenate([weight, weight]) * 0.5 * reg
    order = np.lexsort((t, s))
    s, t, ww = s[order], t[order], ww[order]
    first_edge = np.zeros(n + 1, dtype=np.uint32)
    first_edge[1:] = np.cumsum(np.bincount(s, minlength=n))
    y = np.asfortranarray(feat.T.astype(np.float32))
    out = cp_d0_dist(y.shape[0], y, first_edge, t.astype(np.uint32),
                     edge_weights=ww.astype(np.float32), verbose=False)
    comp = out[0] if isinstance(out, tuple) else out
    return np.asarray(comp, dtype=np.int64).reshape(n)  # pragma: no cover


# --------------------------------------------------------------------------- post-processing


def merge_small_components(xyz: np.ndarray, label: np.ndarray, min_size: int) -> np.ndarray:
    """SPEC §5.6: components with <= min_size points join the large component owning the
    nearest large point to the small component's first point. No large component: one
    superpoint for the whole cloud."""
    n = label.shape[0]
    if n == 0:
        return label
    uniq, first, inv, counts = np.unique(label, return_index=True, return_inverse=True,
                                         return_counts=True)
    small = counts <= min_size
    if not small.any():
        return inv
    if small.all():
        return np.zeros(n, dtype=np.int64)
    large_pts = np.flatnonzero(~small[inv])
    tree = cKDTree(xyz[large_pts])
    small_ids = np.flatnonzero(small)
    _, nearest = tree.query(xyz[first[small_ids]], k=1)
    target = inv.copy()
    remap = np.arange(uniq.size)
    remap[small_ids] = inv[large_pts[nearest]]
    return remap[target]


def relabel_by_first_point(label: np.ndarray) -> np.ndarray:
    """Contiguous int32 ids 0..S-1, numbered in the order of each region's first point."""
    if label.size == 0:
        return label.astype(np.int32)
    _, first, inv = np.unique(label, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[inv].astype(np.int32)


# --------------------------------------------------------------------------- entry point


def compute_superpoints(
    xyz: np.ndarray,
    rgb: np.ndarray | None,
    *,
    k_adj: int = 10,
    reg: float = 0.05,
    rgb_weight: float = 0.3,
    min_size: int = 10,
    backend: str = "auto",
    normal_radius: float = 0.1,
    normal_max_nn: int = 30,
) -> SuperpointResult:
    """Superpoints of an (N,3) normalised cloud with (N,3) uint8 colours (or None).

    Deterministic for identical inputs. Never fails on N = 1, N < k, duplicate or all-equal
    points, or constant colour (those simply give few, possibly one, superpoints).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if reg < 0 or k_adj < 1 or min_size < 0:
        raise ValueError("need reg >= 0, k_adj >= 1 and min_size >= 0")
    p = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    n = p.shape[0]
    if not np.isfinite(p).all():
        raise ValueError("xyz contains NaN or inf")
    if rgb is not None and np.asarray(rgb).shape != (n, 3):
        raise ValueError(f"rgb shape {np.asarray(rgb).shape} does not match ({n}, 3)")
    if n == 0:
        return SuperpointResult(np.zeros(0, np.int32), np.zeros((0, 3), np.float32))

    k = min(max(normal_max_nn, k_adj + 1), n)
    tree = cKDTree(p)
    nn_dist, nn_idx = tree.query(p, k=k, workers=-1)
    nn_dist = nn_dist.reshape(n, k)
    nn_idx = nn_idx.reshape(n, k).astype(np.int64)
    normals, shape = local_geometry(p, nn_idx[:, :normal_max_nn], nn_dist[:, :normal_max_nn],
                                    radius=normal_radius)

    colour = np.zeros((n, 3)) if rgb is None else np.asarray(rgb, dtype=np.float64) / 255.0
    feat = np.concatenate([FEAT(normals, shape, nn_idx), rgb_weight * colour], axis=1)
    src, dst, dist = knn_graph(nn_idx, nn_dist, k_adj)
    w = edge_weights(src, dst, dist, feat)

    if backend == "cutpursuit":
        label = cutpursuit_partition(feat, src, dst, w, reg)
    else:
        label = greedy_l0_partition(feat, src, dst, w, reg, min_size=min_size, max_contrast=CONTRAST)
    label = merge_small_components(p, label, min_size)
    return SuperpointResult(sp=relabel_by_first_point(label), normals=normals)
