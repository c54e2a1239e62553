"""Failure gallery, confusion matrices, box-weight figure, captions and the method palette."""

import re

import numpy as np
import pytest

from pipeline.report import build_report
from pipeline.report_boxes import best_box_per_view, box_weight_sheet
from pipeline.report_gallery import confusion_counts, confusion_html, row_normalised, worst_objects
from pipeline.report_style import METHOD_COLOURS, method_colour


def test_worst_objects_by_delta_and_by_partstad():
    scores = {
        "a": {"partslip": 50.0, "partstad": 70.0},  # delta +20
        "b": {"partslip": 80.0, "partstad": 40.0},  # delta -40, partstad 40
        "c": {"partslip": 30.0, "partstad": 20.0},  # delta -10, partstad 20 (lowest)
        "d": {"partslip": float("nan"), "partstad": 60.0},  # no delta
        "e": {"partslip": 90.0, "partstad": 85.0},  # delta -5
    }
    worst = worst_objects(scores, 2)
    assert worst == {"delta": ["b", "c"], "partstad": ["c", "b"]}
    assert worst_objects(scores, 10)["delta"] == ["b", "c", "e", "a"]  # d has no PartSLIP value
    assert worst_objects(scores, 0) == {"delta": [], "partstad": []}
    with pytest.raises(ValueError):
        worst_objects(scores, -1)


def test_confusion_counts_match_hand_counted_labels():
    gt = [np.array([0, 0, 1, 1, -1]), np.array([1, 1])]
    pred = [np.array([0, 1, 1, -1, -1]), np.array([1, 0])]
    c = confusion_counts(pred, gt, 2)
    # rows GT (none, p0, p1), columns predicted (none, p0, p1)
    expected = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 2]])
    np.testing.assert_array_equal(c, expected)
    f = row_normalised(c)
    np.testing.assert_allclose(f.sum(axis=1), 1.0)
    np.testing.assert_allclose(f[2], [0.25, 0.25, 0.5])
    empty = row_normalised(np.array([[0, 0], [1, 3]]))
    assert np.isnan(empty[0]).all() and np.allclose(empty[1], [0.25, 0.75])


def test_confusion_rejects_bad_labels_and_shapes():
    with pytest.raises(ValueError, match="labels must lie"):
        confusion_counts([np.array([2])], [np.array([0])], 2)
    with pytest.raises(ValueError, match="shape"):
        confusion_counts([np.array([0, 1])], [np.array([0])], 2)
    with pytest.raises(ValueError, match="does not match"):
        confusion_html(np.zeros((2, 2), int), ["a", "b"], "x")


def test_confusion_html_prints_percent_and_counts_on_hover():
    c = np.array([[0, 0, 0], [0, 3, 1], [0, 0, 2]])
    out = confusion_html(c, ["leg", "<seat>"], "PartSTAD")
    assert "&lt;seat&gt;" in out and "<seat>" not in out
    assert 'title="GT leg → predicted leg: 3 of 4 points"' in out
    assert ">75</td>" in out and ">25</td>" in out and ">100</td>" in out
    assert out.count("&ndash;") == 3  # the GT "none" row has no points


def test_best_box_per_view_and_sheet_shape():
    view = np.array([0, 0, 2])
    w = np.array([1.0, 3.0, 0.5])
    np.testing.assert_array_equal(best_box_per_view(view, w, 3), [1, -1, 2])
    rgb = np.full((3, 40, 60, 3), 200, np.uint8)
    xyxy = np.array([[1, 1, 20, 20], [5, 5, 30, 30], [0, 0, 59, 39]], np.float32)
    mask = np.zeros((3, 40, 60), bool)
    mask[1, 5:30, 5:30] = True
    img = box_weight_sheet(rgb, xyxy, view, np.array([0, 1, -1]), w, ["a", "b"], mask, cols=3, thumb_px=60)
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8
    no_mask = box_weight_sheet(rgb, xyxy, view, np.array([0, 1, 0]), w, ["a", "b"], None, cols=3, thumb_px=60)
    assert no_mask.shape[0] < img.shape[0]  # the mask row is left out
    with pytest.raises(ValueError, match="mask shape"):
        box_weight_sheet(rgb, xyxy, view, np.array([0, 1, 0]), w, ["a", "b"], mask[:, :10], cols=3)


