"""Membership I_b(p) and per-superpoint arrays (SPEC §6.1, §7.1-7.3) against loop references."""

import numpy as np
import pytest

from pipeline.boxes import box_iou
from pipeline.errors import BadInputError
from pipeline.lift import gt_fractions, lift_object, whole_object_valid
from tests.oracles import (
    ref_membership,
    ref_partslip_scores,
    ref_whole_object_valid,
    synthetic_scene,
)


def small_scene(seed, **kw):
    args = dict(n_points=400, n_sp=14, n_views=4, n_parts=3, boxes_per_view=5, H=32, W=40, dilate=2)
    args.update(kw)
    return synthetic_scene(seed=seed, **args)


def lift(sc, mode="mask", **kw):
    return lift_object(
        sc.sp,
        sc.visible,
        sc.uv,
        sc.xyxy,
        sc.box_view,
        sc.box_label,
        sc.masks if mode == "mask" else None,
        mode=mode,
        sem=sc.sem,
        n_parts=sc.n_parts,
        **kw,
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("mode", ["mask", "box"])
def test_membership_equals_loop_reference(seed, mode):
    sc = small_scene(seed)
    # random extra masks that overlap everything, and points projected off the image
    rng = np.random.default_rng(seed)
    sc.masks |= rng.random(sc.masks.shape) < 0.2
    sc.uv[0, :5] = [[-3.0, 50.0]] * 5
    L = lift(sc, mode)
    ref = ref_membership(sc.sp, sc.visible, sc.uv, sc.xyxy, sc.box_view, sc.masks, mode)
    got = set(zip(L.point.tolist(), L.box.tolist()))
    assert len(ref) > 20
    assert got == ref
    assert len(got) == L.point.size  # no duplicates


def test_min_visible_parameter_matches_reference():
    sc = small_scene(5, drop_visible=0.85)  # many superpoints with 1 visible point per view
    for mv in (0, 1, 3):
        L = lift(sc, "mask", min_visible=mv)
        ref = ref_membership(sc.sp, sc.visible, sc.uv, sc.xyxy, sc.box_view, sc.masks, "mask", mv)
        assert set(zip(L.point.tolist(), L.box.tolist())) == ref
        assert L.min_visible == mv
    assert lift(sc, "mask").min_visible == 1 and lift(sc, "box").min_visible == 0


def test_per_superpoint_arrays():
    sc = small_scene(3)
    L = lift(sc)
    S, V = L.n_sp, L.n_views
    for s in range(S):
        members = sc.sp == s
        assert L.sp_size[s] == members.sum()
        for v in range(V):
            assert L.sp_view_count[s, v] == (members & sc.visible[v]).sum()
        assert L.vis_count[s] == sum((members & sc.visible[v]).sum() for v in range(V))
        has = np.isin(L.point, np.flatnonzero(members)).any()
        assert L.valid[s] == (has and L.vis_count[s] > 0)
        g = np.array([(sc.sem[members] == c).mean() for c in range(-1, sc.n_parts)])
        np.testing.assert_allclose(L.gt[s], g, atol=1e-6)
    np.testing.assert_allclose(L.gt.sum(1), 1.0, atol=1e-6)
    # (superpoint, box) counts agree with the COO
    for s, b, c in zip(L.spbox_sp, L.spbox_box, L.spbox_count):
        assert c == np.sum((sc.sp[L.point] == s) & (L.box == b))


def test_mask_store_indexed_per_box_gives_same_result():
    sc = small_scene(4)

    class Lazy:  # a Zarr-like array: only per-box reads
        shape = sc.masks.shape

        def __getitem__(self, b):
            return sc.masks[b]

    a = lift(sc)
    b = lift_object(sc.sp, sc.visible, sc.uv, sc.xyxy, sc.box_view, sc.box_label, Lazy(), n_parts=sc.n_parts)
    assert np.array_equal(a.point, b.point) and np.array_equal(a.box, b.box)


def test_ratio_matrix_equals_partslip_ratio_lists():
    sc = small_scene(6)
    L = lift(sc, "box")
    valid = whole_object_valid(sc.uv, sc.xyxy, sc.box_view)
    valid[0] = False
    _, ratios = ref_partslip_scores(sc.sp, sc.visible, sc.uv, sc.xyxy, sc.box_view, sc.box_label, valid, sc.n_parts)
    for c in range(sc.n_parts):
        bj = np.flatnonzero(valid & (L.box_label == c))
        R = L.ratio_matrix(bj)
        assert R.shape == (L.n_sp, bj.size)
        np.testing.assert_allclose(R, np.array(ratios[c]).reshape(L.n_sp, bj.size), atol=1e-12)
        assert (R == -1).any() or bj.size == 0


def test_whole_object_filter_equals_reference_and_catches_big_box():
    sc = small_scene(7)
    xyxy = np.concatenate([sc.xyxy, [[-1, -1, 100, 100]]]).astype(np.float32)
    view = np.concatenate([sc.box_view, [2]]).astype(np.int16)
    got = whole_object_valid(sc.uv, xyxy, view)
    assert np.array_equal(got, ref_whole_object_valid(sc.uv, xyxy, view))
    assert not got[-1] and got[:-1].all()


def test_no_boxes_and_single_superpoint():
    sc = small_scene(8)
    L = lift_object(
        sc.sp,
        sc.visible,
        sc.uv,
        np.zeros((0, 4), np.float32),
        np.zeros(0, np.int16),
        np.zeros(0, np.int16),
        np.zeros((0, 32, 40), bool),
        sem=sc.sem,
        n_parts=3,
    )
    assert L.point.shape == (0,) and L.box.shape == (0,) and L.n_boxes == 0
    assert not L.valid.any()
    assert L.ratio_matrix().shape == (L.n_sp, 0)
    one = np.zeros_like(sc.sp)
    L1 = lift_object(one, sc.visible, sc.uv, sc.xyxy, sc.box_view, sc.box_label, sc.masks, n_parts=3)
    ref = ref_membership(one, sc.visible, sc.uv, sc.xyxy, sc.box_view, sc.masks, "mask")
    assert L1.n_sp == 1 and L1.sp_size[0] == len(one)
    assert set(zip(L1.point.tolist(), L1.box.tolist())) == ref and len(ref) > 0


def test_single_visible_point_is_gated_by_iou_and_count():
    # 2 points of one superpoint in one view, 1 visible: counts in V_s, never a member
    visible = np.array([[True, False]])
    uv = np.array([[[5.5, 5.5], [6.5, 6.5]]], np.float32)
    masks = np.ones((1, 10, 10), bool)
    L = lift_object(
        np.zeros(2, np.int32),
        visible,
        uv,
        np.array([[0, 0, 10, 10]], np.float32),
        np.zeros(1, np.int16),
        np.zeros(1, np.int16),
        masks,
        n_parts=1,
    )
    assert L.vis_count.tolist() == [1] and L.point.size == 0 and not L.valid[0]
    Lb = lift_object(
        np.zeros(2, np.int32),
        visible,
        uv,
        np.array([[0, 0, 10, 10]], np.float32),
        np.zeros(1, np.int16),
        np.zeros(1, np.int16),
        None,
        mode="box",
        n_parts=1,
    )
    assert Lb.point.size == 0  # zero-area bbox → IoU 0 < 1e-6 (SPEC §6.1 quirk)


def test_box_iou_values():
    a = np.array([0, 0, 2, 2.0])
    assert box_iou(a, np.array([1, 1, 3, 3.0])) == pytest.approx(1 / 7)
    assert box_iou(a, a) == 1.0
    assert box_iou(np.array([1, 1, 1, 1.0]), np.array([1, 1, 1, 1.0])) == 0.0


def test_gt_fractions_and_bad_input_errors():
    g = gt_fractions(np.array([0, 0, 0, 1]), np.array([-1, 1, 1, 0]), 2, 2)
    np.testing.assert_allclose(g, [[1 / 3, 0, 2 / 3], [0, 1, 0]], atol=1e-7)
    with pytest.raises(BadInputError):
        gt_fractions(np.array([0, 1]), np.array([0, 5]), 2, 2)
    sc = small_scene(9)
    with pytest.raises(BadInputError):
        lift_object(sc.sp, sc.visible[:, :-1], sc.uv, sc.xyxy, sc.box_view, sc.box_label, sc.masks, n_parts=3)
    with pytest.raises(BadInputError):
        lift_object(sc.sp, sc.visible, sc.uv, sc.xyxy, sc.box_view, sc.box_label + 5, sc.masks, n_parts=3)
    with pytest.raises(ValueError):
        lift_object(sc.sp, sc.visible, sc.uv, sc.xyxy, sc.box_view, sc.box_label, None, mode="mask", n_parts=3)
