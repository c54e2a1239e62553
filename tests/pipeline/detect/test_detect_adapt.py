"""Few-shot detector adaptation (pipeline/detect/adapt.py): data set, AP50, trainable groups, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import transformers  # noqa: F401  - a test dependency: missing means a broken install, not a skip

from pipeline.detect.adapt import (
    AdaptDataError,
    AdaptParams,
    AdaptSample,
    average_precision,
    box_ap,
    build_dataset,
    check_prompt_phrases,
    fine_tune,
    object_samples,
    to_target,
    trainable_parameters,
)
from pipeline.detect.grounding_dino import DetectorWeightsNotFoundError, GroundingDinoDetector, check_weights_dir, load_grounding_dino
from tests.tiny_gdino import save_tiny_gdino

PARTS = ("lid", "handle", "spout")


def _scene():
    """2 views of 8x10 px over 6 points: instance 0 (label 1) = points 0,1; instance 1 (label 0) = point 2;
    points 3,4 unlabelled body; point 5 labelled but without instance. View 1 shows only the body."""
    sem = np.array([1, 1, 0, -1, -1, 2], np.int16)
    ins = np.array([0, 0, 1, -1, -1, -1], np.int32)
    pix = np.full((2, 8, 10), -1, np.int32)
    pix[0, 1:3, 2:5] = 0  # inst 0 rows 1-2, cols 2-4
    pix[0, 4, 6:8] = 1  # inst 0 again: box grows to rows 1-4, cols 2-7
    pix[0, 5:8, 0:3] = 2  # inst 1 rows 5-7 cols 0-2
    pix[0, 0, 9] = 3
    pix[1, 2:6, 2:6] = 4  # body only
    rgb = np.zeros((2, 8, 10, 3), np.uint8)
    return rgb, pix, sem, ins


def test_object_samples_boxes_from_the_instance_map():
    rgb, pix, sem, ins = _scene()
    samples, empty = object_samples("Kettle/0", rgb, pix, sem, ins, 3, min_box_px=1)
    assert empty == [1] and len(samples) == 1 and samples[0].view == 0
    s = samples[0]
    order = np.argsort(s.label)
    assert s.label[order].tolist() == [0, 1]
    np.testing.assert_array_equal(s.xyxy[order], [[0, 5, 3, 8], [2, 1, 8, 5]])
    t = to_target(s)
    assert t["class_labels"].dtype == np.int64 and t["boxes"].dtype == np.float32
    # label 1 box: x 2..8 of W=10, y 1..5 of H=8 -> cx 0.5, cy 0.375, w 0.6, h 0.5
    np.testing.assert_allclose(t["boxes"][s.label == 1][0], [0.5, 0.375, 0.6, 0.5], atol=1e-6)
    # min_box_px drops the 3x3 box of label 0 when set to 4
    s4, _ = object_samples("Kettle/0", rgb, pix, sem, ins, 3, min_box_px=4)
    assert s4[0].label.tolist() == [1]


def test_dataset_errors_name_the_problem(caplog):
    rgb, pix, sem, ins = _scene()
    with pytest.raises(AdaptDataError, match="no training shapes"):
        build_dataset([], 3)
    only_body = pix.copy()
    only_body[0][only_body[0] < 3] = -1
    with pytest.raises(AdaptDataError, match="no part is visible in any view"):
        build_dataset([("Kettle/0", rgb, only_body, sem, ins)], 3)
    with pytest.raises(AdaptDataError, match="outside the 1 part names"):
        build_dataset([("Kettle/0", rgb, pix, sem, ins)], 1)
    with caplog.at_level("INFO", logger="pipeline.detect.adapt"):
        out = build_dataset([("Kettle/0", rgb, pix, sem, ins)], 3, min_box_px=1)
    assert len(out) == 1 and "views [1] of Kettle/0 show no part" in caplog.text
    with pytest.raises(AdaptDataError, match="does not match"):
        build_dataset([("Kettle/0", rgb[:, :4], pix, sem, ins)], 3)


def test_average_precision_by_hand():
    # ranked TP, FP, TP with 2 GT: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> AP = .5*1 + .5*2/3
    assert average_precision(np.array([True, False, True]), np.array([0.9, 0.8, 0.7]), 2) == pytest.approx(0.5 + 1 / 3)
    assert average_precision(np.array([False, True]), np.array([0.9, 0.8]), 1) == pytest.approx(0.5)
    assert average_precision(np.zeros(0, bool), np.zeros(0), 3) == 0.0
    assert math.isnan(average_precision(np.zeros(0, bool), np.zeros(0), 0))


def test_box_ap_matching_classes_and_duplicates():
    gt = [(np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float), np.array([0, 1]))]
    perfect = [(np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float), np.array([0, 1]), np.array([0.9, 0.8]))]
    np.testing.assert_allclose(box_ap(perfect, gt, 3)[:2], [1.0, 1.0])
    assert math.isnan(box_ap(perfect, gt, 3)[2])  # class 2 has no ground truth
    wrong_class = [(np.array([[0, 0, 10, 10]], float), np.array([1]), np.array([0.9]))]
    np.testing.assert_allclose(box_ap(wrong_class, gt, 2), [0.0, 0.0])
    # IoU 0.5 exactly counts (x 0..10 vs 0..5 of a 10x10 box = 0.5); below does not
    half = [(np.array([[0, 0, 5, 10]], float), np.array([0]), np.array([0.9]))]
    assert box_ap(half, gt, 2)[0] == pytest.approx(1.0)
    below = [(np.array([[0, 0, 4.9, 10]], float), np.array([0]), np.array([0.9]))]
    assert box_ap(below, gt, 2)[0] == 0.0
    # a duplicate of a matched box is a false positive: precision 1 then 1/2 at recall 1 -> AP 1
    dup = [(np.array([[0, 0, 10, 10], [0, 0, 10, 10]], float), np.array([0, 0]), np.array([0.9, 0.8]))]
    assert box_ap(dup, gt, 2)[0] == pytest.approx(1.0)
    # the higher-scored duplicate is wrong-placed: FP then TP -> AP 0.5
    late = [(np.array([[50, 50, 60, 60], [0, 0, 10, 10]], float), np.array([0, 0]), np.array([0.9, 0.8]))]
    assert box_ap(late, gt, 2)[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="detection sets"):
        box_ap([], gt, 2)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return save_tiny_gdino(tmp_path_factory.mktemp("gdino"), PARTS, image_size=96)


def test_trainable_groups(tiny_dir):
    model, _ = load_grounding_dino(tiny_dir)
    prompt = trainable_parameters(model, "prompt")
    assert prompt and all(n.startswith("model.text_projection.") for n in prompt)
    heads = trainable_parameters(model, "heads")
    assert set(prompt) < set(heads) and any("bbox_embed" in n for n in heads) and not any("backbone" in n for n in heads)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert any(n.startswith("model.backbone.") for n in frozen) and any(n.startswith("model.text_backbone.") for n in frozen)
    everything = trainable_parameters(model, "all")
    assert len(everything) == len(list(model.named_parameters()))
    with pytest.raises(ValueError, match="trainable must be one of"):
        trainable_parameters(model, "backbone")


def test_prompt_phrases_need_bert_delimiter_ids(tiny_dir):
    _, proc = load_grounding_dino(tiny_dir)
    ids = proc.tokenizer("lid . handle . spout .")["input_ids"]
    check_prompt_phrases(ids, 3, "lid . handle . spout .")  # [CLS]=101 ... "."=1012 ... [SEP]=102
    with pytest.raises(AdaptDataError, match="splits prompt .* into 1 phrase"):
        check_prompt_phrases([1, 5, 6, 7, 8, 2], 3, "x")  # a vocabulary with other special ids


def test_weights_dir_without_safetensors_is_a_clear_error(tiny_dir, tmp_path):
    import shutil

    broken = tmp_path / "adapted_Kettle"
    shutil.copytree(tiny_dir, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(DetectorWeightsNotFoundError, match=r"no model.safetensors .*adapted_Kettle"):
        check_weights_dir(broken)
    with pytest.raises(FileNotFoundError, match="adapted_Kettle"):
        GroundingDinoDetector(broken)


def test_fine_tune_rejects_bad_input(tiny_dir):
    model, proc = load_grounding_dino(tiny_dir)
    s = AdaptSample(np.zeros((32, 32, 3), np.uint8), np.array([[1, 1, 9, 9]], np.float32), np.array([5]))
    with pytest.raises(AdaptDataError, match="no training views"):
        fine_tune(model, proc, [], [], PARTS, AdaptParams(epochs=1))
    with pytest.raises(AdaptDataError, match=r"labels \[5\] are outside the 3 part names"):
        fine_tune(model, proc, [s], [], PARTS, AdaptParams(epochs=1))


# ----------------------------------------------------------------------------- done-when
#: The run below (Kettle: lid/handle/spout, 2 synthetic shapes x 10 views at 128 px, tiny random
#: Grounding DINO, all parameters, AdamW 1e-3, batch 4, 40 epochs = 200 steps on CPU).
FT_EPOCHS, FT_BATCH, FT_LR, FT_SIZE, FT_THREADS = 40, 4, 1e-3, 128, 2
#: Fine-tuning must divide the detection loss on the (fixed) training views by at least this. Measured
#: 18x-27x at the selected epoch under ATen's default/avx2/avx512 kernels with 1 or 2 threads, and
#: >= 7.5x at every epoch >= 1 (201.6 -> 7.5..26.7); a run that does not train (lr 0) gives exactly 1x.
FT_LOSS_DROP = 3.0


def _fixed_batch_loss(model, proc, samples, names) -> float:
    """Grounding DINO's training loss (Hungarian matching, focal class + L1/GIoU box terms, auxiliary
    decoder and encoder terms) on all ``samples`` in one eval-mode forward: no dropout, no shuffling."""
    import torch

    from pipeline.detect.adapt import _encode
    from pipeline.detect.grounding_dino import prompt_for

    text, _ = prompt_for(proc.tokenizer, names, int(model.config.max_text_len))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            labels = [{k: torch.as_tensor(v) for k, v in to_target(s).items()} for s in samples]
            return float(model(**_encode(proc, samples, text, "cpu"), labels=labels).loss)
    finally:
        model.train(was)


@pytest.mark.slow
def test_fine_tuning_raises_ap50_and_detect_reloads_the_same_boxes(tmp_path, capsys):
    """Fine-tuning learns (the loss on the training views falls several-fold, AP50 leaves 0), the
    selected epoch's weights are the ones in the model, and detect's loader gives the same boxes.

    The tiny random detector's AP50 curve is optimisation luck: it jumps between ~0 and its best
    from epoch to epoch, and its best value depends on the float rounding of the CPU kernels (best AP50
    0.168 with ATen's avx2 kernels, 0.067 with avx512 and with the scalar default kernels at 2
    threads, 0.037 with avx512 at 1 thread, 0.182 with default at 1 thread). So no AP50 *level*
    is asserted, only that some epoch beats the random weights (AP50 0 -> > 0: any correct box on
    any of 40 epochs; first > 0 at epoch 8-10 in every run measured). The learning check is
    the loss of the selected weights on the fixed training batch (:data:`FT_LOSS_DROP`).
    """
    import torch

    from pipeline.cameras import PAPER_VIEWS, make_cameras
    from pipeline.data.synthetic import generate_shape
    from pipeline.detect.adapt import evaluate_ap50, predict
    from pipeline.meta import part_names
    from pipeline.render.render import render_views

    threads = torch.get_num_threads()
    torch.set_num_threads(FT_THREADS)
    try:
        names = part_names("Kettle")
        assert tuple(names) == PARTS
        cams = make_cameras(views=PAPER_VIEWS, image_size=FT_SIZE)
        objs = []
        for i in range(2):
            c = generate_shape("Kettle", i, n_points=8000)
            r = render_views(c.xyz, c.rgb, cams, backend="numpy")
            objs.append((c.object_id, r.rgb, r.pix2pt, c.sem, c.ins))
        train = build_dataset(objs, len(names))
        assert len(train) == 20 and sum(len(s.label) for s in train) == 60

        base = save_tiny_gdino(tmp_path / "base", names, image_size=FT_SIZE)
        model, proc = load_grounding_dino(base)
        loss_before = _fixed_batch_loss(model, proc, train, names)
        prm = AdaptParams(epochs=FT_EPOCHS, batch_size=FT_BATCH, lr=FT_LR, trainable="all", seed=0)
        losses = []
        res = fine_tune(model, proc, train, train, names, prm, progress=lambda e: losses.append(e["loss"]) if "step" in e else None)
        loss_after = _fixed_batch_loss(model, proc, train, names)  # the selected epoch's weights
        curve = [round(e["val_ap50"], 3) for e in res.curve]
        with capsys.disabled():
            print(
                f"\n[{torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads] AP50 per epoch on the "
                f"training views: {curve}\nchosen epoch {res.best_epoch}: AP50 {res.best_ap50:.3f}; loss on the training "
                f"views {loss_before:.2f} -> {loss_after:.2f} ({loss_before / loss_after:.1f}x, bar {FT_LOSS_DROP}x); "
                f"step losses first 5 {np.mean(losses[:5]):.2f}, last 10 {np.mean(losses[-10:]):.2f}; "
                f"train {res.seconds_train:.1f} s, eval {res.seconds_eval:.1f} s"
            )
        assert len(losses) == FT_EPOCHS * 5 and np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5])
        assert loss_after * FT_LOSS_DROP < loss_before  # fine-tuning learned: the loss fell several-fold
        assert res.curve[0]["val_ap50"] <= 0.02  # random weights: near 0
        assert res.best_epoch > 0 and res.best_ap50 > res.curve[0]["val_ap50"]  # and some epoch finds parts
        ap_now, _ = evaluate_ap50(model, proc, train, names, prm)  # the best epoch's weights are loaded back
        assert ap_now == pytest.approx(res.best_ap50, abs=1e-6)

        # saved as safetensors and reloaded through detect's loader: the same boxes
        out = tmp_path / "adapted"
        model.save_pretrained(out)
        proc.save_pretrained(out)
        det = GroundingDinoDetector(out, score_threshold=0.0, max_per_view=100)
        mine = predict(model, proc, [s.image for s in train[:3]], names)
        for v, s in enumerate(train[:3]):
            xyxy, label, score, feat = det.detect_view(s.image, names, v)
            np.testing.assert_allclose(xyxy, mine[v][0], atol=1e-3)
            np.testing.assert_array_equal(label, mine[v][1])
            np.testing.assert_allclose(score, mine[v][2], atol=1e-5)
            np.testing.assert_allclose(feat, mine[v][3], atol=1e-4)
    finally:
        torch.set_num_threads(threads)
