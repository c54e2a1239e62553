import numpy as np

from pipeline.detect.oracle import OracleDetectorParams, oracle_detect
from pipeline.detect.synthetic import synthetic_scene
from pipeline.detect.types import Detections
from pipeline.segment.box import box_masks, box_pixel_ranges
from pipeline.segment.oracle import OracleMaskParams, oracle_masks, segment_map


def _det(boxes, views=None, labels=None, d=4):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = boxes.shape[0]
    views = np.zeros(n, int) if views is None else views
    return Detections(boxes, views, np.zeros(n) if labels is None else labels, np.ones(n), np.zeros((n, d)))


def test_box_masks_pixel_centre_rule_and_clipping():
    det = _det([[0.5, 0.5, 2.5, 1.5], [-3, 4, 2.2, 40], [5, 5, 5.2, 5.2]])
    m = box_masks(det, 8, 6)
    assert m.shape == (3, 8, 6) and m.dtype == bool
    ref0 = np.zeros((8, 6), bool)
    ref0[0:2, 0:3] = True  # centres (c+.5, r+.5) inside [.5,2.5]x[.5,1.5]
    np.testing.assert_array_equal(m[0], ref0)
    ref1 = np.zeros((8, 6), bool)
    ref1[4:8, 0:2] = True  # partly outside the image: clipped
    np.testing.assert_array_equal(m[1], ref1)
    assert not m[2].any()  # contains no pixel centre
    assert box_pixel_ranges(det.xyxy, 8, 6)[1].tolist() == [4, 8, 0, 2]
    assert box_masks(Detections.empty(4), 8, 6).shape == (0, 8, 6)


def _scene():
    """One 40x40 view: body = ellipse-free square, instance 0 (label 1) rectangle, body unlabelled."""
    H = W = 40
    pix = np.full((2, H, W), -1, np.int32)
    pix[0, 5:35, 5:35] = 0  # body point 0 (unlabelled)
    pix[0, 10:20, 12:30] = 1  # instance 7 (sem 1)
    pix[0, 25:33, 8:14] = 2  # instance 9 (sem 0)
    pix[1, 0:10, 0:10] = 1
    sem = np.array([-1, 1, 0], np.int16)
    ins = np.array([-1, 7, 9], np.int32)
    return pix, sem, ins


def test_oracle_mask_is_the_segment_the_box_frames():
    pix, sem, ins = _scene()
    boxes = [[11, 9, 31, 21], [4, 4, 36, 36], [7, 24, 15, 34], [0, 0, 5, 5], [-2, -2, 12, 12]]
    det = _det(boxes, views=[0, 0, 0, 0, 1])
    m = oracle_masks(det, pix, sem, ins, OracleMaskParams(boundary_noise=0.0))
    assert m.shape == (5, 40, 40) and m.dtype == bool
    np.testing.assert_array_equal(m[0], pix[0] == 1)  # instance fully inside its box
    np.testing.assert_array_equal(m[1], pix[0] >= 0)  # a box around the whole object: the whole object
    ref2 = (pix[0] == 2) & box_masks(det, 40, 40)[2]
    np.testing.assert_array_equal(m[2], ref2)
    assert not m[3].any()  # background only: empty mask, never background
    np.testing.assert_array_equal(m[4], pix[1] == 1)  # box partly outside the image
    assert not (m & ~box_masks(det, 40, 40)).any()
    assert not (m[:4] & (pix[0] < 0)).any()


def test_a_box_framing_a_thin_part_gets_the_thin_part_not_the_dominant_segment():
    """A handle (2 px wide) on a door: a tight box around the handle is mostly door pixels,
    but SAM (and the simulation) returns the handle it frames."""
    H = W = 60
    pix = np.full((1, H, W), -1, np.int32)
    pix[0, 2:58, 5:55] = 2  # cabinet body (unlabelled)
    pix[0, 5:55, 10:50] = 0  # door, instance 1 (sem 0)
    pix[0, 20:40, 30:32] = 1  # handle, instance 2 (sem 1): 2 x 20 px
    sem = np.array([0, 1, -1], np.int16)
    ins = np.array([1, 2, -1], np.int32)
    det = _det([[27, 18, 35, 42]])  # 8 x 24 box: 40 handle pixels, 152 door pixels
    inside = box_masks(det, H, W)[0]
    assert ((pix[0] == 0) & inside).sum() > 3 * ((pix[0] == 1) & inside).sum()
    m = oracle_masks(det, pix, sem, ins, OracleMaskParams(boundary_noise=0.0))
    np.testing.assert_array_equal(m[0], pix[0] == 1)
    # a box framing the door gets the door (with the handle's pixels left out)
    m2 = oracle_masks(_det([[9, 4, 51, 56]]), pix, sem, ins, OracleMaskParams(boundary_noise=0.0))
    np.testing.assert_array_equal(m2[0], pix[0] == 0)


def test_segment_map_splits_unlabelled_regions():
    pix = np.full((1, 10, 10), -1, np.int32)
    pix[0, 0:3, 0:3] = 0
    pix[0, 6:9, 6:9] = 1
    pix[0, 4, 4] = 2
    seg = segment_map(pix[0], np.array([-1, -1, 0], np.int32), np.array([-1, -1, 0]))
    assert seg[4, 4] == 0
    assert seg[0, 0] != seg[7, 7] and seg[0, 0] >= 1 and seg[7, 7] >= 1
    assert (seg[pix[0] < 0] == -1).all()


def test_oracle_mask_noise_seeded_and_small():
    sc = synthetic_scene(n_views=4, height=96, width=96, seed=11)
    det, _ = oracle_detect(sc.pix2pt, sc.sem, sc.ins, sc.part_names, OracleDetectorParams(), seed=0)
    assert len(det) > 5
    clean = oracle_masks(det, sc.pix2pt, sc.sem, sc.ins, OracleMaskParams(boundary_noise=0.0))
    a = oracle_masks(det, sc.pix2pt, sc.sem, sc.ins, OracleMaskParams(boundary_noise=0.2), seed=3)
    b = oracle_masks(det, sc.pix2pt, sc.sem, sc.ins, OracleMaskParams(boundary_noise=0.2), seed=3)
    c = oracle_masks(det, sc.pix2pt, sc.sem, sc.ins, OracleMaskParams(boundary_noise=0.2), seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    inter = (a & clean).sum((1, 2))
    union = (a | clean).sum((1, 2))
    iou = inter[union > 0] / union[union > 0]
    assert iou.mean() > 0.75 and iou.mean() < 1.0
    assert not (a & ~box_masks(det, 96, 96)).any()


def test_oracle_mask_zero_boxes():
    pix, sem, ins = _scene()
    m = oracle_masks(Detections.empty(8, simulated=True), pix, sem, ins)
    assert m.shape == (0, 40, 40) and m.dtype == bool