def test_method_colours_one_palette_everywhere():
    assert method_colour("PartSTAD") == method_colour("partstad") == METHOD_COLOURS["partstad"]
    assert method_colour("PartSLIP") == METHOD_COLOURS["partslip"]
    assert method_colour("w/o weights") == METHOD_COLOURS["masks_only"]
    assert method_colour("w/o SAM") == METHOD_COLOURS["partstad_boxes"]
    assert len(set(METHOD_COLOURS.values())) == len(METHOD_COLOURS)
    assert method_colour("shared", 0) not in METHOD_COLOURS.values()


def test_benchmark_and_curves_use_the_method_palette(tmp_path):
    """The k-shot/views plots and the training curves draw PartSTAD/PartSLIP in the palette's colours."""
    import sys
    from pathlib import Path

    from matplotlib.colors import to_hex, to_rgb

    from pipeline.viz_labels import plot_curves

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import beyond_paper

    assert beyond_paper._colour("PartSTAD", 1) == beyond_paper._colour("partstad", 0) == METHOD_COLOURS["partstad"]
    assert beyond_paper._colour("per_category", 3) == METHOD_COLOURS["partstad"]
    assert beyond_paper._colour("PartSLIP", 0) == beyond_paper._colour("partslip", 1) == METHOD_COLOURS["partslip"]
    # the first category's curve is drawn in PartSTAD's colour itself
    img = plot_curves({"Chair": [{"epoch": e, "loss": 1.0 / (e + 1), "val_miou": 0.5} for e in range(10)]})
    rgb = np.round(np.array(to_rgb(METHOD_COLOURS["partstad"])) * 255).astype(int)
    assert (np.abs(img.astype(int) - rgb).max(axis=2) <= 2).sum() > 50, to_hex(tuple(rgb / 255))


def _gallery_data():
    rng = np.random.default_rng(0)
    xyz = rng.uniform(-1, 1, (200, 3)).astype(np.float32)
    gt = rng.integers(0, 2, 200)
    objs = {o: {"xyz": xyz, "labels": {"ground truth": gt, "PartSLIP": gt, "PartSTAD": 1 - gt}} for o in ("Chair/1", "Chair/2")}
    scores = {
        "Chair/1": {"partslip": 90.0, "partstad": 10.0},
        "Chair/2": {"partslip": 50.0, "partstad": 60.0},
        "Chair/3": {"partslip": 1.0, "partstad": 99.0},
    }
    worst = worst_objects(scores, 2)
    counts = confusion_counts([gt], [gt], 2)
    return {
        "part_names": ["back", "seat"],
        "scores": scores,
        "worst": worst,
        "objects": objs,
        "confusion": {"PartSLIP": counts, "PartSTAD": counts},
    }


def test_report_has_gallery_confusions_box_weights_and_a_caption_per_image(tmp_path):
    metrics = {"Chair": {"n_test": 3, "methods": {"partslip": {"miou": 50.0}, "partstad": {"miou": 60.0}}}}
    rgb = np.full((2, 30, 30, 3), 128, np.uint8)
    bw = {
        "category": "Chair",
        "object": "Chair/1",
        "part_names": ["back", "seat"],
        "rgb": rgb,
        "xyxy": np.array([[1, 1, 10, 10]], np.float32),
        "view": np.array([1], np.int16),
        "label": np.array([0], np.int16),
        "weight": np.array([0.7], np.float32),
        "mask": np.ones((1, 30, 30), bool),
        "source": "test",
    }
    path = build_report(tmp_path, metrics, {}, [], simulated=False, failures={"Chair": _gallery_data()}, box_weights=[bw])
    text = path.read_text()
    assert "Where it fails" in text and "Which boxes PartSTAD trusted" in text
    table = text.split("Where it fails", 1)[1]
    # Chair/1 is worst by both criteria, Chair/2 second; Chair/3 never listed
    assert re.findall(r'<td class="name">(Chair/\d)</td>', table) == ["Chair/1", "Chair/2", "Chair/1", "Chair/2"]
    assert text.count('<table class="confusion">') == 2
    n_img = text.count("<img")
    assert n_img == 3  # two gallery objects + one box-weight sheet
    figures = re.findall(r"<figure><img [^>]*><figcaption>([^<]+)</figcaption></figure>", text)
    assert len(figures) == n_img and all(f.strip() for f in figures)
    assert any("Chair/1" in f and "PartSTAD" in f and "weight" in f for f in figures)
    assert "w=0.70" not in text  # the weight is drawn in the picture, not leaked into the HTML
