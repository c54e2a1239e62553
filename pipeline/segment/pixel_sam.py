"""SIMULATED SAM that sees only pixels (segment mode ``pixels``).

Why: a simulated SAM that returns exactly one ground-truth part per box is a perfect part
segmenter; real SAM merges adjacent parts of one colour and splits textured ones. This one
cuts its masks from a ground-truth-free over-segmentation of the rendered view:

1. the sparse splat render is filled in from its front points (:func:`pipeline.pixels.view_image`:
   densified colour and depth) and an edge map is taken: colour gradient + ``depth_weight`` x
   depth gradient;
2. superpixels: SLIC-style clustering of the surface pixels on densified colour, weighted
   depth and position, from one centre per grid cell (the cell's weakest-edge pixel; about
   ``n_superpixels`` of them over the object);
3. graph-based merging (Felzenszwalb & Huttenlocher's criterion on the superpixel adjacency
   graph): neighbours merge when their colour/depth difference is within the regions' own
   internal variation + ``merge_scale`` / size (difference = distance of the regions' mean
   colours + ``depth_weight`` x the depth gradient across their border), so regions of one
   colour without a depth step merge across part borders and strong texture can stay
   split; regions under ``min_region`` pixels join their closest neighbour.

A box prompt gets the union of the segments lying mostly inside it (at least ``inside`` of
their pixels in the box), cut to the box; when that covers less than ``min_cover`` of the
box's surface (the box sits inside a large segment: a tight box on a door that merged with
the cabinet), the segments that fill at least ``min_cover`` of the box are taken instead,
cut to the box. Nothing reads labels, instances or points: only rgb and depth.

Deterministic and portable: elementwise float64 distances, first-index argmins, fixed-order
scipy filters, bincount sums and a stable edge order.
"""

from __future__ import annotations

import numpy as np

from pipeline.boxes import box_pixel_ranges
from pipeline.detect.types import Detections
from pipeline.pixels import sobel, view_image

from .pixel_sam_params import PixelSamParams


