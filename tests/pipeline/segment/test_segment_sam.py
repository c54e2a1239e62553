import sys

import numpy as np
import pytest
import torch

from pipeline.detect.types import Detections
from pipeline.segment import torchvision_shim
from pipeline.segment.sam import SamCheckpointError, SamCheckpointNotFoundError, SamMasker, build_tiny_sam


def _det(per_view_boxes, d=4):
    xyxy, view = [], []
    for v, boxes in enumerate(per_view_boxes):
        for b in boxes:
            xyxy.append(b)
            view.append(v)
    n = len(xyxy)
    return Detections(np.asarray(xyxy, np.float32).reshape(-1, 4), view, np.zeros(n), np.linspace(1, 0.5, n), np.zeros((n, d)))


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(4, 80, 80, 3), dtype=np.uint8)


def test_shim_installed_only_without_torchvision():
    assert torchvision_shim.install() in (True, False)
    assert torchvision_shim.install() == torchvision_shim.install()  # idempotent
    import segment_anything  # noqa: F401  (works through the shim)

    if torchvision_shim.is_installed():
        from torchvision.ops.boxes import batched_nms, box_area
        from torchvision.transforms.functional import resize, to_pil_image

        img = to_pil_image(np.zeros((10, 20, 3), np.uint8))
        assert resize(img, (5, 8)).size == (8, 5)
        b = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10.0]])
        assert box_area(b).tolist() == [100, 81, 100]
        keep = batched_nms(b, torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 0, 1]), 0.5)
        assert keep.tolist() == [0, 2]
        assert "transformers" in sys.modules  # imported before the fake (STACK §11 pitfall 8)


def test_masks_shape_and_one_encoding_per_view_with_boxes(images):
    masker = SamMasker(build_tiny_sam(img_size=64, patch_size=8))
    det = _det([[[5, 5, 40, 30], [10, 10, 70, 70], [-5, 60, 30, 90]], [], [[0, 0, 80, 80]], []])
    masks, emb = masker.masks_for_object(images, det)
    assert masks.shape == (4, 80, 80) and masks.dtype == bool
    assert masker.encode_calls == 2 and masker.decode_calls == 2
    assert sorted(emb) == [0, 2]
    assert all(e.shape == (1, 32, 8, 8) and e.dtype == np.float16 for e in emb.values())

    again, emb2 = masker.masks_for_object(images, det, embeddings=emb)
    assert masker.encode_calls == 2  # nothing encoded the second time
    np.testing.assert_array_equal(again, masks)
    assert sorted(emb2) == [0, 2]
    np.testing.assert_array_equal(emb2[0], emb[0])

    partial_cache, _ = masker.masks_for_object(images, det, embeddings={2: emb[2]})
    assert masker.encode_calls == 3
    np.testing.assert_array_equal(partial_cache, masks)


def test_same_masks_as_plain_predictor(images):
    """Our batched path gives what SamPredictor gives box by box (float16-rounded features)."""
    from segment_anything import SamPredictor

    sam = build_tiny_sam(img_size=64, patch_size=8, seed=1)
    det = _det([[[5, 5, 40, 30], [10, 10, 70, 70]]])
    masks, emb = SamMasker(sam).masks_for_object(images[:1], det)
    pred = SamPredictor(sam)
    pred.set_image(images[0])
    pred.features = pred.features.to(torch.float16).to(torch.float32)
    for b in range(2):
        with torch.inference_mode():
            m, _, _ = pred.predict(box=det.xyxy[b], multimask_output=False)
        np.testing.assert_array_equal(m[0], masks[b])


def test_non_square_images_and_zero_boxes():
    masker = SamMasker(build_tiny_sam(img_size=64, patch_size=8))
    imgs = np.zeros((2, 48, 96, 3), np.uint8)
    masks, emb = masker.masks_for_object(imgs, _det([[], [[1, 1, 50, 40]]]))
    assert masks.shape == (1, 48, 96) and list(emb) == [1]
    masks, emb = masker.masks_for_object(imgs, Detections.empty(4))
    assert masks.shape == (0, 48, 96) and emb == {} and masker.encode_calls == 1


def test_bad_cache_and_images(images):
    masker = SamMasker(build_tiny_sam(img_size=64, patch_size=8))
    det = _det([[[5, 5, 40, 30]]])
    with pytest.raises(ValueError, match="embedding"):
        masker.masks_for_object(images[:1], det, embeddings={0: np.zeros((1, 32, 4, 4), np.float16)})
    with pytest.raises(ValueError):
        masker.masks_for_object(images[0], det)


def test_checkpoint_loading(tmp_path, monkeypatch):
    import segment_anything

    monkeypatch.setitem(segment_anything.sam_model_registry, "tiny", lambda checkpoint=None: build_tiny_sam(seed=5))
    ref = build_tiny_sam(seed=9)
    path = tmp_path / "tiny.pth"
    torch.save(ref.state_dict(), path)
    masker = SamMasker("tiny", path)
    for k, v in ref.state_dict().items():
        assert torch.equal(masker.sam.state_dict()[k], v)

    missing = tmp_path / "nope" / "sam_vit_h.pth"
    with pytest.raises(SamCheckpointNotFoundError, match="nope"):
        SamMasker("tiny", missing)
    assert issubclass(SamCheckpointNotFoundError, FileNotFoundError)
    with pytest.raises(ValueError, match="unknown SAM model type"):
        SamMasker("vit_zz", path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, bad)
    with pytest.raises(SamCheckpointError):
        SamMasker("tiny", bad)  # weights_only refuses arbitrary callables
    wrong = tmp_path / "wrong.pth"
    torch.save({"foo": torch.zeros(1)}, wrong)
    with pytest.raises(SamCheckpointError):
        SamMasker("tiny", wrong)
