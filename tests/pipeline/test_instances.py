"""Instance grouping (SPEC §6.3, §7.12) against a literal union-find reference and hand cases."""

import numpy as np
import pytest

from pipeline.lift import lift_object, whole_object_valid
from pipeline.partslip import group_instances, partslip_instances, partslip_semantic, partstad_instances
from tests.oracles import (
    ref_group_instances,
    ref_membership,
    ref_partslip_scores,
    ref_threshold_labels,
    synthetic_scene,
)


def scene(seed):
    sc = synthetic_scene(seed=seed, n_points=700, n_sp=28, n_views=4, n_parts=3, boxes_per_view=7, H=48, W=48, dilate=2, drop_visible=0.1)
    sc.xyz *= 0.3  # neighbouring Voronoi cells overlap → adjacency
    return sc


@pytest.mark.parametrize("seed", range(3))
def test_partslip_instances_equal_reference(seed):
    sc = scene(seed)
    L = lift_object(sc.sp, sc.visible, sc.uv, sc.xyxy, sc.box_view, sc.box_label, None, mode="box", n_parts=sc.n_parts)
    small = [False, True, False]
    sem = partslip_semantic(L, whole_object_valid(sc.uv, sc.xyxy, L.box_view), small)
    ref_score, ratios = ref_partslip_scores(sc.sp, sc.visible, sc.uv, sc.xyxy, sc.box_view, sc.box_label, sem.box_valid, sc.n_parts)
    lab = ref_threshold_labels(ref_score, small, 0.5)
    conf = np.where(lab >= 0, ref_score[np.arange(lab.size), np.maximum(lab, 0)], 0.0)
    got = partslip_instances(sem, L, sc.xyz, sc.uv, sc.visible, sc.xyxy)
    ip, il, ic = ref_group_instances(
        lab, sc.sp, L.sp_size, sc.xyz, sc.uv, sc.visible, sc.xyxy, L.box_view, L.box_label, ratios, sp_conf=conf
    )
    assert len(il) >= 2 and (lab >= 0).sum() > len(il)  # merging happened
    np.testing.assert_array_equal(got.ins_point, ip)
    np.testing.assert_array_equal(got.instance_label, il)
    np.testing.assert_allclose(got.instance_confidence, ic, atol=1e-6)
    assert got.ins_point.dtype == np.int32 and got.instance_label.dtype == np.int16


@pytest.mark.parametrize("seed", range(2))
def test_mask_driven_instances_with_iou_confidence_equal_reference(seed):
    sc = scene(10 + seed)
    L = lift_object(sc.sp, sc.visible, sc.uv, sc.xyxy, sc.box_view, sc.box_label, sc.masks, n_parts=sc.n_parts)
    members = ref_membership(sc.sp, sc.visible, sc.uv, sc.xyxy, sc.box_view, sc.masks, "mask")
    S = L.n_sp
    ratios = {c: [[] for _ in range(S)] for c in range(sc.n_parts)}
    for s in range(S):
        pts = np.flatnonzero(sc.sp == s)
        for b in range(L.n_boxes):
            v = sc.box_view[b]
            n_vis = int(sc.visible[v, pts].sum())
            n_in = sum((int(p), b) in members for p in pts)
            ratios[int(sc.box_label[b])][s].append(n_in / n_vis if n_vis else -1.0)
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(sc.n_parts + 1), S)
    first_point = np.array([np.flatnonzero(sc.sp == s)[0] for s in range(S)])
    lab = np.where(L.valid, sc.sem[first_point], -1)  # GT labels (constant per superpoint)
    got = partstad_instances(lab, P, L, sc.xyz, sc.uv, sc.visible, sc.xyxy)
    conf = np.where(lab >= 0, P[np.arange(S), np.maximum(lab, 0) + 1], 0.0)
    ip, il, ic = ref_group_instances(
        lab, sc.sp, L.sp_size, sc.xyz, sc.uv, sc.visible, sc.xyxy, L.box_view, L.box_label, ratios, sp_conf=conf, conf_iou=True
    )
    assert len(il) >= 2
    np.testing.assert_array_equal(got.ins_point, ip)
    np.testing.assert_array_equal(got.instance_label, il)
    np.testing.assert_allclose(got.instance_confidence, ic, atol=1e-6)


