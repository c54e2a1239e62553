"""Interactive 3D blocks of labelled point clouds (plotly) for the report and predict's viewer.

A static picture shows one camera; a wrong part hidden behind another is only found by turning
the object. One block = one object: a plotly figure with one 3D scene per labelling (ground
truth, PartSLIP, PartSTAD, auto ...), cameras linked by a small script (turning one scene turns
all), one trace per part (the legend names it; "none" grey) and a part / instance colouring
switch. The HTML stays self-contained and offline: plotly.js is inlined once per document
(:func:`page_scripts`), each figure is JSON in a ``<script type="application/json">`` that the
script plots only when the block is near the viewport (Chrome keeps 16 WebGL contexts per
page and plotly uses one per 3D scene, so far-away blocks are purged again).

Colours: parts from :func:`pipeline.viz_labels.label_palette`, instances from
:func:`pipeline.viz_labels.instance_colours`, method titles from ``pipeline.report_style``,
the same as every static picture.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from pipeline.report_style import method_colour
from pipeline.viz_labels import NONE_GREY, instance_colours, label_palette, subsample_indices, to_plot_frame

MAX_POINTS = 3000
"""Points per object in a 3D block (seeded subset): 4 scenes stay fluid and the file small."""

DECIMALS = 3
"""Coordinates are rounded to this many decimals (the normalised object has radius 1)."""

MAX_LIVE_SCENES = 16
"""3D scenes plotted at once in a page: Chrome drops the oldest WebGL context past 16, so out-of-view blocks are purged beyond this."""

CAMERA_EYE = {"x": 0.95, "y": -1.55, "z": 0.75}
"""Default camera: in front (+Z of the object frame), slightly right and above, as the static pictures."""

PLOT_HEIGHT_PX = 400

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["toImage"]}
"""No logo link, no MathJax, nothing fetched: the page works offline."""


@dataclass(frozen=True)
class Labeling:
    """One scene of a block: its title, method key (colour of the title), per-point labels."""

    title: str
    method: str
    sem: np.ndarray
    """(N,) part id in -1..K-1 (-1 = no part)."""
    ins: np.ndarray | None = None
    """(N,) instance id (-1 = none), or None when the method has no instances."""


def _hex(rgb: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb))


def _check(xyz: np.ndarray, labelings: Sequence[Labeling], n_parts: int) -> np.ndarray:
    pts = np.asarray(xyz, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"xyz must be (N,3), got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError("xyz holds NaN or infinite coordinates")
    if not labelings:
        raise ValueError("no labelling to show")
    for lab in labelings:
        if np.shape(lab.sem) != (len(pts),):
            raise ValueError(f"labelling {lab.title!r}: sem has shape {np.shape(lab.sem)}, expected ({len(pts)},)")
        sem = np.asarray(lab.sem)
        if sem.size and (sem.min() < -1 or sem.max() >= n_parts):
            raise ValueError(f"labelling {lab.title!r}: part ids must lie in [-1, {n_parts - 1}], got [{sem.min()}, {sem.max()}]")
        if lab.ins is not None and np.shape(lab.ins) != (len(pts),):
            raise ValueError(f"labelling {lab.title!r}: ins has shape {np.shape(lab.ins)}, expected ({len(pts)},)")
    return pts


def object_figure(
    xyz: np.ndarray,
    labelings: Sequence[Labeling],
    part_names: Sequence[str],
    max_points: int = MAX_POINTS,
    height_px: int = PLOT_HEIGHT_PX,
) -> go.Figure:
    """One 3D scene per labelling side by side; per scene one ``Scatter3d`` trace per part
    present (name = part name, "none" for -1), ``customdata`` = instance ids for the hover
    and the instance colouring. Same input, same figure (seeded subset, rounded coordinates).

    ``layout.meta`` carries what the page script needs: ``pv3d_inst`` (instance id -> colour)
    and ``pv3d_none`` (colour of id -1).
    """
    names = [str(n) for n in part_names]
    pts = _check(xyz, labelings, len(names))
    idx = subsample_indices(len(pts), max_points)
    p = np.round(to_plot_frame(pts[idx]), DECIMALS).astype(np.float32)
    lo, hi = (p.min(axis=0), p.max(axis=0)) if len(p) else (np.full(3, -1.0), np.full(3, 1.0))
    centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 1e-3) * 1.05
    palette = label_palette(len(names))
    n = len(labelings)
    fig = make_subplots(
        rows=1,
        cols=n,
        specs=[[{"type": "scene"}] * n],
        subplot_titles=[lab.title for lab in labelings],
        horizontal_spacing=0.005,
    )
    legend_shown: set[int] = set()
    ins_ids: set[int] = set()
    for j, lab in enumerate(labelings):
        sem = np.asarray(lab.sem).astype(np.int64)[idx]
        ins = None if lab.ins is None else np.asarray(lab.ins).astype(np.int64)[idx]
        if ins is not None:
            ins_ids.update(int(i) for i in np.unique(ins))
            # 2 bytes a point in the page when the ids allow it (plotly keeps the dtype)
            ins = ins.astype(np.int16 if ins.size == 0 or (ins.min() >= -(2**15) and ins.max() < 2**15) else np.int32)
        for k in [*range(len(names)), -1]:  # parts in order, "none" last (as the static legend)
            m = sem == k
            if not m.any():
                continue
            name = names[k] if k >= 0 else "none"
            hover = html.escape(name) + ("<br>instance %{customdata}" if ins is not None else "")
            fig.add_trace(
                go.Scatter3d(
                    x=p[m, 0],
                    y=p[m, 1],
                    z=p[m, 2],
                    mode="markers",
                    marker={"size": 2, "color": _hex(palette[k + 1])},
                    name=name,
                    legendgroup=name,
                    showlegend=k not in legend_shown,
                    customdata=ins[m] if ins is not None else None,
                    hovertemplate=f"{hover}<extra>{html.escape(lab.title)}</extra>",
                ),
                row=1,
                col=j + 1,
            )
            legend_shown.add(k)
    axis = {"visible": False, "showspikes": False}
    for j in range(n):
        fig.update_layout(
            {
                f"scene{j + 1 if j else ''}": {
                    "xaxis": {**axis, "range": [float(centre[0] - half), float(centre[0] + half)]},
                    "yaxis": {**axis, "range": [float(centre[1] - half), float(centre[1] + half)]},
                    "zaxis": {**axis, "range": [float(centre[2] - half), float(centre[2] + half)]},
                    "aspectmode": "cube",
                    "dragmode": "turntable",
                    "camera": {"eye": dict(CAMERA_EYE), "up": {"x": 0, "y": 0, "z": 1}, "center": {"x": 0, "y": 0, "z": 0}},
                }
            }
        )
    for j, ann in enumerate(fig.layout.annotations):  # subplot titles in the method colours
        ann.font = {"color": method_colour(labelings[j].method, j), "size": 14}
    ids = np.array(sorted(ins_ids), dtype=np.int64)
    inst = {str(int(i)): _hex(c) for i, c in zip(ids, instance_colours(ids))}
    fig.update_layout(
        template=go.layout.Template(),
        height=height_px,
        margin={"l": 0, "r": 0, "t": 28, "b": 0},
        paper_bgcolor="white",
        legend={"orientation": "h", "y": 0, "yanchor": "top", "itemsizing": "constant"},
        hoverlabel={"namelength": -1},
        meta={"pv3d_inst": inst, "pv3d_none": _hex(NONE_GREY)},
    )
    return fig


def _typed(a: np.ndarray) -> dict[str, str]:
    """plotly.js's typed-array JSON form: dtype + base64 of the little-endian bytes."""
    codes = {np.dtype("<f4"): "f4", np.dtype("<u2"): "u2", np.dtype("<u4"): "u4"}
    arr = np.ascontiguousarray(a)
    return {"dtype": codes[arr.dtype], "bdata": base64.b64encode(arr.tobytes()).decode("ascii")}


