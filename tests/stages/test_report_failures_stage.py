"""evaluate stores the learned box weights; the report shows them, the failure gallery and
a caption under every picture (on the tiny chain of test_stage_pipeline)."""

import re

import numpy as np

from tests.stages.test_stage_pipeline import CAT, OID, TEST, pipe, store  # noqa: F401  (pipe: the chain fixture)


def test_evaluate_stores_one_weight_per_box(pipe):  # noqa: F811
    ev, det = store(pipe, "evaluate"), store(pipe, "detect")
    w = ev.read(OID, "box_weight_partstad")
    assert w.dtype == np.float32 and w.shape == det.read(OID, "xyxy")[:, 0].shape
    assert np.isfinite(w).all() and (w >= 0).all()  # ReLU weights


def test_report_gallery_box_weights_and_captions(pipe):  # noqa: F811
    text = (pipe["reports"] / "index.html").read_text()
    assert "Where it fails" in text and text.count('<table class="confusion">') == 2
    listed = set(re.findall(r'<td class="name">(Chair/\d+)</td>', text.split("Where it fails", 1)[1]))
    assert listed and listed <= set(TEST)
    assert "Which boxes PartSTAD trusted" in text and "stored box weights" in text
    n_img = text.count("<img")
    caps = re.findall(r"<figure><img [^>]*><figcaption>([^<]+)</figcaption></figure>", text)
    assert n_img > 0 and len(caps) == n_img
    assert any(CAT in c and "PartSTAD" in c and "view" in c for c in caps)