def _superpixels(feat: np.ndarray, support: np.ndarray, edge: np.ndarray, spacing: int, compactness: float, iterations: int) -> np.ndarray:
    """(h,w) int64 SLIC superpixels of the support (-1 elsewhere): one centre per grid cell
    with support (started at the cell's weakest-edge pixel, first in row-major order on ties),
    then ``iterations`` rounds of assigning each pixel to the nearest centre among the 3x3
    cells around its own (distance² = feature distance² + (compactness · pixel distance /
    spacing)²) and moving centres to their pixels' means."""
    h, w = support.shape
    gh, gw = -(-h // spacing), -(-w // spacing)
    pad = np.full((gh * spacing, gw * spacing), np.inf)
    pad[:h, :w] = np.where(support, edge, np.inf)
    cells = pad.reshape(gh, spacing, gw, spacing).transpose(0, 2, 1, 3).reshape(gh, gw, spacing * spacing)
    arg = np.argmin(cells, axis=2)
    has = np.isfinite(np.take_along_axis(cells, arg[..., None], axis=2)[..., 0])
    cy, cx = np.nonzero(has)
    n = cy.shape[0]
    cell_id = np.full((gh + 2, gw + 2), -1, np.int64)  # padded: neighbours of border cells are -1
    cell_id[cy + 1, cx + 1] = np.arange(n)
    a = arg[cy, cx]
    c_r = (cy * spacing + a // spacing).astype(np.float64)
    c_c = (cx * spacing + a % spacing).astype(np.float64)
    pr, pc = np.nonzero(support)
    pf = feat[:, pr, pc].T  # (P, F)
    c_f = feat[:, c_r.astype(np.int64), c_c.astype(np.int64)].T.copy()  # (n, F)
    gr, gc = pr // spacing, pc // spacing
    cand = np.stack([cell_id[gr + 1 + dy, gc + 1 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)], 1)  # (P, 9)
    valid = cand >= 0
    cs = np.maximum(cand, 0)
    wxy = compactness / float(spacing)
    prf, pcf = pr.astype(np.float64), pc.astype(np.float64)
    lab = np.zeros(pr.shape[0], np.int64)
    for _ in range(max(int(iterations), 1)):
        d = np.zeros(cand.shape)
        for k in range(pf.shape[1]):
            t = pf[:, k, None] - c_f[cs, k]
            d = d + t * t
        t = (prf[:, None] - c_r[cs]) * wxy
        d = d + t * t
        t = (pcf[:, None] - c_c[cs]) * wxy
        d = d + t * t
        d = np.where(valid, d, np.inf)
        lab = cs[np.arange(cs.shape[0]), np.argmin(d, axis=1)]
        cnt = np.bincount(lab, minlength=n).astype(np.float64)
        ok = cnt > 0
        inv = 1.0 / np.maximum(cnt, 1.0)
        c_r = np.where(ok, np.bincount(lab, weights=prf, minlength=n) * inv, c_r)
        c_c = np.where(ok, np.bincount(lab, weights=pcf, minlength=n) * inv, c_c)
        c_f = np.stack([np.where(ok, np.bincount(lab, weights=pf[:, k], minlength=n) * inv, c_f[:, k]) for k in range(pf.shape[1])], 1)
    out = np.full((h, w), -1, np.int64)
    out[pr, pc] = _compact(lab, n)  # drop centres that lost every pixel
    return out


def _compact(ids: np.ndarray, n: int) -> np.ndarray:
    """Non-negative ids in 0..n-1 renumbered 0.. in order, skipping unused ones."""
    used = np.bincount(ids, minlength=n) > 0
    return (np.cumsum(used) - 1)[ids]


#: superpixels are computed on blocks when the object covers more support pixels than this
_BLOCK_PIXELS = 15000


def _blocks(feat: np.ndarray, support: np.ndarray, edge: np.ndarray, f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean features and edge strength over the support pixels of f x f blocks; a block is on
    the support when any of its pixels is."""
    h, w = support.shape
    bh, bw = -(-h // f), -(-w // f)

    def block_sum(a: np.ndarray) -> np.ndarray:
        pad = np.zeros((bh * f, bw * f))
        pad[:h, :w] = a
        return pad.reshape(bh, f, bw, f).sum(axis=(1, 3))

    supf = support.astype(np.float64)
    cnt = block_sum(supf)
    inv = 1.0 / np.maximum(cnt, 1.0)
    bfeat = np.stack([block_sum(feat[k] * supf) * inv for k in range(feat.shape[0])])
    bedge = block_sum(np.where(support, edge, 0.0)) * inv
    return bfeat, cnt > 0, bedge


def _find(parent: list[int], i: int) -> int:
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:
        parent[i], i = root, parent[i]
    return root


def oversegment(rgb: np.ndarray, depth: np.ndarray, params: PixelSamParams | None = None) -> np.ndarray:
    """(H,W) int32 segment id per pixel (0..S-1), -1 off the object's surface."""
    prm = params or PixelSamParams()
    H, W = np.shape(depth)
    seg = np.full((H, W), -1, np.int32)
    vim = view_image(rgb, depth, sigma=prm.sigma)
    if vim is None or not vim.support.any():
        return seg
    sup = vim.support
    n_sup = int(sup.sum())
    # edge map: colour gradient magnitude + depth_weight x depth gradient magnitude
    acc = np.zeros(sup.shape)
    for c in range(3):
        gx, gy = sobel(vim.colour[c])
        acc = acc + gx * gx
        acc = acc + gy * gy
    gx, gy = sobel(vim.depth)
    zgrad = np.sqrt(gx * gx + gy * gy)
    edge = np.sqrt(acc) + prm.depth_weight * zgrad
    feat = np.concatenate([vim.colour, prm.depth_weight * vim.depth[None]], axis=0)
    # superpixels on f x f blocks when the object is large (their borders snap to block edges;
    # f = 2 on a 512 px render), so the cost stays about that of a 192 px render
    f = max(int(np.ceil(np.sqrt(n_sup / _BLOCK_PIXELS))), 1)
    if f > 1:
        bfeat, bsup, bedge = _blocks(feat, sup, edge, f)
        n_b = int(bsup.sum())
        spacing = max(int(np.rint(np.sqrt(n_b / max(prm.n_superpixels, 1)))), 2)
        blab = _superpixels(bfeat, bsup, bedge, spacing, prm.compactness, prm.iterations)
        h, w = sup.shape
        lab = np.where(sup, np.repeat(np.repeat(blab, f, 0), f, 1)[:h, :w], -1)
        on = lab >= 0
        lab[on] = _compact(lab[on], int(blab.max()) + 1)
    else:
        spacing = max(int(np.rint(np.sqrt(n_sup / max(prm.n_superpixels, 1)))), 2)
        lab = _superpixels(feat, sup, edge, spacing, prm.compactness, prm.iterations)
    R = int(lab.max()) + 1
    if R <= 0:
        return seg
    flat = lab[sup]
    size = np.bincount(flat, minlength=R).astype(np.float64)
    # region colour: the mean rendered colour of its front points (sharp: a region along a
    # blurred border is not half-way between its neighbours); the densified colour without one
    on = vim.front & sup
    raw = np.asarray(rgb[vim.r0 : vim.r0 + sup.shape[0], vim.c0 : vim.c0 + sup.shape[1]], np.float64) / 255.0
    n_pts = np.bincount(lab[on], minlength=R).astype(np.float64)
    feats = []
    for c in range(3):
        pts = np.bincount(lab[on], weights=raw[..., c][on], minlength=R)
        dense = np.bincount(flat, weights=vim.colour[c][sup], minlength=R)
        feats.append(np.where(n_pts > 0, pts / np.maximum(n_pts, 1.0), dense / np.maximum(size, 1.0)))
    mean = np.stack(feats, 1)
    # adjacency (4-neighbours) between superpixels, with the depth step across each border:
    # the mean depth-gradient magnitude on its pixel pairs (a slanted surface has a small
    # gradient everywhere, an occlusion border a large one)
    pairs, steps = [], []
    for sl_a, sl_b in (
        ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
        ((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
    ):
        a, b = lab[sl_a], lab[sl_b]
        m = (a >= 0) & (b >= 0) & (a != b)
        lo, hi = np.minimum(a[m], b[m]), np.maximum(a[m], b[m])
        pairs.append(lo * R + hi)
        steps.append((zgrad[sl_a][m] + zgrad[sl_b][m]) * 0.5)
    allp = np.concatenate(pairs)
    codes, inv = np.unique(allp, return_inverse=True)
    n_pair = np.bincount(inv, minlength=codes.shape[0]).astype(np.float64)
    step = np.bincount(inv, weights=np.concatenate(steps), minlength=codes.shape[0]) / np.maximum(n_pair, 1.0)
    ea, eb = codes // R, codes % R
    dc = mean[ea, :3] - mean[eb, :3]
    wgt = np.sqrt(dc[:, 0] * dc[:, 0] + dc[:, 1] * dc[:, 1] + dc[:, 2] * dc[:, 2]) + prm.depth_weight * step
    order = np.lexsort((codes, wgt))
    # region sizes scale with the object's area: the parameters are given for 3000 surface pixels
    area_scale = n_sup / 3000.0
    k = prm.merge_scale * area_scale
    min_region = prm.min_region * area_scale
    parent = list(range(R))
    sz = size.tolist()
    internal = [0.0] * R
    ea_l, eb_l, w_l = ea[order].tolist(), eb[order].tolist(), wgt[order].tolist()
    for a, b, w in zip(ea_l, eb_l, w_l):
        ra, rb = _find(parent, a), _find(parent, b)
        if ra == rb:
            continue
        if w <= min(internal[ra] + k / sz[ra], internal[rb] + k / sz[rb]):
            parent[rb] = ra
            sz[ra] += sz[rb]
            internal[ra] = max(internal[ra], internal[rb], w)
    for a, b in zip(ea_l, eb_l):
        ra, rb = _find(parent, a), _find(parent, b)
        if ra != rb and (sz[ra] < min_region or sz[rb] < min_region):
            parent[rb] = ra
            sz[ra] += sz[rb]
    roots = np.array([_find(parent, i) for i in range(R)], np.int64)
    compact = _compact(roots, R)
    crop = np.where(lab >= 0, compact[np.maximum(lab, 0)], -1)
    h, w = sup.shape
    seg[vim.r0 : vim.r0 + h, vim.c0 : vim.c0 + w] = crop.astype(np.int32)
    return seg


def segment_sizes(seg: np.ndarray) -> np.ndarray:
    """(S,) float64 pixel count of each segment of a segment map."""
    return np.bincount(seg[seg >= 0], minlength=int(seg.max()) + 1).astype(np.float64)


def box_mask(seg: np.ndarray, xyxy: np.ndarray, params: PixelSamParams | None = None, sizes: np.ndarray | None = None) -> np.ndarray:
    """(H,W) bool mask of one box prompt on a segment map (see the module docstring);
    ``sizes``: the pixel count of each segment, when already known."""
    prm = params or PixelSamParams()
    H, W = seg.shape
    out = np.zeros((H, W), bool)
    r0, r1, c0, c1 = box_pixel_ranges(np.asarray(xyxy, np.float64)[None], H, W)[0]
    if r0 >= r1 or c0 >= c1:
        return out
    crop = seg[r0:r1, c0:c1]
    on = crop >= 0
    n_on = int(on.sum())
    if n_on == 0:
        return out
    total = segment_sizes(seg) if sizes is None else np.asarray(sizes, np.float64)
    S = total.shape[0]
    inside = np.bincount(crop[on], minlength=S).astype(np.float64)
    sel = inside >= prm.inside * np.maximum(total, 1.0)
    sel &= inside > 0
    if inside[sel].sum() < prm.min_cover * n_on:
        sel = inside >= prm.min_cover * n_on
        if not sel.any():
            sel = inside == inside.max()
    out[r0:r1, c0:c1] = on & sel[np.maximum(crop, 0)]
    return out


def pixel_masks(det: Detections, rgb: np.ndarray, depth: np.ndarray, params: PixelSamParams | None = None) -> np.ndarray:
    """SIMULATED SAM masks (B,H,W) bool for the boxes of one object from its renders
    (rgb (V,H,W,3) uint8, depth (V,H,W), 0 = background)."""
    prm = params or PixelSamParams()
    depth = np.asarray(depth)
    V, H, W = depth.shape
    masks = np.zeros((len(det), H, W), dtype=bool)
    if len(det) == 0:
        return masks
    offs = det.offsets(V)
    for v in range(V):
        if offs[v] == offs[v + 1]:
            continue
        seg = oversegment(rgb[v], depth[v], prm)
        sizes = segment_sizes(seg)
        for b in range(offs[v], offs[v + 1]):
            masks[b] = box_mask(seg, det.xyxy[b], prm, sizes)
    return masks


class PixelMasker:
    """Masker interface twin of :class:`pipeline.segment.sam.SamMasker` (SIMULATED, pixels only)."""

    simulated = True

    def __init__(self, depth: np.ndarray, params: PixelSamParams | None = None):
        self.depth = np.asarray(depth)
        self.params = params or PixelSamParams()

    def masks_for_object(self, images: np.ndarray, det: Detections, embeddings=None):
        """images (V,H,W,3) uint8 -> (masks (B,H,W) bool, {}) (no embeddings to cache)."""
        return pixel_masks(det, images, self.depth, self.params), {}
