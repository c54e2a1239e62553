"""Superpoints: a piecewise-homogeneous partition of the cloud (SPEC §5).

PartSLIP/PartSTAD run L0 cut pursuit (``libcp``, GPL) on a 10-NN graph with node features
``f = [normal, 0.3·rgb]`` and minimise ``Σ‖x_i − f_i‖² + λ Σ_(i,j) w_ij [x_i ≠ x_j]``
(λ = reg = 0.05), then merge components of <= 10 points into a neighbour. The default
backend here (``"greedy"``) is an in-house, MIT-licensed approximation on numpy/scipy:

1. **L0 merging.** Start from one region per point. Each round, every pair of adjacent
   regions (A,B) gets the objective decrease of merging them,
   ``gain = λ·W_AB − |A||B|/(|A|+|B|)·‖μ_A − μ_B‖²`` (boundary penalty saved minus squared
   error added; W_AB = summed weights of the kNN edges between them). Every region picks
   its best positive-gain neighbour and *mutual* best pairs merge (a matching, so no chain
   can join regions that were never compared). Rounds repeat until no pair has a positive
   gain. Each round is a few sorts/bincounts over the region graph.
2. **Growing small regions.** Bottom-up merging stalls where features are noisy at the
   point scale (thin rods and rims narrower than the normal-estimation neighbourhood,
   strongly curved patches, the blurred-normal strip along every crease), leaving many
   tiny regions that cut pursuit's top-down splits would not produce. Every region of
   <= ``grow_size`` points joins the adjacent region that is most similar *relative to how
   strongly the two are attached*: the smallest ``‖μ_A − μ_B‖² / (ε + W_AB / min(|A|,|B|))``
   (W_AB / min(|A|,|B|) = summed boundary edge weight per point of the smaller region).
   A crease fragment thus joins the face it is woven into rather than one it touches at a
   few points with a marginally closer mean (plain nearest-mean growing lets crease strips
   hop across part boundaries). All picks merge at once, as connected components, until
   no small region is left. ``grow_size`` (default 30) sets the granularity, ``reg`` the
   homogeneity.
3. **SPEC §5.6 safety net.** Components still <= ``min_size`` (only possible for pieces
   with no graph neighbour) join the large component owning the nearest neighbour of
   their first point; if no component is large the whole cloud is one superpoint (SPEC
   §11.19 crashes there).

Regions are connected in the kNN graph. Normals (SPEC §5.1): PCA over the neighbours within
radius 0.1 (at most 30 including the point itself; at least 3), smallest eigenvector of the
batched 3×3 covariances. The *returned* normals are oriented away from the centroid (a
deterministic choice; the original leaves the sign to the solver, SPEC §11.18). The
partition never sees the sign: its normal feature is the sign-invariant embedding of
``n nᵀ`` with ‖e(n) − e(m)‖ = sin∠(n, m) (≈ ‖n − m‖ for small angles, like the original
feature), so a flipped normal cannot cut a flat patch in two.

``backend="cutpursuit"`` runs ``pycut_pursuit.cp_d0_dist`` (GPL-3.0, not a dependency,
imported only when asked) on the same graph and features, then steps 2–3. ``"auto"`` means
``"greedy"``, so results never depend on what happens to be installed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from pipeline import portable as pm

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


def estimate_normals(
    xyz: np.ndarray,
    nn_idx: np.ndarray,
    nn_dist: np.ndarray,
    radius: float = 0.1,
    min_nn: int = 3,
) -> np.ndarray:
    """PCA normals (N,3) float32 from a sorted kNN table (N,k) (self included, as in
    Open3D's hybrid search).

    Neighbours beyond ``radius`` are ignored, except that the nearest ``min_nn`` always
    count. Smallest-eigenvalue axis, oriented away from the centroid; degenerate
    neighbourhoods (all points equal) give the eigensolver's first axis.
    """
    p = np.asarray(xyz, dtype=np.float64)
    n, k = nn_idx.shape
    if n == 0:
        return np.zeros((0, 3), np.float32)
    w = (nn_dist <= radius) | (np.arange(k)[None, :] < min_nn)
    w &= nn_idx < n
    wf = w.astype(np.float64)
    cnt = wf.sum(axis=1)
    # neighbours relative to the query point (small numbers: the one-pass covariance
    # E[dd^T] - E[d]E[d]^T stays accurate), the 6 distinct entries as plain reductions
    d = p[np.where(w, nn_idx, 0)] - p[:, None, :]
    dw = d * wf[..., None]
    m = dw.sum(axis=1) / cnt[:, None]
    cov = np.empty((n, 3, 3), dtype=np.float64)
    for i in range(3):
        for j in range(i, 3):
            c = np.sum(dw[..., i] * d[..., j], axis=1) / cnt - m[:, i] * m[:, j]
            cov[:, i, j] = c
            cov[:, j, i] = c
    # Jacobi, not LAPACK: rods have two near-equal eigenvalues, where LAPACK's axis depends on
    # the CPU's kernels (pipeline/portable.py)
    normals = pm.smallest_eigenvectors(cov)
    centred = p - p.mean(axis=0)
    flip = pm.rowdot(normals, centred) < 0
    normals[flip] *= -1.0
    return normals.astype(np.float32)


def normal_embedding(normals: np.ndarray) -> np.ndarray:
    """Sign-invariant (N,6) embedding of n nᵀ with ‖e(n) − e(m)‖ = sin∠(n, m) for unit n, m.

    e = (n_x², n_y², n_z², √2·n_x·n_y, √2·n_x·n_z, √2·n_y·n_z) / √2, so ‖e(n) − e(m)‖² =
    ‖nnᵀ − mmᵀ‖²_F / 2 = 1 − (n·m)².
    """
    n = np.asarray(normals, dtype=np.float64)
    r2 = np.sqrt(2.0)
    e = np.stack([n[:, 0] ** 2, n[:, 1] ** 2, n[:, 2] ** 2, r2 * n[:, 0] * n[:, 1], r2 * n[:, 0] * n[:, 2], r2 * n[:, 1] * n[:, 2]], axis=1)
    return e / r2


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
    fd = pm.norm(feat[src] - feat[dst], axis=1)
    md = dist.mean()
    mf = fd.mean()
    a = dist / md if md > 0 else np.zeros_like(dist)
    b = fd / mf if mf > 0 else np.zeros_like(fd)
    return (1.0 / (1.0 + a + b)) ** 2


# --------------------------------------------------------------------------- greedy L0


def _aggregate_edges(a: np.ndarray, b: np.ndarray, w: np.ndarray, n_regions: int):
    """Canonical (a<b) undirected region edges with summed weights; internal edges dropped."""
    lo = np.minimum(a, b)
    hi = np.maximum(a, b)
    keep = lo != hi
    key = lo[keep] * n_regions + hi[keep]
    if key.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    uniq, inv = np.unique(key, return_inverse=True)
    wsum = np.bincount(inv, weights=w[keep], minlength=uniq.size)
    return uniq // n_regions, uniq % n_regions, wsum


class _RegionGraph:
    """Regions of the node graph with the sufficient statistics of the L0 objective:
    size and feature sum per region, summed edge weight per adjacent region pair."""

    def __init__(self, feat: np.ndarray, src: np.ndarray, dst: np.ndarray, weight: np.ndarray, label: np.ndarray | None = None):
        n = feat.shape[0]
        f = np.asarray(feat, dtype=np.float64)
        self.label: np.ndarray = np.arange(n, dtype=np.int64)
        self.cnt: np.ndarray = np.ones(n, dtype=np.float64)
        self.sums: np.ndarray = f.copy()
        self.a, self.b, self.w = _aggregate_edges(src, dst, np.asarray(weight, np.float64), n)
        if label is not None:
            _, new_id = np.unique(label, return_inverse=True)
            self.merge(new_id.astype(np.int64))

    @property
    def n_regions(self) -> int:
        return self.cnt.shape[0]

    def means(self) -> np.ndarray:
        return self.sums / self.cnt[:, None]

    def gains(self, reg: float) -> np.ndarray:
        """Objective decrease of merging each adjacent pair: reg·W − |A||B|/(|A|+|B|)·‖Δμ‖²."""
        a, b, cnt = self.a, self.b, self.cnt
        mu = self.means()
        diff = mu[a] - mu[b]
        cost = (cnt[a] * cnt[b] / (cnt[a] + cnt[b])) * pm.rowdot(diff, diff)
        return reg * self.w - cost

    def merge(self, new_id: np.ndarray) -> None:
        """Relabel regions by ``new_id`` (R,) → 0..R'-1 and update the statistics."""
        r_new = int(new_id.max()) + 1
        self.cnt = np.bincount(new_id, weights=self.cnt, minlength=r_new)
        sums = np.empty((r_new, self.sums.shape[1]), dtype=np.float64)
        for c in range(self.sums.shape[1]):
            sums[:, c] = np.bincount(new_id, weights=self.sums[:, c], minlength=r_new)
        self.sums = sums
        self.label = new_id[self.label]
        self.a, self.b, self.w = _aggregate_edges(new_id[self.a], new_id[self.b], self.w, r_new)


def _ranked(score: np.ndarray, a: np.ndarray, b: np.ndarray, n_regions: int, candidates: np.ndarray):
    """Candidate edges by descending score (ties: edge order) and, per region, the rank
    of its best incident candidate (len(order) if it has none)."""
    order = candidates[np.argsort(-score[candidates], kind="stable")]
    rank = np.arange(order.size)
    best = np.full(n_regions, order.size, dtype=np.int64)
    np.minimum.at(best, a[order], rank)
    np.minimum.at(best, b[order], rank)
    return order, best


def _pick_partners(g: _RegionGraph, score: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Each region's best-scoring candidate neighbour (-1 if none); ties: edge order."""
    order, best = _ranked(score, g.a, g.b, g.n_regions, candidates)
    partner = np.full(g.n_regions, -1, dtype=np.int64)
    has = np.flatnonzero(best < order.size)
    e = order[best[has]]
    partner[has] = np.where(g.a[e] == has, g.b[e], g.a[e])
    return partner


def _merge_links(g: _RegionGraph, u: np.ndarray, v: np.ndarray) -> None:
    """Merge the connected components of the region links (u_i, v_i)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    r = g.n_regions
    m = coo_matrix((np.ones(u.size), (u, v)), shape=(r, r))
    _, new_id = connected_components(m, directed=False)
    g.merge(new_id.astype(np.int64))


def _l0_rounds(g: _RegionGraph, reg: float, max_rounds: int) -> None:
    """Step 1: merge with positive L0 gain until no pair has one.

    Each round every region picks its best positive-gain neighbour. Mutual picks merge,
    and so does every region whose pick belongs to a mutual pair (a star around it: a big
    region can swallow all the small ones that prefer it in one round instead of one per
    round). Longer pick chains wait for a later round, so two regions that were never
    compared are never joined through a long chain.
    """
    for _ in range(max_rounds):
        if g.a.size == 0:
            return
        gain = g.gains(reg)
        pos = np.flatnonzero(gain > 0)
        if pos.size == 0:
            return
        partner = _pick_partners(g, gain, pos)
        src = np.flatnonzero(partner >= 0)
        dst = partner[src]
        mutual = np.zeros(g.n_regions, dtype=bool)
        mutual[src] = partner[dst] == src
        link = mutual[src] | mutual[dst]
        _merge_links(g, src[link], dst[link])


#: Floor of the contact strength in the growing score (summed edge weight per point; one
#: kNN edge typically weighs 0.1-0.3), so that a pair joined by vanishing weights still
#: has a finite score.
_CONTACT_FLOOR = 1e-3


def _grow_small(g: _RegionGraph, grow_size: int, max_rounds: int) -> None:
    """Step 2: every region of <= grow_size points joins the adjacent region with the
    smallest squared mean-feature distance per unit of contact strength (summed boundary
    edge weight per point of the smaller region); all picks of a round merge as connected
    components. Stops when no small region has a neighbour left."""
    for _ in range(max_rounds):
        small = g.cnt <= grow_size
        if g.a.size == 0 or not small.any():
            return
        cand = np.flatnonzero(small[g.a] | small[g.b])
        if cand.size == 0:
            return
        mu = g.means()
        d = mu[g.a] - mu[g.b]
        contact = g.w / np.minimum(g.cnt[g.a], g.cnt[g.b])
        partner = _pick_partners(g, -pm.rowdot(d, d) / (_CONTACT_FLOOR + contact), cand)
        pickers = np.flatnonzero(small & (partner >= 0))
        if pickers.size == 0:
            return
        _merge_links(g, pickers, partner[pickers])


def greedy_l0_partition(
    feat: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    weight: np.ndarray,
    reg: float,
    max_rounds: int = 10_000,
) -> np.ndarray:
    """Step 1 only: approximate argmin Σ‖x_i − f_i‖² + reg·Σ w_ij [x_i ≠ x_j] by rounds of
    mutual-best merging. Returns a region label per node (not contiguous); deterministic,
    ties broken by the canonical edge order."""
    g = _RegionGraph(feat, src, dst, weight)
    _l0_rounds(g, reg, max_rounds)
    return g.label


def grow_small_regions(
    label: np.ndarray,
    feat: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    weight: np.ndarray,
    grow_size: int,
    max_rounds: int = 10_000,
) -> np.ndarray:
    """Step 2 on any partition (node labels): see :func:`_grow_small`."""
    if grow_size <= 0 or label.size == 0:
        return label
    g = _RegionGraph(feat, src, dst, weight, label=label)
    _grow_small(g, grow_size, max_rounds)
    return g.label


# --------------------------------------------------------------------------- cut pursuit


def cutpursuit_partition(feat, src, dst, weight, reg) -> np.ndarray:
    """L0 cut pursuit through ``pycut_pursuit`` (GPL-3.0; optional, imported lazily)."""
    try:
        from pycut_pursuit.cp_d0_dist import cp_d0_dist
    except ImportError as exc:
        raise ImportError(
            "backend='cutpursuit' needs pycut-pursuit (GPL-3.0), which is not installed; "
            "see docs/stack.md §8 for the numpy-2 build, or use backend='greedy'"
        ) from exc
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
    out = cp_d0_dist(y.shape[0], y, first_edge, t.astype(np.uint32), edge_weights=ww.astype(np.float32), verbose=False)
    comp = out[0] if isinstance(out, tuple) else out
    return np.asarray(comp, dtype=np.int64).reshape(n)


# --------------------------------------------------------------------------- post-processing


def merge_small_components(xyz: np.ndarray, label: np.ndarray, min_size: int) -> np.ndarray:
    """SPEC §5.6: components with <= min_size points join the large component owning the
    nearest large point to the small component's first point. No large component: one
    superpoint for the whole cloud."""
    n = label.shape[0]
    if n == 0:
        return label
    uniq, first, inv, counts = np.unique(label, return_index=True, return_inverse=True, return_counts=True)
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
    grow_size: int = 30,
    backend: str = "auto",
    normal_radius: float = 0.1,
    normal_max_nn: int = 30,
) -> SuperpointResult:
    """Superpoints of an (N,3) normalised cloud with (N,3) uint8 colours (None = no colour).

    ``reg``: L0 regularisation (higher = fewer, less homogeneous regions); ``grow_size``:
    regions up to this size are grown into their most similar neighbour (0 disables);
    ``min_size``: SPEC §5.6 final merge of components <= min_size. Deterministic for
    identical inputs. Never fails on N = 1, N < k, duplicate or all-equal points, or
    constant colour (those simply give few, possibly one, superpoints).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if reg < 0 or k_adj < 1 or min_size < 0 or grow_size < 0 or normal_max_nn < 1:
        raise ValueError("need reg >= 0, k_adj >= 1, normal_max_nn >= 1, min_size >= 0, grow_size >= 0")
    p = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    n = p.shape[0]
    if not np.isfinite(p).all():
        raise ValueError("xyz contains NaN or inf")
    if rgb is not None and np.asarray(rgb).shape != (n, 3):
        raise ValueError(f"rgb shape {np.asarray(rgb).shape} does not match ({n}, 3)")
    if n == 0:
        return SuperpointResult(np.zeros(0, np.int32), np.zeros((0, 3), np.float32))

    k = min(max(normal_max_nn, k_adj + 1), n)
    nn_dist, nn_idx = cKDTree(p).query(p, k=k, workers=-1)
    nn_dist = np.asarray(nn_dist, dtype=np.float64).reshape(n, k)
    nn_idx = np.asarray(nn_idx, dtype=np.int64).reshape(n, k)
    normals = estimate_normals(p, nn_idx[:, :normal_max_nn], nn_dist[:, :normal_max_nn], radius=normal_radius)

    colour = np.zeros((n, 3)) if rgb is None else np.asarray(rgb, dtype=np.float64) / 255.0
    feat = np.concatenate([normal_embedding(normals), rgb_weight * colour], axis=1)
    src, dst, dist = knn_graph(nn_idx, nn_dist, k_adj)
    w = edge_weights(src, dst, dist, feat)

    if backend == "cutpursuit":
        label = cutpursuit_partition(feat, src, dst, w, reg)
    else:
        label = greedy_l0_partition(feat, src, dst, w, reg)
    label = grow_small_regions(label, feat, src, dst, w, grow_size)
    label = merge_small_components(p, label, min_size)
    return SuperpointResult(sp=relabel_by_first_point(label), normals=normals)
