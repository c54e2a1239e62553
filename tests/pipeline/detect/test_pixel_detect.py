"""The pixels simulated detector: GT-free descriptors, the few-shot classifier, the detector."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.detect.oracle import OracleDetector
from pipeline.detect.oracle_params import OracleDetectorParams
from pipeline.detect.pixel_classifier import PixelClassifierParams, fit_classifier, softmax
from pipeline.detect.pixel_features import DESCRIPTOR_DIM, _orientation_bins, box_descriptors, descriptor_names, view_maps
from pipeline.detect.pixel_params import PixelDetectorParams
from pipeline.detect.pixel_sim import PixelDetector, fit_fewshot_classifier, pixel_detect, training_samples
from pipeline.meta import part_names
from tests.pixel_scenes import rendered

CAT = "Chair"
K = len(part_names(CAT))


@pytest.fixture(scope="module")
def chair_classifier():
    objs = [(*rendered(CAT, i)[:5], i) for i in (0, 1)]
    return fit_fewshot_classifier(objs, K, OracleDetectorParams(), PixelDetectorParams(steps=150))


# ---------------------------------------------------------------- classifier
def _toy(n_per: int, seed: int):
    rng = np.random.default_rng(seed)
    centres = np.array([[3.0, 0, 0], [0, 3.0, 0], [0, 0, 3.0], [0, 0, 0]])  # 3 parts + background
    x = np.concatenate([c + rng.standard_normal((n_per, 3)) * 0.7 for c in centres])
    y = np.repeat(np.arange(4), n_per)
    return x * np.array([1.0, 10.0, 0.1]) + np.array([5.0, -2.0, 0.0]), y  # scales and offsets: standardisation matters


def test_classifier_learns_a_toy_problem_and_generalises():
    x, y = _toy(60, 0)
    clf = fit_classifier(x, y, 3, PixelClassifierParams(steps=300))
    xt, yt = _toy(200, 1)
    p = clf.proba(xt)
    assert p.shape == (800, 4)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-12)
    assert (p.argmax(1) == yt).mean() > 0.9
    assert (clf.proba(x).argmax(1) == y).mean() > 0.9


def test_classifier_fit_is_deterministic_and_balanced():
    x, y = _toy(40, 2)
    a = fit_classifier(x, y, 3, PixelClassifierParams(steps=50))
    b = fit_classifier(x.copy(), y.copy(), 3, PixelClassifierParams(steps=50))
    assert a.weight.tobytes() == b.weight.tobytes() and a.bias.tobytes() == b.bias.tobytes()
    assert a.digest() == b.digest()
    # a part without samples is never predicted
    keep = y != 1
    c = fit_classifier(x[keep], y[keep], 3, PixelClassifierParams(steps=50))
    assert not (c.proba(x).argmax(1) == 1).any()
    # a hotter temperature is less confident, same ranking
    hot = fit_classifier(x, y, 3, PixelClassifierParams(steps=50, temperature=3.0))
    assert hot.proba(x).max(1).mean() < a.proba(x).max(1).mean()
    np.testing.assert_array_equal(hot.proba(x).argmax(1), a.proba(x).argmax(1))


def test_classifier_refuses_bad_input():
    with pytest.raises(ValueError, match="classes"):
        fit_classifier(np.zeros((3, 2)), np.array([0, 1, 5]), 2)
    with pytest.raises(ValueError, match="no training samples"):
        fit_classifier(np.zeros((0, 2)), np.zeros(0, int), 2)
    with pytest.raises(ValueError, match="do not match"):
        fit_classifier(np.zeros((3, 2)), np.zeros(2, int), 2)


def test_softmax_rows():
    p = softmax(np.array([[0.0, 0.0], [1000.0, 0.0]]))
    np.testing.assert_allclose(p, [[0.5, 0.5], [1.0, 0.0]])


# ---------------------------------------------------------------- features
def _flat_scene(h=64, w=64):
    rgb = np.full((h, w, 3), 255, np.uint8)
    depth = np.zeros((h, w), np.float32)
    rgb[10:40, 10:30] = (230, 20, 20)
    depth[10:40, 10:30] = 2.0
    rgb[10:40, 30:50] = (20, 20, 230)
    depth[10:40, 30:50] = 2.5
    return rgb, depth


def test_descriptor_reads_colour_depth_and_geometry():
    rgb, depth = _flat_scene()
    m = view_maps(rgb, depth)
    boxes = np.array([[10, 10, 30, 40], [30, 10, 50, 40], [52, 50, 60, 60], [10, 10, 50, 40]], np.float32)
    d = box_descriptors(m, boxes)
    assert d.shape == (4, DESCRIPTOR_DIM) and len(descriptor_names()) == DESCRIPTOR_DIM
    col = {n: d[:, i] for i, n in enumerate(descriptor_names())}
    np.testing.assert_allclose(col["fg_frac"], [1, 1, 0, 1])
    np.testing.assert_allclose(col["r"][:2], [230 / 255, 20 / 255], atol=1e-9)
    np.testing.assert_allclose(col["b"][:2], [20 / 255, 230 / 255], atol=1e-9)
    assert col["z"][0] < col["z"][1]  # the red half is nearer
    np.testing.assert_allclose(col["rel_w"], [0.5, 0.5, 0.2, 1.0])
    np.testing.assert_allclose(col["object_share"], [0.5, 0.5, 0.0, 1.0])
    assert col["ring_b"][0] > col["ring_r"][0]  # the red box's surround is blue
    assert np.isfinite(d).all()
    # no foreground at all: zeros
    assert not box_descriptors(view_maps(rgb, np.zeros_like(depth)), boxes).any()


def test_orientation_bins_follow_the_gradient_direction():
    gx = np.array([1.0, 0.0, -1.0, 1.0, 1.0])
    gy = np.array([0.0, 1.0, 0.0, 1.0, -1.0])
    # 0 rad -> bin 0, π/2 -> bin 4, π -> folded to 0, π/4 -> bin 2, -π/4 -> folded to 3π/4 -> bin 6
    np.testing.assert_array_equal(_orientation_bins(gx, gy), [0, 4, 0, 2, 6])


# ---------------------------------------------------------------- detector
def test_training_samples_hold_parts_and_background():
    rgb, depth, pix2pt, sem, ins = rendered(CAT, 0)
    x, y = training_samples(rgb, depth, pix2pt, sem, ins, K, seed=0)
    assert x.shape == (y.shape[0], DESCRIPTOR_DIM) and y.shape[0] > 20
    assert (y == K).any() and (y < K).any()
    assert set(np.unique(y[y < K]).tolist()) <= set(np.unique(sem[sem >= 0]).tolist())


def test_pixel_detector_output_contract(chair_classifier):
    rgb, depth, pix2pt, sem, ins = rendered(CAT, 3)
    det = pixel_detect(rgb, depth, pix2pt, sem, ins, part_names(CAT), chair_classifier, seed=3, score_threshold=0.5)
    assert det.simulated and len(det) > 0
    assert det.feat.shape == (len(det), OracleDetectorParams().feat_dim)
    assert (det.score > 0.5).all() and (det.score <= 1.0).all()
    assert ((det.label >= 0) & (det.label < K)).all()
    for v in range(pix2pt.shape[0]):  # ordered by view, then by descending score
        s = det.score[det.view == v]
        assert (np.diff(s) <= 0).all()
    again = pixel_detect(rgb, depth, pix2pt, sem, ins, part_names(CAT), chair_classifier, seed=3, score_threshold=0.5)
    for name in ("xyxy", "view", "label", "score", "feat"):
        assert getattr(det, name).tobytes() == getattr(again, name).tobytes()


def test_pixel_detector_places_the_oracles_boxes(chair_classifier):
    """Same seed, same proposals: without the background drop, the pixels detector keeps
    exactly the oracle's boxes (in its own score order)."""
    rgb, depth, pix2pt, sem, ins = rendered(CAT, 4)
    prm = OracleDetectorParams()
    oracle = OracleDetector(pix2pt, sem, ins, prm, seed=11)
    pixels = PixelDetector(rgb, depth, pix2pt, sem, ins, chair_classifier, prm, PixelDetectorParams(drop_background=False), seed=11)
    for v in range(pix2pt.shape[0]):
        a = oracle.detect_view(None, part_names(CAT), v)[0]
        b = pixels.detect_view(None, part_names(CAT), v)[0]
        assert a.shape == b.shape
        assert sorted(map(tuple, a.tolist())) == sorted(map(tuple, b.tolist()))


def test_pixel_labels_mostly_right_on_a_held_out_shape(chair_classifier):
    """Fitted on two shapes, the classifier labels most true-positive boxes of another one right
    (confusions exist: it is not the ground truth)."""
    rgb, depth, pix2pt, sem, ins = rendered(CAT, 2)
    det = PixelDetector(rgb, depth, pix2pt, sem, ins, chair_classifier, seed=5)
    right = total = 0
    for v in range(pix2pt.shape[0]):
        _, lab, _, _ = det.detect_view(None, part_names(CAT), v)
        tp = det.diagnostics.kind[v] == 0
        right += int((lab[tp] == det.diagnostics.true_label[v][tp]).sum())
        total += int(tp.sum())
    assert total > 10
    assert right / total > 0.5


def test_pixel_detector_refuses_mismatches(chair_classifier):
    rgb, depth, pix2pt, sem, ins = rendered(CAT, 3)
    det = PixelDetector(rgb, depth, pix2pt, sem, ins, chair_classifier)
    with pytest.raises(ValueError, match="classifier knows"):
        det.detect_view(None, ("a", "b"), 0)
    with pytest.raises(ValueError, match="do not match"):
        PixelDetector(rgb[:, :10], depth, pix2pt, sem, ins, chair_classifier)
