"""The pixels simulated SAM: a GT-free over-segmentation that merges and splits like SAM."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.detect.types import Detections
from pipeline.segment.pixel_sam import PixelMasker, PixelSamParams, box_mask, oversegment, pixel_masks

RED, BLUE, DARK = (200, 60, 60), (60, 60, 200), (20, 20, 20)


def _scene(sparse: float = 0.0, seed: int = 0):
    """A 72x100 view: A (red, cols 10:25) and B (red, cols 25:50) side by side at one depth,
    C (blue) below them, a dark handle H inside B, and a striped (textured) panel T at right."""
    h, w = 72, 100
    rgb = np.full((h, w, 3), 255, np.uint8)
    depth = np.zeros((h, w), np.float32)
    rgb[10:40, 10:50] = RED
    depth[10:40, 10:50] = 2.0
    rgb[40:60, 10:50] = BLUE
    depth[40:60, 10:50] = 2.0
    rgb[20:24, 33:42] = DARK
    cols = np.arange(56, 96)
    band = ((cols - 56) // 8) % 2 == 0
    rgb[10:60, 56:96] = np.where(band[None, :, None], np.array([230, 230, 60]), np.array([40, 120, 40])).astype(np.uint8)
    depth[10:60, 56:96] = 2.2
    if sparse:
        keep = np.random.default_rng(seed).random((h, w)) >= sparse
        rgb = np.where(keep[..., None], rgb, 255).astype(np.uint8)
        depth = np.where(keep, depth, 0).astype(np.float32)
    return rgb, depth


def _ids(seg: np.ndarray, rows: slice, cols: slice) -> set[int]:
    v = seg[rows, cols]
    return set(np.unique(v[v >= 0]).tolist())


@pytest.mark.parametrize("sparse", [0.0, 0.6])
def test_same_colour_neighbours_merge_and_texture_splits(sparse):
    rgb, depth = _scene(sparse)
    seg = oversegment(rgb, depth)
    assert seg.shape == depth.shape and seg.dtype == np.int32
    assert (seg[depth == 0] >= -1).all() and seg.max() >= 2
    a = _ids(seg, slice(12, 38), slice(12, 23))
    b = _ids(seg, slice(26, 38), slice(27, 48))
    c = _ids(seg, slice(42, 58), slice(12, 48))
    assert a & b, "two adjacent parts of one colour and depth should merge, as SAM merges them"
    assert not (c & (a | b)), "a differently coloured part stays apart"
    stripes = _ids(seg, slice(12, 58), slice(57, 95))
    assert len(stripes) >= 2, "a strongly textured panel should be split"
    handle = _ids(seg, slice(21, 23), slice(35, 40))
    assert handle and not (handle & b), "the dark handle is its own segment"
    assert (seg[:5] == -1).all()  # background far from the object is never a segment


def test_box_prompts_frame_segments():
    rgb, depth = _scene()
    seg = oversegment(rgb, depth)
    H, W = seg.shape
    # a box around C (with margin): exactly C's pixels
    m = box_mask(seg, np.array([8, 38, 52, 62]))
    ref = np.zeros((H, W), bool)
    ref[40:60, 10:50] = True
    assert (m & ref).sum() >= 0.95 * ref.sum() and (m & ~ref).sum() <= 0.05 * ref.sum()
    # a tight box around the handle: the handle, not the red panel around it
    m = box_mask(seg, np.array([33, 20, 42, 24]))
    assert m[21:23, 35:40].all() and m.sum() <= 36
    # a box around A that overlaps B: A and B merged, so the mask leaks over A's border into B (SAM's error)
    m = box_mask(seg, np.array([10, 10, 30, 40]))
    assert m[12:38, 12:24].mean() > 0.9 and m[12:38, 26:30].mean() > 0.9
    assert not m[:, 30:].any() and not m[40:].any()  # cut to the box
    # background only: empty
    assert not box_mask(seg, np.array([0, 62, 8, 72])).any()


def test_pixel_masks_per_view_and_masker():
    rgb, depth = _scene()
    rgb2, depth2 = _scene(0.6, seed=3)
    imgs, deps = np.stack([rgb, rgb2]), np.stack([depth, depth2])
    boxes = np.array([[8, 38, 52, 62], [33, 20, 42, 24], [8, 38, 52, 62]], np.float32)
    det = Detections(boxes, [0, 0, 1], [0, 1, 0], [0.9, 0.8, 0.7], np.zeros((3, 4)), simulated=True)
    masks = pixel_masks(det, imgs, deps)
    assert masks.shape == (3, 72, 100) and masks.dtype == bool
    for b in range(3):
        np.testing.assert_array_equal(masks[b], box_mask(oversegment(imgs[det.view[b]], deps[det.view[b]]), boxes[b]))
    m2, emb = PixelMasker(deps).masks_for_object(imgs, det)
    assert emb == {} and m2.tobytes() == masks.tobytes()  # deterministic
    assert pixel_masks(Detections.empty(4), imgs, deps).shape == (0, 72, 100)


def test_depth_edges_split_one_colour():
    rgb, depth = _scene()
    depth = depth.copy()
    depth[10:40, 25:50] = 3.0  # B moves back: same colour, a depth step
    seg = oversegment(rgb, depth, PixelSamParams())
    assert not (_ids(seg, slice(12, 38), slice(12, 23)) & _ids(seg, slice(26, 38), slice(27, 32)))


def test_empty_view():
    seg = oversegment(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.float32))
    assert (seg == -1).all()
