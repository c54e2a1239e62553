"""Tiny random-weight Grounding DINO (STACK §11.1), saved and loaded back from a local dir."""

import numpy as np
import pytest
import transformers  # noqa: F401  - a test dependency: missing means a broken install, not a skip

from pipeline.boxes import box_iou_matrix as box_iou_np  # noqa: E402
from pipeline.detect.grounding_dino import (  # noqa: E402
    DetectorWeightsNotFoundError,
    GroundingDinoDetector,
    make_prompt,
    phrase_token_matrix,
)
from pipeline.detect.types import Detector, detect_object  # noqa: E402
from tests.tiny_gdino import tiny_gdino_config

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "arm", "back", "leg", "seat", "wheel", "foot", "##pedal"]
PARTS = ("arm", "back", "footpedal", "wheel")
D_MODEL, QUERIES = 32, 30


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    import torch
    from transformers import BertTokenizer, GroundingDinoForObjectDetection, GroundingDinoProcessor
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import (
        GroundingDinoImageProcessorPil,
    )

    torch.manual_seed(0)
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(WORDS)})
    cfg = tiny_gdino_config(len(WORDS), d_model=D_MODEL, num_queries=QUERIES)
    model = GroundingDinoForObjectDetection(cfg).eval()
    proc = GroundingDinoProcessor(GroundingDinoImageProcessorPil(size={"shortest_edge": 128, "longest_edge": 128}), tok)
    d = tmp_path_factory.mktemp("gdino")
    model.save_pretrained(d)
    proc.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, size=(3, 90, 120, 3), dtype=np.uint8)


def test_prompt_and_token_spans():
    text, spans = make_prompt(["arm", "footpedal", "seat"])
    assert text == "arm . footpedal . seat ."
    assert [text[s:e] for s, e in spans] == ["arm", "footpedal", "seat"]
    # [CLS] arm . foot ##pedal . seat . [SEP]
    offsets = [(0, 0), (0, 3), (4, 5), (6, 10), (10, 15), (16, 17), (18, 22), (23, 24), (0, 0)]
    A = phrase_token_matrix(offsets, spans, 12)
    assert A.shape == (3, 12)
    assert A[0].tolist()[:3] == [0, 1, 0]
    assert np.flatnonzero(A[1]).tolist() == [3, 4] and np.allclose(A[1, [3, 4]], 0.5)
    assert np.flatnonzero(A[2]).tolist() == [6]
    np.testing.assert_allclose(A.sum(1), 1.0)


def test_detect_view_outputs(weights_dir, images):
    det = GroundingDinoDetector(weights_dir, score_threshold=0.0)
    assert isinstance(det, Detector) and det.feat_dim == D_MODEL and det.simulated is False
    xyxy, label, score, feat = det.detect_view(images[0], PARTS, 0)
    n = xyxy.shape[0]
    assert 0 < n <= min(100, QUERIES)
    assert xyxy.dtype == np.float32 and label.dtype == np.int16 and score.dtype == np.float32
    assert feat.shape == (n, D_MODEL) and feat.dtype == np.float32
    assert (xyxy[:, [0, 2]] >= 0).all() and (xyxy[:, [0, 2]] <= 120).all()
    assert (xyxy[:, [1, 3]] >= 0).all() and (xyxy[:, [1, 3]] <= 90).all()
    assert (label >= 0).all() and (label < len(PARTS)).all()
    assert (score > 0).all() and (score <= 1).all() and np.all(np.diff(score) <= 0)
    for k in range(len(PARTS)):  # class-wise NMS at 0.6
        b = xyxy[label == k]
        iou = box_iou_np(b, b)
        np.fill_diagonal(iou, 0)
        assert (iou <= 0.6 + 1e-6).all()


def test_detect_object_limits_and_zero_boxes(weights_dir, images):
    det = GroundingDinoDetector(weights_dir, score_threshold=0.0, max_per_view=5)
    out = detect_object(det, images, PARTS)
    assert out.simulated is False and out.feat.shape[1] == D_MODEL
    assert np.all(np.diff(out.offsets(3)) <= 5) and len(out) > 0
    none = GroundingDinoDetector(weights_dir, score_threshold=1.0)
    out = detect_object(none, images, PARTS)
    assert out.xyxy.shape == (0, 4) and out.feat.shape == (0, D_MODEL) and out.offsets(3).tolist() == [0] * 4


def test_bad_prompts(weights_dir, images):
    det = GroundingDinoDetector(weights_dir)
    with pytest.raises(ValueError, match="tokens"):
        det.detect_view(images[0], ["arm"] * 20, 0)  # longer than max_text_len
    with pytest.raises(ValueError):
        det.detect_view(images[0].astype(np.float32), PARTS, 0)


def test_missing_weights_dir(tmp_path):
    missing = tmp_path / "no_such_weights"
    with pytest.raises(DetectorWeightsNotFoundError, match="no_such_weights"):
        GroundingDinoDetector(missing)
    assert issubclass(DetectorWeightsNotFoundError, FileNotFoundError)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty"):
        GroundingDinoDetector(tmp_path / "empty")
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "config.json").write_text("{}")
    with pytest.raises((FileNotFoundError, ValueError), match="partial"):
        GroundingDinoDetector(tmp_path / "partial")


def test_feature_rows_belong_to_their_queries(weights_dir, images):
    import torch
    from PIL import Image

    det = GroundingDinoDetector(weights_dir, score_threshold=0.0)
    xyxy, label, score, feat = det.detect_view(images[1], PARTS, 0)
    text, A = det._prompt(PARTS)
    inputs = det.processor(images=Image.fromarray(images[1]), text=text, return_tensors="pt")
    with torch.inference_mode():
        out = det.model(**inputs)
    hidden = out.last_hidden_state[0].numpy()
    cls = out.logits[0].sigmoid().numpy() @ A.T
    for i in range(len(score)):
        q = int(np.argmin(np.abs(hidden - feat[i]).sum(1)))
        np.testing.assert_allclose(hidden[q], feat[i], rtol=1e-5, atol=1e-6)
        assert int(np.argmax(cls[q])) == label[i]
        np.testing.assert_allclose(cls[q].max(), score[i], rtol=1e-5)
