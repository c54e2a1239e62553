"""SAM's image encoder with several views per forward and under bf16 autocast (tiny random model, CPU)."""

import threading

import numpy as np
import pytest

from pipeline.batching import chunks, prefetched, resolve_batch_size, resolve_precision
from pipeline.detect.types import Detections
from pipeline.segment.sam import SamMasker, build_tiny_sam


def _det(n_views: int, per_view: int, size: int, seed: int = 0) -> Detections:
    rng = np.random.default_rng(seed)
    n = n_views * per_view
    xy = rng.uniform(0, size * 0.6, (n, 2))
    wh = rng.uniform(size * 0.1, size * 0.4, (n, 2))
    return Detections(
        np.concatenate([xy, xy + wh], 1).astype(np.float32),
        np.repeat(np.arange(n_views), per_view),
        np.zeros(n),
        np.ones(n),
        np.zeros((n, 4)),
    )


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, size=(5, 60, 80, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def sam():
    return build_tiny_sam(img_size=64, patch_size=8, seed=2)


@pytest.mark.parametrize("batch_size", [2, 5, 16])
def test_batched_encoder_equals_one_view_at_a_time(sam, images, batch_size):
    det = _det(5, 3, 60)
    one = SamMasker(sam, batch_size=1)
    many = SamMasker(sam, batch_size=batch_size)
    m1, e1 = one.masks_for_object(images, det)
    mb, eb = many.masks_for_object(images, det)
    assert one.encoder_forwards == 5 and many.encoder_forwards == -(-5 // batch_size)
    assert one.encode_calls == many.encode_calls == 5
    assert sorted(e1) == sorted(eb) == [0, 1, 2, 3, 4]
    for v in e1:  # float16 embeddings: equal up to one f16 rounding step of the batched matmuls
        np.testing.assert_allclose(eb[v].astype(np.float32), e1[v].astype(np.float32), rtol=2e-3, atol=2e-3)
    # masks: the decoder reads the embeddings; a pixel may flip only where a logit sits at 0
    assert (m1 != mb).mean() < 1e-3
    again, _ = many.masks_for_object(images, det, embeddings=e1)  # with the unbatched embeddings: exact
    np.testing.assert_array_equal(again, m1)


def test_only_views_with_boxes_are_encoded_in_batches(sam, images):
    det = _det(5, 2, 60)
    keep = np.isin(det.view, [1, 3, 4])
    det = Detections(det.xyxy[keep], det.view[keep], det.label[keep], det.score[keep], det.feat[keep])
    masker = SamMasker(sam, batch_size=2)
    masks, emb = masker.masks_for_object(images, det, embeddings=None)
    assert sorted(emb) == [1, 3, 4] and masker.encode_calls == 3 and masker.encoder_forwards == 2
    _, emb2 = masker.masks_for_object(images, det, embeddings={3: emb[3]})  # one cached: two to encode, one forward
    assert masker.encode_calls == 5 and masker.encoder_forwards == 3
    np.testing.assert_array_equal(emb2[3], emb[3])
    assert masks.shape == (6, 60, 80)


def test_bf16_autocast_agrees_with_fp32(sam, images):
    det = _det(5, 3, 60, seed=1)
    ref_masker, low_masker = SamMasker(sam, batch_size=5), SamMasker(sam, batch_size=5, precision="bf16")
    ref, e_ref = ref_masker.masks_for_object(images, det)
    low, e_low = low_masker.masks_for_object(images, det)
    for v in e_ref:  # bf16 keeps 8 mantissa bits: about 1 % of each embedding's spread
        err = np.abs(e_low[v].astype(np.float32) - e_ref[v].astype(np.float32)).max()
        assert err < 0.05 * np.abs(e_ref[v].astype(np.float32)).max()
    inter = (ref & low).sum((1, 2))
    union = (ref | low).sum((1, 2))
    iou = inter / np.maximum(union, 1)
    assert ref.any((1, 2)).sum() >= 10  # masks to compare
    assert iou[union > 0].min() > 0.9  # each box's mask
    assert (ref != low).mean() < 0.01  # all pixels


def test_threads_share_one_masker(sam, images):
    det = _det(5, 2, 60, seed=3)
    masker = SamMasker(sam, batch_size=2)
    ref, _ = masker.masks_for_object(images, det)
    out: dict[int, np.ndarray] = {}

    def run(i: int) -> None:
        out[i] = masker.masks_for_object(images[::-1].copy() if i else images, det)[0]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    np.testing.assert_array_equal(out[0], ref)  # the other thread's object (other images) did not leak in
    assert not np.array_equal(out[1], ref)


def test_settings_resolve_per_device():
    assert resolve_batch_size(None, "cpu") == 1 and resolve_batch_size(0, "cpu") == 1
    assert resolve_batch_size(None, "cuda") >= 10 and resolve_batch_size(3, "cuda:1") == 3
    assert resolve_precision("auto", "cpu") == "fp32" and resolve_precision("auto", "cuda") == "bf16"
    assert resolve_precision("fp16", "cpu") == "fp16"
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("half", "cpu")
    with pytest.raises(ValueError, match="batch size"):
        resolve_batch_size(-1, "cpu")
    m = SamMasker(build_tiny_sam(img_size=32, patch_size=8), precision="auto")
    assert m.precision == "fp32" and m.batch_size == 1
    assert [list(c) for c in chunks(range(5), 2)] == [[0, 1], [2, 3], [4]]


def test_prefetched_keeps_order_and_raises_at_its_item():
    seen = []

    def f(x: int) -> int:
        seen.append(threading.current_thread().name)
        if x == 3:
            raise KeyError(x)
        return x * 10

    it = prefetched(f, range(5))
    assert [next(it), next(it), next(it)] == [0, 10, 20]
    with pytest.raises(KeyError):
        next(it)
    assert any(n.startswith("prefetch") for n in seen)
    assert list(prefetched(f, [7])) == [70] and list(prefetched(f, [])) == []