def two_cluster_scene(n=(20, 20, 20, 20, 10)):
    """Superpoints 0,1 adjacent (cluster A), 2,3 adjacent (cluster B, far away), 4 unlabeled."""
    rng = np.random.default_rng(0)
    spans = [(0.0, 0.1), (0.1, 0.2), (0.6, 0.7), (0.7, 0.8), (0.3, 0.4)]
    xyz, sp = [], []
    for s, (a, b) in enumerate(spans):
        x = rng.uniform(a, b, n[s])
        xyz.append(np.stack([x, rng.uniform(0, 0.1, n[s]), np.zeros(n[s])], 1))
        sp.append(np.full(n[s], s))
    xyz = np.concatenate(xyz).astype(np.float32)
    sp = np.concatenate(sp).astype(np.int32)
    uv = (xyz[None, :, :2] * 100 + 5).astype(np.float32)
    visible = np.ones((1, len(sp)), bool)
    return xyz, sp, uv, visible


def test_hand_made_two_instances_and_filter():
    xyz, sp, uv, visible = two_cluster_scene()
    boxes = np.array([[4, 4, 26, 16], [64, 4, 86, 16]], np.float32)  # around A and B, category 0
    lab = np.array([0, 0, 0, 0, -1])
    L = lift_object(sp, visible, uv, boxes, np.zeros(2, np.int16), np.zeros(2, np.int16), None, mode="box", n_parts=1)
    got = group_instances(lab, L, xyz, uv, visible, boxes)
    assert got.instance_label.tolist() == [0, 0]
    assert np.array_equal(np.unique(got.ins_point[sp <= 1]), [0])
    assert np.array_equal(np.unique(got.ins_point[(sp == 2) | (sp == 3)]), [1])
    assert np.all(got.ins_point[sp == 4] == -1)
    np.testing.assert_allclose(got.instance_confidence, 1.0)
    # without the box around B, cluster B is dropped by the 2D filter (IoU ≤ 0.5)
    L1 = lift_object(sp, visible, uv, boxes[:1], np.zeros(1, np.int16), np.zeros(1, np.int16), None, mode="box", n_parts=1)
    got1 = group_instances(lab, L1, xyz, uv, visible, boxes[:1])
    assert got1.instance_label.tolist() == [0]
    assert np.all(got1.ins_point[sp >= 2] == -1)
    # IoU-weighted confidence is the best 2D IoU when sp_conf is None
    got2 = group_instances(lab, L, xyz, uv, visible, boxes, conf_iou=True)
    assert np.all(got2.instance_confidence > 0.5) and np.all(got2.instance_confidence <= 1.0)


def test_size_ratio_blocks_merging():
    xyz, sp, uv, visible = two_cluster_scene(n=(300, 2, 20, 20, 10))
    # box 0 fits superpoint 0 alone, box 1 fits superpoints 0+1; ratios from box 1 only
    boxes = np.array([[4, 4, 16, 16], [4, 4, 26, 16]], np.float32)
    L = lift_object(sp, visible, uv, boxes, np.zeros(2, np.int16), np.zeros(2, np.int16), None, mode="box", n_parts=1)
    lab = np.array([0, 0, -1, -1, -1])
    use = np.array([False, True])
    got = group_instances(lab, L, xyz, uv, visible, boxes, ratio_boxes=use)
    # 300 vs 2 points: ratio 150 >= 100 → superpoint 1 stays alone and fails the 2D filter
    assert np.all(got.ins_point[sp == 1] == -1)
    assert np.all(got.ins_point[sp == 0] == 0) and got.instance_label.tolist() == [0]
    loose = group_instances(lab, L, xyz, uv, visible, boxes, ratio_boxes=use, max_size_ratio=1000)
    assert np.all(loose.ins_point[sp <= 1] == 0) and loose.instance_label.tolist() == [0]
    # the ratio-list distance blocks it too when box 0 enters the lists (dis ≈ 0.4 ≥ 0.2)
    strict = group_instances(lab, L, xyz, uv, visible, boxes, max_size_ratio=1000)
    assert np.all(strict.ins_point[sp == 1] == -1)


def test_no_boxes_no_labels():
    xyz, sp, uv, visible = two_cluster_scene()
    L = lift_object(
        sp, visible, uv, np.zeros((0, 4), np.float32), np.zeros(0, np.int16), np.zeros(0, np.int16), None, mode="box", n_parts=2
    )
    got = group_instances(np.array([0, 1, -1, 0, -1]), L, xyz, uv, visible, np.zeros((0, 4), np.float32))
    assert got.instance_label.shape == (0,) and np.all(got.ins_point == -1)
    got = group_instances(np.full(5, -1), L, xyz, uv, visible, np.zeros((0, 4), np.float32))
    assert got.ins_point.shape == sp.shape and got.instance_confidence.shape == (0,)
