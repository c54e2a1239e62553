"""Grounding DINO with several views per forward and under bf16 autocast (tiny random models, CPU)."""

import threading

import numpy as np
import pytest
import torch
import transformers  # noqa: F401  - a test dependency: missing means a broken install, not a skip
from PIL import Image

from pipeline.detect.grounding_dino import GroundingDinoDetector
from pipeline.detect.types import detect_object
from tests.tiny_gdino import save_tiny_gdino

PARTS = ("arm", "back", "leg", "seat")


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    return save_tiny_gdino(tmp_path_factory.mktemp("gdino_batch"), PARTS, image_size=96, num_queries=20)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(3).integers(0, 256, size=(3, 72, 96, 3), dtype=np.uint8)


def _same(a, b, rtol=1e-5, atol=1e-5):
    """Two per-view results agree: same boxes kept, labels exact, values within float tolerance."""
    for (xa, la, sa, fa), (xb, lb, sb, fb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(la, lb)
        np.testing.assert_allclose(xa, xb, rtol=rtol, atol=atol * 100)  # pixels
        np.testing.assert_allclose(sa, sb, rtol=rtol, atol=atol)
        np.testing.assert_allclose(fa, fb, rtol=rtol, atol=atol * 10)


def test_inputs_are_what_the_processor_makes(weights_dir, images):
    """The prompt tokenized once + the image processor alone == processor(images, text) per view."""
    det = GroundingDinoDetector(weights_dir)
    text, _ = det._prompt(PARTS)
    enc, _ = det._text_inputs(PARTS)
    pix = det._image_inputs(images[:2])
    for v in range(2):
        ref = det.processor(images=Image.fromarray(images[v]), text=text, return_tensors="pt")
        assert set(ref) == set(enc) | set(pix)
        for k in enc:
            assert torch.equal(ref[k], enc[k])
        for k in pix:
            assert torch.equal(ref[k][0], pix[k][v])


@pytest.mark.parametrize("batch_size", [2, 8])  # a short last batch; all views in one
def test_batched_equals_one_view_at_a_time(weights_dir, images, batch_size):
    one = GroundingDinoDetector(weights_dir, score_threshold=0.05, batch_size=1)
    many = GroundingDinoDetector(weights_dir, score_threshold=0.05, batch_size=batch_size)
    ref = [one.detect_view(images[v], PARTS, v) for v in range(len(images))]
    got = many.detect_views(images, PARTS)
    assert sum(len(r[0]) for r in ref) > 6  # something to compare
    _same(ref, got)
    assert one.forward_calls == 3 and many.forward_calls == -(-3 // batch_size)

    obj = many.detect_object(images, PARTS)
    plain = detect_object(one, images, PARTS)  # the generic view-by-view path
    np.testing.assert_array_equal(obj.view, plain.view)
    np.testing.assert_array_equal(obj.label, plain.label)
    np.testing.assert_allclose(obj.xyxy, plain.xyxy, atol=1e-3)
    np.testing.assert_allclose(obj.score, plain.score, atol=1e-5)
    assert obj.simulated is False


def test_auto_settings_by_device(weights_dir):
    det = GroundingDinoDetector(weights_dir, precision="auto")
    assert det.batch_size == 1 and det.precision == "fp32"  # CPU defaults: one view per forward
    with pytest.raises(ValueError, match="precision"):
        GroundingDinoDetector(weights_dir, precision="int8")


def test_zero_views(weights_dir):
    det = GroundingDinoDetector(weights_dir, batch_size=4)
    out = det.detect_object(np.zeros((0, 72, 96, 3), np.uint8), PARTS)
    assert out.xyxy.shape == (0, 4) and out.feat.shape == (0, 32) and det.forward_calls == 0


def test_threads_share_one_detector(weights_dir, images):
    """Two objects at once through one cached model (dask threads scheduler) give the lone results."""
    det = GroundingDinoDetector(weights_dir, score_threshold=0.05, batch_size=2)
    ref = det.detect_views(images, PARTS)
    results: dict[int, list] = {}

    def run(i: int) -> None:
        results[i] = det.detect_views(images, PARTS)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(2):
        _same(ref, results[i])


def _equivariant_tiny_model(tmp_path):
    """A tiny model whose decoder is permutation-equivariant in its queries.

    Why: in a random model the encoder's query scores are near-ties, so any rounding change
    re-orders the top-k queries, and Grounding DINO pairs query i with learned content
    embedding i: outputs would jump. With zero content embeddings and every encoder token
    selected (num_queries = tokens), bf16 and fp32 outputs are the same set of queries and
    can be compared query by query (matched by their proposal box).
    """
    d = save_tiny_gdino(tmp_path, PARTS, image_size=64, num_queries=85)  # 8x8+4x4+2x2+1x1 tokens at 64 px
    det = GroundingDinoDetector(d, score_threshold=0.0, batch_size=2)  # the tiny model needs >1 view per forward at 64 px
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        det.model.model.query_position_embeddings.weight.zero_()
        for head in [*det.model.bbox_embed, det.model.model.encoder_output_bbox_embed]:  # zero-initialised: make boxes move
            last = head.layers[-1]
            last.weight.copy_(torch.randn(last.weight.shape, generator=g) * 0.05)
    return det


def test_bf16_autocast_agrees_with_fp32(tmp_path):
    det = _equivariant_tiny_model(tmp_path)
    images = np.random.default_rng(1).integers(0, 256, size=(2, 64, 64, 3), dtype=np.uint8)
    enc, A = det._text_inputs(PARTS)
    inputs = {**det._image_inputs(images), **{k: t.repeat(2, 1) for k, t in enc.items()}}
    with torch.inference_mode():
        ref = det.model(**inputs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = det.model(**inputs)
    At = torch.as_tensor(A).T
    for v in range(2):
        r, rl = ref.init_reference_points[v], low.init_reference_points[v].float()
        j = torch.cdist(r, rl).argmin(1)
        assert len(set(j.tolist())) == 85  # a one-to-one matching of the queries
        box_err = (ref.pred_boxes[v] - low.pred_boxes[v].float()[j]).abs().max().item()
        score_err = (ref.logits[v].sigmoid() @ At - low.logits[v].float().sigmoid()[j] @ At).abs().max().item()
        assert box_err < 0.02  # normalised image coordinates: < 2 % of the image side
        assert score_err < 0.06  # phrase scores in [0, 1]

    # the detector's own bf16 path runs and returns float32 arrays of the same layout
    det.precision = "bf16"
    (xyxy, label, score, feat), _ = det.detect_views(images, PARTS)  # (a 1x1 level needs 2 views per GroupNorm)
    assert xyxy.dtype == np.float32 and score.dtype == np.float32 and feat.shape == (len(score), 32)
