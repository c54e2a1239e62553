"""No leak: the pixels simulators must not read which part a ground-truth instance is.

For a test object, renaming the parts of its ground-truth instances (a permutation of the
part labels in ``sem``, ``ins`` unchanged) changes what the object *is labelled*, not what it
*looks like*. The pixels detector and SAM see only the renders (and place proposals from the
instances' geometry), so their boxes, labels, scores, features and masks must come out byte
for byte the same; only the metrics, which compare with the labels, change. The ground-truth
oracle reads the labels, so the same permutation changes its output: that shows the test can
fail.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.detect.oracle import oracle_detect
from pipeline.detect.oracle_params import OracleDetectorParams
from pipeline.detect.pixel_params import PixelDetectorParams
from pipeline.detect.pixel_sim import fit_fewshot_classifier, pixel_detect
from pipeline.meta import part_names
from pipeline.segment.pixel_sam import pixel_masks
from tests.pixel_scenes import permute_labels, rendered

FIELDS = ("xyxy", "view", "label", "score", "feat")


def _permutations(sem: np.ndarray, k: int) -> list[dict[int, int]]:
    present = sorted(int(s) for s in np.unique(sem) if s >= 0)
    assert len(present) >= 2
    swap = {present[0]: present[1], present[1]: present[0]}
    cycle = {a: b for a, b in zip(range(k), np.roll(np.arange(k), 1).tolist())}  # every label renamed
    return [swap, cycle]


@pytest.mark.parametrize("category", ["Chair", "StorageFurniture"])
def test_permuting_part_labels_leaves_pixels_outputs_byte_identical(category):
    names = part_names(category)
    K = len(names)
    proposal = OracleDetectorParams()
    params = PixelDetectorParams(steps=100)
    clf = fit_fewshot_classifier([(*rendered(category, i)[:5], i) for i in (0, 1)], K, proposal, params)
    rgb, depth, pix2pt, sem, ins = rendered(category, 5)
    base = pixel_detect(rgb, depth, pix2pt, sem, ins, names, clf, proposal, params, seed=7)
    base_masks = pixel_masks(base, rgb, depth)
    oracle_base, _ = oracle_detect(pix2pt, sem, ins, names, proposal, seed=7)
    assert len(base) > 0 and base_masks.any()
    for perm in _permutations(sem, K):
        sem_p = permute_labels(sem, perm)
        assert not np.array_equal(sem_p, sem)  # the ground truth really changed
        det = pixel_detect(rgb, depth, pix2pt, sem_p, ins, names, clf, proposal, params, seed=7)
        for name in FIELDS:
            assert getattr(det, name).tobytes() == getattr(base, name).tobytes(), f"{name} depends on the part labels"
        assert pixel_masks(det, rgb, depth).tobytes() == base_masks.tobytes()
        # the ground-truth oracle reads the labels: the same permutation changes it
        oracle, _ = oracle_detect(pix2pt, sem_p, ins, names, proposal, seed=7)
        assert oracle.label.tobytes() != oracle_base.label.tobytes() or oracle.feat.tobytes() != oracle_base.feat.tobytes()
        assert oracle.xyxy.tobytes() == oracle_base.xyxy.tobytes()  # the geometry of its boxes does not


def test_the_classifier_does_read_the_fewshot_labels():
    """The few-shot labels are training data: permuting them changes the fitted classifier
    (so the byte identity above is not an accident of a classifier that ignores labels)."""
    category = "Chair"
    K = len(part_names(category))
    params = PixelDetectorParams(steps=100)
    objs = [rendered(category, i) for i in (0, 1)]
    a = fit_fewshot_classifier([(*o[:5], i) for i, o in enumerate(objs)], K, None, params)
    perm = _permutations(objs[0][3], K)[0]
    b = fit_fewshot_classifier([(o[0], o[1], o[2], permute_labels(o[3], perm), o[4], i) for i, o in enumerate(objs)], K, None, params)
    assert a.digest() != b.digest()
