"""The interactive 3D block (pipeline.report_3d) and its place in the report (issue 22)."""

import json
import re

import numpy as np
import pytest
from plotly.offline import get_plotlyjs

from pipeline.report import build_report
from pipeline.report_3d import MAX_POINTS, Labeling, block_html, expand_json, figure_json, object_figure, page_scripts
from pipeline.viz_labels import instance_colours, label_palette, scatter_views

NAMES = ["back", "seat", "leg"]
PLOTLY_HEADER = get_plotlyjs()[:40]  # "/**\n* plotly.js v<version>\n* Copyright ..."


def _object(n=5000, seed=0):
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
    sem = np.where(xyz[:, 1] > 0.3, 0, np.where(xyz[:, 1] > -0.3, 1, 2))
    sem[xyz[:, 0] > 0.9] = -1
    ins = np.where(sem < 0, -1, sem * 10 + (xyz[:, 0] > 0))
    return xyz, sem, ins


def _labelings(sem, ins):
    pred = sem.copy()
    pred[::7] = -1
    return [
        Labeling("ground truth", "ground truth", sem, ins),
        Labeling("PartSLIP", "PartSLIP", pred, ins),
        Labeling("PartSTAD", "PartSTAD", sem, None),
        Labeling("auto: PartSTAD", "auto", sem, ins),
    ]


def _scene_traces(fig):
    out = {}
    for t in fig.data:
        out.setdefault(t.scene, []).append(t)
    return out


def test_figure_one_scene_per_method_one_trace_per_part_subsampled():
    xyz, sem, ins = _object()
    fig = object_figure(xyz, _labelings(sem, ins), NAMES)
    scenes = _scene_traces(fig)
    assert list(scenes) == ["scene", "scene2", "scene3", "scene4"]
    assert [a.text for a in fig.layout.annotations] == ["ground truth", "PartSLIP", "PartSTAD", "auto: PartSTAD"]
    for traces in scenes.values():
        assert [t.name for t in traces] == [*NAMES, "none"]  # parts in order, "none" last
        assert sum(len(t.x) for t in traces) == MAX_POINTS  # the same subset in every scene
    palette = label_palette(len(NAMES))
    gt = scenes["scene"]
    assert [t.marker.color for t in gt] == ["#{:02x}{:02x}{:02x}".format(*palette[k]) for k in (1, 2, 3, 0)]
    assert [t.showlegend for t in fig.data].count(True) == len(NAMES) + 1  # one legend entry per part
    # hover: part name and instance id; no instance ids where the method has none
    assert gt[0].hovertemplate.startswith("back<br>instance %{customdata}") and scenes["scene3"][0].customdata is None
    assert set(np.unique(np.concatenate([t.customdata for t in gt]))) <= set(np.unique(ins))
    ids = np.array(sorted(int(i) for i in fig.layout.meta["pv3d_inst"]))
    cols = instance_colours(ids)
    assert fig.layout.meta["pv3d_inst"] == {str(i): "#{:02x}{:02x}{:02x}".format(*c) for i, c in zip(ids, cols)}
    # coordinates rounded to 3 decimals, in the plot frame (x, -z, y)
    x = np.asarray(gt[0].x, np.float64)
    np.testing.assert_allclose(x, np.round(x, 3), atol=1e-6)


def test_small_object_keeps_every_point_and_output_is_deterministic():
    xyz, sem, ins = _object(n=400)
    a = figure_json(object_figure(xyz, _labelings(sem, ins), NAMES))
    b = figure_json(object_figure(xyz.copy(), _labelings(sem.copy(), ins.copy()), list(NAMES)))
    assert a == b  # same input, same bytes
    d = expand_json(a)
    assert sum(len(t["x"]) for t in d["data"] if t["scene"] == "scene") == 400


def test_figure_json_stores_points_once_and_expands_back():
    xyz, sem, ins = _object()
    fig = object_figure(xyz, _labelings(sem, ins), NAMES)
    text = figure_json(fig)
    raw = json.loads(text)
    assert all("x" not in t and "pv3d_idx" in t for t in raw["data"])
    assert len(text) < 160_000  # 4 scenes of 3000 points
    d = expand_json(text)
    for t, tr in zip(fig.data, d["data"]):
        np.testing.assert_array_equal(np.asarray(tr["x"], np.float32), np.asarray(t.x, np.float32))
        np.testing.assert_array_equal(np.asarray(tr["z"], np.float32), np.asarray(t.z, np.float32))


