"""predict writes viewer.html; `partstad report --predict` pages predict's exports; bad
directories and damaged exports are exit 2 naming the path (issue 22)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import trimesh
from plotly.offline import get_plotlyjs

from pipeline.data.ply import write_ply

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from own_shapes import coloured_ply_points  # noqa: E402

from tests.stages.test_own_shapes import CAT, TINY, work  # noqa: E402,F401  (work: a trained tiny model)

PLOTLY_HEADER = get_plotlyjs()[:40]


def _export(folder: Path, stem: str, method: str = "partstad", n: int = 200, comps=("simulated detector",)) -> Path:
    """A hand-made export (PLY + sidecar) as stages.exports writes it."""
    rng = np.random.default_rng(len(stem))
    xyz = rng.normal(size=(n, 3)) * 3 + 10
    sem = rng.integers(-1, 3, n)
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / f"Chair_{stem}_{method}"
    write_ply(base.with_suffix(".ply"), xyz, None, {"semantic": sem.astype(np.int32)})
    side = {
        "object": f"Chair/{stem}",
        "category": "Chair",
        "method": method,
        "part_names": ["arm", "back", "leg"],
        "semantic": sem.tolist(),
        "instance": np.where(sem < 0, -1, sem * 2).tolist(),
        "centre": [10.0, 10.0, 10.0],
        "scale": 9.0,
        "files": {"ply": base.with_suffix(".ply").name},
        "provenance": {"simulated_components": list(comps)},
    }
    base.with_suffix(".json").write_text(json.dumps(side))
    return base


def test_predict_writes_a_viewer_of_its_shapes(work, tmp_path, invoke, monkeypatch):  # noqa: F811
    monkeypatch.chdir(work)
    ply = coloured_ply_points(tmp_path / "shapes", "scan", n=1500)
    z = np.asarray(trimesh.load(ply).vertices)[:, 2]
    np.save(tmp_path / "shapes" / "scan.labels.npy", np.where(z > 0, 1, 2).astype(np.int64))  # the oracle detector needs labels
    out = tmp_path / "pred"
    res = invoke(["predict", tmp_path / "shapes", "--category", CAT, "--model-dir", work / "models" / CAT, "--out", out, *TINY])
    assert res.exit_code == 0, res.output
    viewer = out / "viewer.html"
    assert f"[predict] viewer (interactive 3D, opens offline): {viewer}" in res.output
    text = viewer.read_text(encoding="utf-8")
    assert re.findall(r'<div class="pv3d" data-object="([^"]+)" data-scenes="(\d)"', text) == [("Chair/scan", "1")]
    assert text.count(PLOTLY_HEADER) == 1 and 'class="banner"' in text and "No metrics" in text
    # the same export, paged by report --predict (pictures added), default next to the exports
    res = invoke(["report", "--predict", out])
    assert res.exit_code == 0, res.output
    page = (out / "report.html").read_text(encoding="utf-8")
    assert 'data-object="Chair/scan"' in page and "data:image/png;base64," in page
    assert not (work / "reports" / "index.html").exists()  # never over the evaluation report


def test_report_predict_groups_methods_per_shape(tmp_path, invoke):
    _export(tmp_path / "p", "a")
    _export(tmp_path / "p", "a", method="partslip")
    _export(tmp_path / "p", "b", comps=())
    (tmp_path / "p" / "notes.json").write_text('{"unrelated": true}')  # other JSON is skipped
    res = invoke(["report", "--predict", tmp_path / "p", "--out", tmp_path / "r.html"])
    assert res.exit_code == 0, res.output
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert re.findall(r'data-object="([^"]+)" data-scenes="(\d)"', text) == [("Chair/a", "2"), ("Chair/b", "1")]
    assert text.count(PLOTLY_HEADER) == 1 and "simulated detector" in text
    spec = json.loads(re.search(r'class="pv3d-spec">(.*?)</script>', text, re.S).group(1))
    assert [a["text"] for a in spec["layout"]["annotations"]] == ["PartSLIP", "PartSTAD"]


def test_report_predict_bad_inputs_exit_2_naming_the_path(tmp_path, invoke):
    cases = []
    cases.append((tmp_path / "nowhere", str(tmp_path / "nowhere")))
    (tmp_path / "empty").mkdir()
    cases.append((tmp_path / "empty", "holds no predict exports"))
    gone = _export(tmp_path / "noply", "a")
    gone.with_suffix(".ply").unlink()
    cases.append((tmp_path / "noply", str(gone.with_suffix(".ply"))))
    short = _export(tmp_path / "short", "a")
    side = json.loads(short.with_suffix(".json").read_text())
    side["semantic"] = side["semantic"][:-1]
    short.with_suffix(".json").write_text(json.dumps(side))
    cases.append((tmp_path / "short", str(short.with_suffix(".json"))))
    bad = _export(tmp_path / "badjson", "a")
    bad.with_suffix(".json").write_text("{not json")
    cases.append((tmp_path / "badjson", str(bad.with_suffix(".json"))))
    escape = _export(tmp_path / "escape", "a")
    side = json.loads(escape.with_suffix(".json").read_text())
    side["files"]["ply"] = "../other.ply"
    escape.with_suffix(".json").write_text(json.dumps(side))
    cases.append((tmp_path / "escape", "files.ply"))
    for directory, words in cases:
        res = invoke(["report", "--predict", directory, "--out", tmp_path / "x.html"])
        assert res.exit_code == 2, (directory, res.output)
        assert words in res.output and "Traceback" not in res.output
        assert not (tmp_path / "x.html").exists()