def _untyped(spec: dict[str, str]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(spec["bdata"]), dtype={"f4": "<f4", "u2": "<u2", "u4": "<u4"}[spec["dtype"]])


def figure_json(fig: go.Figure) -> str:
    """The figure as compact JSON for the page script, the same bytes for the same figure.

    Every scene shows the same points, so their coordinates are stored once
    (``layout.meta.pv3d_xyz``, float32) and each trace holds indices into them
    (``pv3d_idx``) instead of x, y, z: a third of the size. :func:`expand_json` and the
    page script undo it. ``<``, ``>`` and ``&`` are escaped, so the text is safe inside
    ``<script>``.
    """
    d = json.loads(pio.to_json(fig, validate=False, pretty=False, engine="json"))
    coords = [np.stack([np.asarray(getattr(t, a), dtype="<f4") for a in "xyz"], axis=1) for t in fig.data]
    if coords:
        table, inverse = np.unique(np.concatenate(coords), axis=0, return_inverse=True)
        dtype = "<u2" if len(table) < 2**16 else "<u4"
        ends = np.cumsum([len(c) for c in coords])
        for tr, part in zip(d["data"], np.split(inverse.reshape(-1).astype(dtype), ends[:-1])):
            for a in "xyz":
                tr.pop(a, None)
            tr["pv3d_idx"] = _typed(part)
        d["layout"].setdefault("meta", {})["pv3d_xyz"] = _typed(table.astype("<f4").reshape(-1))
    text = json.dumps(d, separators=(",", ":"), ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def expand_json(text: str) -> dict:
    """The figure dict of :func:`figure_json` with x, y, z back in every trace (what the page
    script does before plotting; for tests and other readers)."""
    d = json.loads(text)
    meta = d["layout"].get("meta", {})
    if "pv3d_xyz" in meta:
        table = _untyped(meta.pop("pv3d_xyz")).reshape(-1, 3)
        for tr in d["data"]:
            pts = table[_untyped(tr.pop("pv3d_idx")).astype(np.int64)]
            tr.update(x=pts[:, 0].tolist(), y=pts[:, 1].tolist(), z=pts[:, 2].tolist())
    return d


def block_html(object_name: str, fig: go.Figure, caption: str, title: str | None = None, open_: bool = True) -> str:
    """One 3D block: ``<details>`` (open or closed) with the colouring switch, the
    ``<div class="pv3d" data-object=...>`` container the script plots into, and the caption."""
    n_scenes = sum(1 for k in fig.layout if k.startswith("scene"))
    has_ins = any(t.customdata is not None for t in fig.data)
    select = (
        '<label>colour by <select class="pv3d-colour"><option value="semantic">part</option>'
        '<option value="instance">instance</option></select></label> '
        if has_ins
        else ""
    )
    head = html.escape(title if title is not None else f"{object_name}: interactive 3D")
    return (
        f'<details class="pv3d-box"{" open" if open_ else ""}><summary>{head}</summary>'
        f'<div class="pv3d-bar">{select}<span class="muted">drag to turn, scroll to zoom: the {n_scenes} views move together; '
        "click a part in the legend to hide it</span></div>"
        f'<div class="pv3d" data-object="{html.escape(object_name)}" data-scenes="{n_scenes}" data-rendered="0">'
        f'<div class="pv3d-graph" style="height:{int(fig.layout.height or PLOT_HEIGHT_PX)}px"></div>'
        f'<script type="application/json" class="pv3d-spec">{figure_json(fig)}</script></div>'
        f'<p class="pv3d-cap">{html.escape(caption)}</p></details>'
    )


CSS = """
.pv3d-box{margin:8px 0 18px 0}.pv3d-bar{font-size:0.85em;margin:4px 0}
.pv3d{position:relative;border:1px solid #ddd;border-radius:4px}
.pv3d[data-rendered="0"] .pv3d-graph::before{content:"3D view: plotted when scrolled into view";color:#888;
position:absolute;top:45%;width:100%;text-align:center}
.pv3d-cap{font-size:0.85em;color:#444;margin-top:2px}
"""

SCRIPT = """
(function () {
  "use strict";
  if (typeof Plotly === "undefined") { return; }
  var MAX_SCENES = %(max_scenes)d, CONFIG = %(config)s, live = [];
  function nScenes(b) { return +b.dataset.scenes || 1; }
  function graph(b) { return b.querySelector(".pv3d-graph"); }
  function link(b, gd) {  // pv3d linked cameras: turning or zooming one scene moves the others (never recursive)
    var busy = false, last = null;
    gd.on("plotly_relayout", function (ev) {
      if (busy || !ev) { return; }
      var src = null;
      Object.keys(ev).some(function (k) {  // "scene2.camera" (a drag) or "scene.camera.eye" (a call)
        var m = /^(scene\\d*)\\.camera(\\.|$)/.exec(k);
        if (m) { src = m[1]; }
        return !!m;
      });
      var full = src && gd._fullLayout[src], cam = full && full.camera;
      if (!cam) { return; }
      cam = {eye: cam.eye, up: cam.up, center: cam.center, projection: cam.projection};
      if (JSON.stringify(cam) === last) { return; }
      var upd = {};
      b._pvScenes.forEach(function (s) { if (s !== src) { upd[s + ".camera"] = cam; } });
      if (!Object.keys(upd).length) { return; }
      busy = true; last = JSON.stringify(cam);
      Plotly.relayout(gd, upd).then(function () { busy = false; }, function () { busy = false; });
    });
  }
  function paint(b) {  // part colours (as plotted) or one colour per instance id (layout.meta)
    if (b.dataset.rendered !== "1") { return; }
    var gd = graph(b), meta = gd.layout.meta || {}, inst = meta.pv3d_inst || {}, none = meta.pv3d_none;
    var byIns = b.dataset.colour === "instance";
    var cols = gd.data.map(function (t, i) {
      if (byIns && t.customdata) { return Array.from(t.customdata, function (id) { return inst[id] || none; }); }
      return b._pvSem[i];
    });
    Plotly.restyle(gd, {"marker.color": cols});
  }
  function typed(s) {
    var bin = atob(s.bdata), u = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { u[i] = bin.charCodeAt(i); }
    return new ({f4: Float32Array, u2: Uint16Array, u4: Uint32Array, i2: Int16Array, i4: Int32Array})[s.dtype](u.buffer);
  }
  function expand(spec) {  // shared coordinates + per-trace indices -> x, y, z (figure_json)
    var meta = spec.layout.meta || {};
    if (!meta.pv3d_xyz) { return spec; }
    var xyz = typed(meta.pv3d_xyz);
    delete meta.pv3d_xyz;
    spec.data.forEach(function (t) {
      var idx = typed(t.pv3d_idx), n = idx.length, x = new Float32Array(n), y = new Float32Array(n), z = new Float32Array(n);
      for (var i = 0; i < n; i++) { x[i] = xyz[3 * idx[i]]; y[i] = xyz[3 * idx[i] + 1]; z[i] = xyz[3 * idx[i] + 2]; }
      t.x = x; t.y = y; t.z = z;
      delete t.pv3d_idx;
      if (t.customdata && t.customdata.bdata) { t.customdata = typed(t.customdata); }  // instance ids
    });
    return spec;
  }
  function unrender(b) {  // free its WebGL contexts now: the browser's limit counts them until GC
    var canvases = Array.from(graph(b).querySelectorAll("canvas"));
    Plotly.purge(graph(b));
    canvases.forEach(function (c) {
      var gl = c.getContext("webgl"), ext = gl && gl.getExtension("WEBGL_lose_context");
      if (ext) { ext.loseContext(); }
    });
    b.dataset.rendered = "0";
    live.splice(live.indexOf(b), 1);
  }
  function render(b) {
    if (b.dataset.rendered === "1") { return; }
    var used = live.reduce(function (a, x) { return a + nScenes(x); }, 0);
    for (var i = 0; i < live.length && used + nScenes(b) > MAX_SCENES;) {
      if (!live[i]._pvVisible) { used -= nScenes(live[i]); unrender(live[i]); } else { i++; }
    }
    var spec = expand(JSON.parse(b.querySelector("script.pv3d-spec").textContent)), gd = graph(b);
    b._pvScenes = Object.keys(spec.layout).filter(function (k) { return /^scene\\d*$/.test(k); });
    b._pvSem = spec.data.map(function (t) { return t.marker.color; });
    b.dataset.rendered = "1";
    live.push(b);
    Plotly.newPlot(gd, spec.data, spec.layout, CONFIG).then(function () {
      link(b, gd);
      if (b.dataset.colour === "instance") { paint(b); }
    });
  }
  var seen = new IntersectionObserver(function (entries) {
    entries.forEach(function (e) {
      e.target._pvVisible = e.isIntersecting;
      if (e.isIntersecting) { render(e.target); }
    });
  }, {rootMargin: "300px 0px"});
  document.querySelectorAll(".pv3d").forEach(function (b) {
    seen.observe(b);
    var d = b.closest("details");  // opening a folded block plots it at once
    if (d) { d.addEventListener("toggle", function () { if (d.open) { render(b); } }); }
  });
  document.addEventListener("change", function (ev) {
    var s = ev.target;
    if (!s.classList || !s.classList.contains("pv3d-colour")) { return; }
    var b = s.closest(".pv3d-box").querySelector(".pv3d");
    b.dataset.colour = s.value;
    paint(b);
  });
})();
"""


def page_scripts() -> str:
    """plotly.js (inlined, MIT licence) and the block script: once per document, at the end of
    ``<body>`` so the page shows before the 4.8 MB library is parsed."""
    import json

    from plotly.offline import get_plotlyjs

    script = SCRIPT % {"max_scenes": MAX_LIVE_SCENES, "config": json.dumps(PLOTLY_CONFIG, sort_keys=True)}
    return (
        f"<script>window.PlotlyConfig = {{MathJaxConfig: 'local'}};</script>\n<script>{get_plotlyjs()}</script>\n<script>{script}</script>"
    )
