import numpy as np
import pytest
import torch

from pipeline.boxes import box_iou_matrix as box_iou_np
from pipeline.detect.nms import batched_nms_np, nms_torch
from pipeline.detect.types import Detections, clip_boxes


def _view(n, d=4, seed=0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 50, (n, 2))
    return (
        np.concatenate([xy, xy + 10], 1),
        rng.integers(0, 3, n),
        rng.uniform(0.5, 1, n),
        rng.standard_normal((n, d)),
    )


def test_concat_sorts_each_view_and_offsets():
    per_view = [_view(3, seed=1), _view(0), _view(4, seed=2), _view(0)]
    det = Detections.concat(per_view, feat_dim=4)
    assert det.xyxy.shape == (7, 4) and det.xyxy.dtype == np.float32
    assert det.view.dtype == np.int16 and det.label.dtype == np.int16
    assert det.score.dtype == np.float32 and det.feat.shape == (7, 4)
    assert det.view.tolist() == [0, 0, 0, 2, 2, 2, 2]
    off = det.offsets(4)
    assert off.tolist() == [0, 3, 3, 7, 7] and off.dtype == np.int64
    for v in range(4):
        s = det.score[off[v] : off[v + 1]]
        assert np.all(np.diff(s) <= 0)
    # rows move together: the feature of the best box of view 2 is the input row with max score
    bx, lb, sc, ft = per_view[2]
    i = int(np.argmax(sc))
    np.testing.assert_allclose(det.feat[3], ft[i].astype(np.float32))
    np.testing.assert_allclose(det.xyxy[3], bx[i].astype(np.float32))


def test_concat_all_empty_is_well_shaped():
    det = Detections.concat([_view(0) for _ in range(10)], feat_dim=256, simulated=True)
    assert det.xyxy.shape == (0, 4) and det.view.shape == (0,) and det.label.shape == (0,)
    assert det.score.shape == (0,) and det.feat.shape == (0, 256)
    assert det.offsets(10).tolist() == [0] * 11
    assert det.simulated is True and len(det) == 0
    assert Detections.concat([], feat_dim=8).feat.shape == (0, 8)


def test_detections_validation():
    with pytest.raises(ValueError):
        Detections(np.zeros((2, 4)), [0, 0], [0], [1, 1], np.zeros((2, 3)))
    with pytest.raises(ValueError, match="ordered by view"):
        Detections(np.zeros((2, 4)), [1, 0], [0, 0], [1, 1], np.zeros((2, 3)))
    det = Detections(np.zeros((1, 4)), [5], [0], [1], np.zeros((1, 3)))
    with pytest.raises(ValueError):
        det.offsets(3)


def test_clip_boxes():
    out = clip_boxes(np.array([[-5, -1, 20, 30], [3, 4, 5, 6]]), height=10, width=12)
    assert out.tolist() == [[0, 0, 12, 10], [3, 4, 5, 6]]


def test_nms_classwise():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    labels = np.array([0, 0, 1, 0])
    keep = batched_nms_np(boxes, scores, labels, 0.6)
    assert keep.tolist() == [0, 2, 3]  # box 1 suppressed by box 0 (IoU .81), box 2 is another class
    keep = nms_torch(torch.tensor(boxes), torch.tensor(scores), 0.6)
    assert keep.tolist() == [0, 3]
    assert batched_nms_np(np.zeros((0, 4)), np.zeros(0), np.zeros(0), 0.5).shape == (0,)
    iou = box_iou_np(boxes[:2], boxes[:2])
    np.testing.assert_allclose(iou[0, 1], 81 / 100, rtol=1e-6)
