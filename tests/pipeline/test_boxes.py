import numpy as np
import pytest

from pipeline.boxes import box_area, box_iou, box_iou_matrix


def test_iou_of_known_pairs():
    a = np.array([0, 0, 2, 2.0])
    assert box_iou(a, np.array([1, 1, 3, 3.0])) == pytest.approx(1 / 7)
    assert box_iou(a, a) == 1.0
    assert box_iou(a, np.array([2, 0, 4, 2.0])) == 0.0  # touching edges
    assert box_iou(np.array([1, 1, 1, 1.0]), np.array([1, 1, 1, 1.0])) == 0.0  # empty union


def test_matrix_equals_broadcast_elementwise():
    rng = np.random.default_rng(0)
    lo = rng.uniform(0, 50, (7, 2))
    a = np.concatenate([lo, lo + rng.uniform(0, 30, (7, 2))], 1)
    lo = rng.uniform(0, 50, (5, 2))
    b = np.concatenate([lo, lo + rng.uniform(0, 30, (5, 2))], 1)
    m = box_iou_matrix(a, b)
    assert m.shape == (7, 5)
    for i in range(7):
        for j in range(5):
            assert m[i, j] == pytest.approx(box_iou(a[i], b[j]))
    assert np.all((m >= 0) & (m <= 1))
    np.testing.assert_allclose(np.diag(box_iou_matrix(a, a)), 1.0)


def test_inverted_box_has_zero_area():
    assert box_area(np.array([3, 3, 1, 1.0])) == 0.0
    assert box_area(np.array([[0, 0, 2, 3.0]]))[0] == 6.0
