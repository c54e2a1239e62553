"""Label pictures (pipeline.viz_labels) and the static HTML report (pipeline.report)."""

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from pipeline.report import SIMULATED_BANNER, build_report, summary_metrics
from pipeline.report_3d import page_scripts
from pipeline.viz_labels import (
    NONE_GREY,
    colour_labels,
    contact_sheet,
    instance_colours,
    label_palette,
    plot_curves,
    png_bytes,
    save_png,
    scatter_views,
)


def _tiny_object(n=600, seed=0):
    """A box 'seat' (part 1) with a tall 'back' (part 0) behind it, +Y up."""
    rng = np.random.default_rng(seed)
    seat = rng.uniform([-0.5, -0.05, -0.5], [0.5, 0.05, 0.5], (n // 2, 3))
    back = rng.uniform([-0.5, 0.0, -0.55], [0.5, 1.0, -0.45], (n - n // 2, 3))
    xyz = np.concatenate([seat, back]).astype(np.float32)
    lab = np.r_[np.ones(n // 2, int), np.zeros(n - n // 2, int)]
    return xyz, lab


# ---------------------------------------------------------------- palette / colours
@pytest.mark.parametrize("n", [0, 1, 5, 20, 33])
def test_palette_shape_and_distinct(n):
    pal = label_palette(n)
    assert pal.shape == (n + 1, 3) and pal.dtype == np.uint8
    assert tuple(pal[0]) == NONE_GREY
    assert len({tuple(c) for c in pal}) == n + 1  # all colours differ, incl. grey
    np.testing.assert_array_equal(label_palette(n), pal)  # fixed


def test_palette_prefix_stable_and_negative_rejected():
    np.testing.assert_array_equal(label_palette(3), label_palette(10)[:4])
    with pytest.raises(ValueError):
        label_palette(-1)


def test_colour_labels_maps_minus_one_to_grey():
    col = colour_labels(np.array([-1, 0, 2, -1]), 3)
    pal = label_palette(3)
    assert col.shape == (4, 3) and col.dtype == np.uint8
    np.testing.assert_array_equal(col[[0, 3]], [pal[0], pal[0]])
    np.testing.assert_array_equal(col[1], pal[1])
    np.testing.assert_array_equal(col[2], pal[3])
    with pytest.raises(ValueError):
        colour_labels(np.array([0, 3]), 3)


def test_instance_colours_fixed_per_id_and_grey_background():
    ins = np.array([-1, 4, 7, 4, -1, 0])
    col = instance_colours(ins)
    assert col.shape == (6, 3) and col.dtype == np.uint8
    np.testing.assert_array_equal(col[0], NONE_GREY)
    np.testing.assert_array_equal(col[4], NONE_GREY)
    np.testing.assert_array_equal(col[1], col[3])
    assert len({tuple(c) for c in col[[1, 2, 5]]}) == 3
    # colour depends on the id only, not on the other ids present
    np.testing.assert_array_equal(instance_colours(np.array([4]))[0], col[1])


# ---------------------------------------------------------------- images
def test_scatter_views_shape_and_deterministic():
    xyz, lab = _tiny_object()
    pred = lab.copy()
    pred[::5] = -1
    sets = {"ground truth": lab, "PartSLIP": pred, "PartSTAD": lab}
    img = scatter_views(xyz, sets, 2, ["back", "seat"], size_px=200, max_points=400)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    h, w, _ = img.shape
    assert w == 600 and 200 < h < 320
    np.testing.assert_array_equal(img, scatter_views(xyz, sets, 2, ["back", "seat"], size_px=200, max_points=400))
    # the part colours actually appear in the picture
    pal = label_palette(2)
    flat = img.reshape(-1, 3)
    for k in (1, 2):
        assert (np.abs(flat.astype(int) - pal[k]).sum(axis=1) == 0).sum() > 20


def test_scatter_views_rejects_bad_input():
    xyz, lab = _tiny_object()
    with pytest.raises(ValueError):
        scatter_views(xyz, {"gt": lab[:-1]}, 2, ["back", "seat"])
    with pytest.raises(ValueError):
        scatter_views(xyz, {"gt": lab}, 2, ["back"])


def test_plot_curves_and_png_roundtrip(tmp_path):
    curves = {
        "Chair": [{"epoch": e, "loss": 1.0 / (e + 1), "val_miou": 40.0 + e} for e in range(5)],
        "Lamp": [{"epoch": e, "loss": 0.5, "val_miou": float("nan")} for e in range(3)],
    }
    img = plot_curves(curves, width_px=500, height_px=200)
    assert img.shape == (200, 500, 3) and img.dtype == np.uint8
    assert plot_curves({}).ndim == 3
    data = png_bytes(img)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), img)
    p = save_png(tmp_path / "sub" / "c.png", img)
    assert p.read_bytes() == data
    assert [f.name for f in p.parent.iterdir()] == ["c.png"]  # temp file renamed away
    with pytest.raises(ValueError):
        png_bytes(img.astype(np.float32))


def test_contact_sheet_grid():
    views = np.zeros((7, 40, 40, 3), np.uint8)
    views[3] = 77
    sheet = contact_sheet(views, cols=5, thumb_px=20, gap=2)
    assert sheet.shape == (2 * 20 + 2, 5 * 20 + 4 * 2, 3)
    assert (sheet[0:20, 3 * 22 : 3 * 22 + 20] == 77).all()
    assert (sheet[0:20, 20:22] == 255).all()  # white gap


# ---------------------------------------------------------------- report
def _metrics():
    def m(miou, map50, parts):
        return {
            "miou": miou,
            "map50": map50,
            "part_iou": {p: (miou if i == 0 else None) for i, p in enumerate(parts)},
            "part_ap50": {p: map50 for p in parts},
        }

    return {
        "Chair": {
            "n_test": 4,
            "simulated": True,
            "methods": {
                "partslip": m(45.2, 30.0, ["arm", "back"]),
                "partstad": m(51.7, 33.5, ["arm", "back"]),
                "partstad_boxes": m(48.0, 31.0, ["arm", "back"]),
                "masks_only": m(47.0, 32.0, ["arm", "back"]),
            },
        },
        "Kettle": {
            "n_test": 3,
            "simulated": True,
            "methods": {"partslip": m(60.0, 40.0, ["lid", "handle"]), "partstad": m(62.5, 41.0, ["lid", "handle"])},
        },
        "Lamp <x>": {"n_test": 2, "simulated": True, "methods": {"partstad": m(70.0, 50.0, ["shade"])}},
    }


def test_summary_metrics_means_with_missing_method():
    s = summary_metrics(_metrics())
    assert set(s) == {"partslip", "partstad", "partstad_boxes", "masks_only"}
    assert s["partslip"]["miou"] == pytest.approx((45.2 + 60.0) / 2)
    assert s["partslip"]["map50"] == pytest.approx((30.0 + 40.0) / 2)
    assert s["partslip"]["n_categories"] == 2
    assert s["partstad"]["miou"] == pytest.approx((51.7 + 62.5 + 70.0) / 3)
    assert s["partstad"]["map50"] == pytest.approx((33.5 + 41.0 + 50.0) / 3)
    assert s["partstad_boxes"] == {"miou": 48.0, "map50": 31.0, "n_categories": 1}


def test_summary_metrics_skips_nan_values():
    met = {
        "A": {"methods": {"partstad": {"miou": float("nan"), "map50": 10.0}}},
        "B": {"methods": {"partstad": {"miou": 20.0, "map50": None}}},
    }
    s = summary_metrics(met)
    assert s["partstad"] == {"miou": 20.0, "map50": 10.0, "n_categories": 2}


def _examples():
    xyz, lab = _tiny_object(300)
    views = np.full((6, 32, 32, 3), 128, np.uint8)
    return [
        {
            "object": "Chair/0012",
            "part_names": ["back", "seat"],
            "xyz": xyz,
            "labels": {"ground truth": lab, "PartSLIP": np.where(lab == 0, -1, lab), "PartSTAD": lab},
            "views": views,
        },
        {"object": "Chair/0013", "part_names": ["back", "seat"], "xyz": xyz, "labels": {"ground truth": lab}, "views": None},
    ]


def test_build_report_contents(tmp_path):
    curves = {"Chair": [{"epoch": e, "loss": 1.0 / (e + 1), "val_miou": 40.0 + e} for e in range(4)]}
    path = build_report(tmp_path / "report", _metrics(), curves, _examples(), simulated=True, notes=["oracle detector <seeded>"])
    assert path == tmp_path / "report" / "index.html"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    for cat in ("Chair", "Kettle", "Lamp &lt;x&gt;"):
        assert cat in text
    assert "Lamp <x>" not in text and "oracle detector &lt;seeded&gt;" in text  # escaped
    for number in ("45.2", "51.7", "62.5", "70.0", "33.5", "+6.5", "+2.5", "+4.5"):
        assert number in text
    assert "<b>51.7</b>" in text and "<b>62.5</b>" in text  # best per row in bold
    assert "mean (3 categories)" in text
    assert "52.6<sup" in text and "<b>61.4</b></td>" in text  # PartSLIP mean over 2 of 3
    assert SIMULATED_BANNER in text
    assert "Chair/0012" in text and "Chair/0013" in text
    body = text.replace(page_scripts(), "")  # plotly.js (inlined, MIT) holds URL strings and a PNG of its own
    imgs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', body)
    assert len(imgs) == 4  # curves, 1 contact sheet, 2 scatters
    assert all(base64.b64decode(b)[:4] == b"\x89PNG" for b in imgs)
    assert "http://" not in body and "https://" not in body
    assert text.count('class="pv3d"') == 2 and text.count("<details") == 5  # a 3D block per example with labels
    assert text.count("<details>") == 3
    assert [f.name for f in path.parent.iterdir()] == ["index.html"]


def test_build_report_not_simulated_and_empty_parts(tmp_path):
    met = {"Chair": {"n_test": 1, "simulated": False, "methods": {"partstad": {"miou": 12.34, "map50": 5.0}}}}
    text = build_report(tmp_path, met, {}, [], simulated=False).read_text(encoding="utf-8")
    assert SIMULATED_BANNER not in text and "Simulated" not in text
    assert "12.3" in text and "Chair" in text
    assert "data:image/png;base64," not in text
    assert "PartSTAD &minus; PartSLIP" not in text  # no PartSLIP -> no delta column


def test_markdown_section_renders_tables_images_and_escapes():
    from pipeline.report import markdown_section

    md = "# Title <x>\n\nSome **bold** `code` text.\n\n| a | b |\n|---|---|\n| 1 | 2.5 |\n\n![plot](p.png)\n![gone](q.png)\n"
    out = markdown_section(md, {"p.png": b"\x89PNG"})
    assert "<h3>Title &lt;x&gt;</h3>" in out
    assert "<b>bold</b>" in out and "<code>code</code>" in out
    assert "<tr><th>a</th><th>b</th></tr>" in out and "<td class=name>1</td><td>2.5</td>" in out
    assert "---" not in out  # the separator row is not a data row
    assert 'src="data:image/png;base64,iVBORw=="' in out
    assert "(image q.png not found)" in out


def test_report_shows_benchmark_studies(tmp_path):
    from pipeline.report import build_report

    path = build_report(
        tmp_path / "r", _metrics(), {}, [], simulated=True, studies=[("docs/study.md", "| k | v |\n|---|---|\n| shots | 8 |", {})]
    )
    text = path.read_text()
    assert "Benchmark studies (simulated)" in text and "docs/study.md" in text and "<td class=name>shots</td><td>8</td>" in text