def test_hostile_part_names_cannot_close_the_script():
    xyz, sem, ins = _object(n=300)
    names = ["</script><script>alert(1)</script>", "a&b", "<!--"]
    html = block_html("Cat/<x>", object_figure(xyz, _labelings(sem, ins), names), "caption <b>")
    spec = re.search(r'class="pv3d-spec">(.*?)</script>', html, re.S).group(1)
    assert "<" not in spec and ">" not in spec
    assert json.loads(spec)["data"][0]["name"] == names[0]
    assert 'data-object="Cat/&lt;x&gt;"' in html and "caption &lt;b&gt;" in html


@pytest.mark.parametrize(
    "bad",
    [
        lambda xyz, sem, ins: (xyz[:, :2], [Labeling("a", "a", sem)]),
        lambda xyz, sem, ins: (xyz, [Labeling("a", "a", sem[:-1])]),
        lambda xyz, sem, ins: (xyz, [Labeling("a", "a", np.full_like(sem, 3))]),
        lambda xyz, sem, ins: (xyz, [Labeling("a", "a", sem, ins[:-1])]),
        lambda xyz, sem, ins: (np.where(np.arange(len(xyz))[:, None] == 0, np.nan, xyz), [Labeling("a", "a", sem)]),
        lambda xyz, sem, ins: (xyz, []),
    ],
)
def test_bad_input_is_a_value_error(bad):
    xyz, sem, ins = _object(n=50)
    pts, labs = bad(xyz, sem, ins)
    with pytest.raises(ValueError):
        object_figure(pts, labs, NAMES)


def test_scatter_views_instance_row():
    xyz, sem, ins = _object(n=600)
    one = scatter_views(xyz, {"gt": sem, "pred": sem}, 3, NAMES, size_px=150)
    two = scatter_views(xyz, {"gt": sem, "pred": sem}, 3, NAMES, size_px=150, instance_sets={"gt": ins, "pred": None})
    assert two.shape[1] == one.shape[1] and two.shape[0] == one.shape[0] + 150 + 26
    flat = two.reshape(-1, 3).astype(int)
    col = instance_colours(np.array([21]))[0]
    assert (np.abs(flat - col).sum(axis=1) == 0).sum() > 10  # an instance colour is drawn
    with pytest.raises(ValueError):
        scatter_views(xyz, {"gt": sem}, 3, NAMES, instance_sets={"other": ins})


def _examples(cats=("Chair", "Chair", "Lamp")):
    xyz, sem, ins = _object(n=800)
    return [
        {
            "object": f"{c}/{i:04d}",
            "part_names": NAMES,
            "xyz": xyz,
            "labels": {"ground truth": sem, "PartSLIP": sem, "PartSTAD": sem},
            "instances": {"ground truth": ins, "PartSLIP": ins, "PartSTAD": ins},
            "auto": {"title": "auto: PartSTAD", "sem": sem, "ins": ins},
            "views": None,
        }
        for i, c in enumerate(cats)
    ]


def test_report_has_one_block_per_example_and_plotly_once(tmp_path):
    met = {"Chair": {"n_test": 1, "simulated": True, "methods": {"partstad": {"miou": 50.0, "map50": 40.0}}}}
    text = build_report(tmp_path, met, {}, _examples(), simulated=True).read_text(encoding="utf-8")
    blocks = re.findall(r'<details class="pv3d-box"( open)?>.*?<div class="pv3d" data-object="([^"]+)" data-scenes="(\d)"', text)
    # the first object of each category open (plotted at load when in view), the others closed
    assert blocks == [(" open", "Chair/0000", "4"), ("", "Chair/0001", "4"), (" open", "Lamp/0002", "4")]
    assert text.count(PLOTLY_HEADER) == 1 and text.count("pv3d linked cameras") == 1  # library and linking script once
    assert text.count('class="pv3d-spec"') == 3 and text.index(PLOTLY_HEADER) > text.rindex('class="pv3d-spec"')
    assert "Second row: instances" in text and "cdn" not in page_scripts()[:2000].lower()
    assert not re.search(r'(src|href)="https?:', text.replace(page_scripts(), ""))  # nothing fetched (links inside plotly.js aside)


def test_report_without_examples_carries_no_plotly(tmp_path):
    met = {"Chair": {"n_test": 1, "simulated": False, "methods": {"partstad": {"miou": 50.0, "map50": 40.0}}}}
    text = build_report(tmp_path, met, {}, [], simulated=False).read_text(encoding="utf-8")
    assert PLOTLY_HEADER not in text and 'class="pv3d"' not in text
