"""Metrics (SPEC §7.10, §8.1, §8.2) on hand-made cases with known answers."""

import numpy as np
import pytest

from pipeline.metrics import (
    average_precision_101,
    category_map50,
    category_miou,
    instance_ap50,
    object_miou,
    part_iou_table,
    per_object_part_iou,
)


def test_semantic_perfect_swapped_and_empty():
    gt = np.array([0, 0, 1, 1, -1, -1])
    assert object_miou(gt, gt, 2) == 1.0
    assert object_miou(np.array([1, 1, 0, 0, -1, -1]), gt, 2) == 0.0
    assert object_miou(np.full(6, -1), gt, 2) == 0.0
    # predicting unlabeled points as part 0 enlarges the union
    np.testing.assert_allclose(per_object_part_iou(np.array([0, 0, 1, 1, 0, 0]), gt, 2), [0.5, 1.0])
    assert np.isnan(object_miou(np.zeros(3, int), np.full(3, -1), 2))


def test_absent_parts_are_skipped_and_accumulated_over_objects():
    g1, p1 = np.array([0, 0, 0, 0]), np.array([0, 0, 1, 1])  # part 1 absent: its FPs are free
    g2, p2 = np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0])  # IoU0 = 2/3, IoU1 = 1/2
    t = per_object_part_iou(p1, g1, 3)
    assert t[0] == 0.5 and np.isnan(t[1]) and np.isnan(t[2])
    table = part_iou_table([p1, p2], [g1, g2], 3)
    np.testing.assert_allclose(table[:2], [(0.5 + 2 / 3) / 2, 0.5])
    assert np.isnan(table[2])
    assert category_miou([p1, p2], [g1, g2], 3) == pytest.approx(((0.5 + 2 / 3) / 2 + 0.5) / 2)
    assert object_miou(p2, g2, 3) == pytest.approx((2 / 3 + 0.5) / 2)
    with pytest.raises(ValueError):
        part_iou_table([p1], [g1, g2], 3)


def inst(ins_point, labels, conf):
    return (np.array(ins_point), np.array(labels), np.array(conf, float))


def test_ap_perfect_and_missing_predictions():
    sem = np.array([0, 0, 0, 1, 1, -1])
    ins = np.array([5, 5, 5, 7, 7, -1])
    perfect = inst([0, 0, 0, 1, 1, -1], [0, 1], [0.9, 0.8])
    np.testing.assert_allclose(instance_ap50([perfect], [(sem, ins)], 3)[:2], [1.0, 1.0])
    ap = instance_ap50([inst([0, 0, 0, -1, -1, -1], [0], [1.0])], [(sem, ins)], 3)
    assert ap[0] == 1.0 and ap[1] == 0.0 and np.isnan(ap[2])  # part 1 has GT, no prediction
    assert category_map50([perfect], [(sem, ins)], 3) == 1.0


def test_ap_strict_threshold_and_unmatched_predictions():
    sem = np.zeros(4, int)
    ins = np.array([0, 0, 1, 1])
    # IoU exactly 0.5 is not a match; the other prediction covers GT 1 perfectly
    half = inst([0, -1, 1, 1], [0, 0], [0.9, 0.2])  # pred 0: {0} vs GT0 {0,1} → IoU 0.5
    ap = instance_ap50([half], [(sem, ins)], 1)[0]
    # ranked: FP (p=0), TP (p=1/2, r=1/2); precision at recall>=t: t<=0.5 → max(1,.., 0.5)
    expected = (1 + 50 * 0.5) / 101  # t=0 uses the prepended (0, 1); t=0.01..0.5 → 0.5; t>0.5 → 0
    assert ap == pytest.approx(expected)


def test_ap_known_pr_curve_and_confidence_order():
    # 2 GT instances; predictions by confidence: TP, FP, TP  → P = 1, 1/2, 2/3; R = .5, .5, 1
    sem = np.zeros(6, int)
    ins = np.array([0, 0, 1, 1, -1, -1])
    sem[4:] = -1
    pred = inst([0, 0, 1, 1, 2, 2], [0, 0, 0], [0.9, 0.5, 0.7])
    ap = instance_ap50([pred], [(sem, ins)], 1)[0]
    expected = (51 * 1.0 + 50 * (2 / 3)) / 101
    assert ap == pytest.approx(expected)
    assert average_precision_101(np.array([0.9, 0.7, 0.5]), np.array([True, False, True]), 2) == pytest.approx(expected)
    # a duplicate of an already matched GT is a false positive
    dup = inst([0, 0, -1, -1, -1, -1], [0, 0], [0.9, 0.8])  # only instance 0 has points
    ap_dup = instance_ap50([dup], [(sem, ins)], 1)[0]
    # ranked TP (P=1, R=.5), FP (P=.5, R=.5) → t ≤ .5: 1; t > .5: 0
    assert ap_dup == pytest.approx(51 / 101)


def test_ap_accumulates_over_objects_and_other_points():
    # object 1: 1 GT, matched; object 2: 1 GT, missed with a low-confidence FP
    o1 = (np.zeros(3, int), np.array([0, 0, 0]))
    o2 = (np.zeros(3, int), np.array([0, 0, 0]))
    p1 = inst([0, 0, 0], [0], [0.8])
    p2 = inst([-1, -1, 0], [0], [0.1])
    ap = instance_ap50([p1, p2], [o1, o2], 1)[0]
    assert ap == pytest.approx(51 / 101)  # TP (1, .5), FP (.5, .5); recall never exceeds 0.5
    # "other" GT instance points (ins ≠ -1, sem = -1) are removed from predicted masks
    sem = np.array([0, 0, -1, -1])
    ins = np.array([3, 3, 4, 4])
    p = inst([0, 0, 0, 0], [0], [1.0])
    assert instance_ap50([p], [(sem, ins)], 1)[0] == 1.0  # IoU 1 after removal (else 0.5)
    sem_unl = np.array([0, 0, -1, -1])
    ins_unl = np.array([3, 3, -1, -1])
    assert instance_ap50([p], [(sem_unl, ins_unl)], 1)[0] == pytest.approx(1 / 101)  # IoU 0.5 → FP


def test_ap_without_any_gt_is_nan():
    ap = instance_ap50([inst([0, 0], [0], [1.0])], [(np.full(2, -1), np.full(2, -1))], 2)
    assert np.isnan(ap).all()
    assert np.isnan(category_map50([], [], 2))
