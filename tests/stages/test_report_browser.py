"""The report's interactive 3D views in a real headless browser (Debian's Chromium).

On the tiny chain of test_stage_pipeline and on hand-made predict exports: the pages open
without a JavaScript error or a network request; every 3D block (``.pv3d``), once scrolled
into view, draws its scenes (GT / PartSLIP / PartSTAD / auto for the report, one per
exported method for predict) as WebGL canvases with coloured pixels, not blank; turning one
scene turns the others; switching to instance colours recolours the points.
"""

from __future__ import annotations

from pathlib import Path

from stages.exports import write_viewer
from tests.browser import Opened, open_page, painted_pixels
from tests.stages.test_report_predict import _export
from tests.stages.test_stage_pipeline import pipe  # noqa: F401  (the chain fixture)

SCENES = "b => Object.keys(b.querySelector('.pv3d-graph')._fullLayout).filter(k => /^scene\\d*$/.test(k)).length"
EYES = "g => Object.keys(g._fullLayout).filter(k => /^scene\\d*$/.test(k)).map(k => g._fullLayout[k].camera.eye)"
#: page rectangle of every scene of a block's plot (plot area × the scene's domain)
SCENE_RECTS = """b => { const g = b.querySelector('.pv3d-graph'), L = g._fullLayout, s = L._size, r = g.getBoundingClientRect();
  return Object.keys(L).filter(k => /^scene\\d*$/.test(k)).map(k => { const d = L[k].domain;
    return {x: r.left + s.l + d.x[0] * s.w, y: r.top + s.t + (1 - d.y[1]) * s.h,
            width: (d.x[1] - d.x[0]) * s.w, height: (d.y[1] - d.y[0]) * s.h}; }); }"""
COLOURS = "g => g.data.map(t => JSON.stringify(t.marker.color))"


def draw_block(opened: Opened, index: int):
    """Open block ``index``'s section, bring it into view and wait until it is plotted."""
    page = opened.page
    block = page.query_selector_all(".pv3d")[index]
    block.evaluate("b => { const d = b.closest('details'); if (d && !d.open) { d.open = true; } }")
    block.scroll_into_view_if_needed()
    page.wait_for_function("b => b.dataset.rendered === '1' && b.querySelector('canvas')", arg=block, timeout=60_000)
    page.wait_for_timeout(400)  # WebGL draws on the next animation frames
    return block


def check_page(path: Path, min_scenes: int) -> int:
    """Every block of ``path`` draws ``data-scenes`` (≥ ``min_scenes``) non-blank scenes; clean console."""
    with open_page(path) as opened:
        n = len(opened.page.query_selector_all(".pv3d"))
        assert n >= 1, f"no 3D block in {path}"
        for i in range(n):
            block = draw_block(opened, i)
            scenes = block.evaluate(SCENES)
            assert scenes == int(block.get_attribute("data-scenes")) and scenes >= min_scenes
            for clip in block.evaluate(SCENE_RECTS):  # each scene's own area, not the (SVG) legend
                png = opened.page.screenshot(clip=clip)
                assert painted_pixels(png) >= 100, f"blank 3D scene in block {i} of {path}"
        assert opened.page_errors == [], opened.page_errors
        assert opened.console_errors == [], opened.console_errors
        foreign = [u for u in opened.requests if not u.startswith(("file:", "data:", "blob:"))]
        assert foreign == [], f"the page fetched {foreign[:3]}"
    return n


def test_report_3d_views_render_offline_without_errors(pipe):  # noqa: F811
    assert check_page(pipe["reports"] / "index.html", min_scenes=4) >= 2  # examples + failure gallery


def test_report_3d_cameras_are_linked_and_instances_recolour(pipe):  # noqa: F811
    with open_page(pipe["reports"] / "index.html") as opened:
        gd = draw_block(opened, 0).query_selector(".pv3d-graph")
        assert gd is not None
        eye = {"x": 0.3, "y": -2.1, "z": 0.9}
        gd.evaluate("(g, eye) => Plotly.relayout(g, {'scene.camera.eye': eye})", eye)
        opened.page.wait_for_timeout(500)
        eyes = gd.evaluate(EYES)
        assert len(eyes) >= 4 and all([round(e[a], 3) for a in "xyz"] == [eye[a] for a in "xyz"] for e in eyes), eyes
        by_part = gd.evaluate(COLOURS)
        opened.page.select_option(".pv3d-colour >> nth=0", "instance")
        opened.page.wait_for_timeout(500)
        by_instance = gd.evaluate(COLOURS)
        assert len(by_instance) == len(by_part) and by_instance != by_part
        assert opened.page_errors == [] and opened.console_errors == []


def test_predict_viewer_renders(tmp_path):
    sidecars = [_export(tmp_path, "a").with_suffix(".json"), _export(tmp_path, "b").with_suffix(".json")]
    viewer = write_viewer(tmp_path / "viewer.html", sidecars, "partstad predict: Chair (partstad)")
    assert check_page(viewer, min_scenes=1) == 2
