"""SIMULATED SAM that reads the ground truth (mode ``oracle``, the ground-truth oracle for tests
and comparisons): the ground-truth segment that each box frames, cut to the box. It never
merges two parts or splits one, as a real SAM does; mode ``pixels``
(:mod:`pipeline.segment.pixel_sam`) cuts masks from the rendered image instead.

SAM prompted with a box returns the object the box *frames*, not the one that fills most of
it: a tight box around a drawer handle gives the handle, although the drawer front fills most
of the box. The simulation does the same. Candidates are the segments with pixels in the box
(a GT part instance; unlabelled points form one segment per connected region of equal
``sem``; background never) and the whole object (all foreground); each candidate's full extent
in the view (its bounding box, not only the part inside the prompt) is compared with the box,
and the candidate whose extent has the highest IoU with the box wins (ties: the one with more
pixels in the box). Candidates with fewer than ``min_fill`` of the box's foreground pixels
are not considered (unless none qualifies). The mask is the winner restricted to the box, and
a seeded fraction of its boundary pixels is flipped (a small random erosion/dilation) so masks
are not pixel-perfect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from pipeline.boxes import box_iou_matrix
from pipeline.detect.scene import instance_table
from pipeline.detect.types import Detections

from .box import box_pixel_ranges


@dataclass(frozen=True)
class OracleMaskParams:
    """Noise model of the simulated SAM."""

    boundary_noise: float = 0.2
    """Probability of flipping each pixel on the inner or outer boundary of the mask."""
    min_fill: float = 0.05
    """A candidate segment needs at least this fraction of the box's foreground pixels."""


def segment_map(pix2pt_view: np.ndarray, point_inst: np.ndarray, sem: np.ndarray) -> np.ndarray:
    """(H,W) int32 segment id per pixel: GT instances 0..I-1, then one id per connected
    region of unlabelled pixels with equal ``sem`` (I, I+1, ...); -1 for background."""
    p = np.asarray(pix2pt_view)
    fg = p >= 0
    seg = np.full(p.shape, -1, dtype=np.int32)
    seg[fg] = point_inst[p[fg]]
    n_inst = int(point_inst.max()) + 1 if point_inst.size and point_inst.max() >= 0 else 0
    rest = fg & (seg < 0)
    if rest.any():
        sem_pix = np.full(p.shape, -2, dtype=np.int64)
        sem_pix[rest] = np.asarray(sem)[p[rest]]
        nxt = n_inst
        for s in np.unique(sem_pix[rest]):
            comp, n = ndimage.label(sem_pix == s)
            seg[comp > 0] = comp[comp > 0] - 1 + nxt
            nxt += n
    return seg


def _extents(seg: np.ndarray, n_seg: int) -> np.ndarray:
    """(n_seg + 1, 4) float64 xyxy pixel extents of each segment and (last row) of the whole
    foreground; rows of absent segments are zeros."""
    out = np.zeros((n_seg + 1, 4), np.float64)
    for i, sl in enumerate(ndimage.find_objects(seg + 1, max_label=n_seg)):
        if sl is not None:
            out[i] = (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop)
    fg = seg >= 0
    if fg.any():
        rows, cols = np.flatnonzero(fg.any(1)), np.flatnonzero(fg.any(0))
        out[n_seg] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    return out


def _framed(ids: np.ndarray, extent: np.ndarray, box: np.ndarray, n_seg: int, min_fill: float) -> int:
    """The segment id a box prompt frames (see the module docstring); ``n_seg`` = the whole object."""
    count = np.bincount(ids, minlength=n_seg)
    cand = np.flatnonzero(count > 0)
    fill = np.r_[count[cand], ids.size].astype(np.float64)
    cand = np.r_[cand, n_seg]
    ok = fill >= min_fill * ids.size
    cand, fill = cand[ok], fill[ok]
    iou = box_iou_matrix(np.asarray(box, np.float64)[None], extent[cand])[0]
    best = np.lexsort((-fill, -iou))[0]  # highest IoU, then most pixels in the box
    return int(cand[best])


def oracle_masks(
    det: Detections,
    pix2pt: np.ndarray,
    sem: np.ndarray,
    ins: np.ndarray,
    params: OracleMaskParams | None = None,
    seed: int = 0,
) -> np.ndarray:
    """SIMULATED SAM masks (B,H,W) bool for the boxes of one object; same seed, same masks."""
    prm = params or OracleMaskParams()
    pix2pt = np.asarray(pix2pt)
    V, H, W = pix2pt.shape
    point_inst, _ = instance_table(sem, ins)
    masks = np.zeros((len(det), H, W), dtype=bool)
    if len(det) == 0:
        return masks
    ranges = box_pixel_ranges(det.xyxy, H, W)
    offs = det.offsets(V)
    st = ndimage.generate_binary_structure(2, 1)
    for v in range(V):
        if offs[v] == offs[v + 1]:
            continue
        seg = segment_map(pix2pt[v], point_inst, sem)
        n_seg = int(seg.max()) + 1
        extent = _extents(seg, n_seg)  # (n_seg + 1, 4): segments, then the whole object
        for b in range(offs[v], offs[v + 1]):
            r0, r1, c0, c1 = ranges[b]
            if r0 >= r1 or c0 >= c1:
                continue
            crop = seg[r0:r1, c0:c1]
            ids = crop[crop >= 0]
            if ids.size == 0:
                continue
            win = _framed(ids, extent, det.xyxy[b], n_seg, prm.min_fill)
            m = crop >= 0 if win == n_seg else crop == win
            if prm.boundary_noise > 0:
                rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(b)]))
                inner = m & ~ndimage.binary_erosion(m, st, border_value=1)
                outer = ndimage.binary_dilation(m, st) & ~m
                flip = (inner | outer) & (rng.random(m.shape) < prm.boundary_noise)
                m = m ^ flip
            masks[b, r0:r1, c0:c1] = m
    return masks
