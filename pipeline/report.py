"""Static, self-contained HTML report of the evaluation (one file, images inlined).

The report is the human-readable face of the evaluate stage: method comparison tables,
per-part details, training curves and a few example objects. It must open from a DVC
cache or an e-mail attachment, so it has no external CSS, JS or image files, and every
string from the data goes through ``html.escape``.
"""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import report_3d
from pipeline.report_boxes import box_weight_sheet
from pipeline.report_gallery import CRITERIA, confusion_html
from pipeline.viz_labels import contact_sheet, plot_curves, png_bytes, scatter_views

SIMULATED_BANNER = "Simulated detector and SAM: numbers measure the pipeline on synthetic data, not real-world accuracy"


def simulated_banner(components: Sequence[str]) -> str:
    """The banner naming the simulated components that produced the numbers."""
    if not components:
        return SIMULATED_BANNER
    return f"Simulated components produced these numbers ({'; '.join(components)}): they measure the pipeline, not real-world accuracy"


def _provenance_table(provenance: Mapping[str, str]) -> str:
    rows = "".join(f"<tr><td>{html.escape(str(c))}</td><td>{html.escape(str(v))}</td></tr>" for c, v in provenance.items())
    return f"<table><tr><th>category</th><th>produced by</th></tr>{rows}</table>"


METHOD_TITLES: dict[str, str] = {
    "partslip": "PartSLIP",
    "partstad": "PartSTAD",
    "partstad_boxes": "PartSTAD, boxes (no masks)",
    "masks_only": "masks only (no weights)",
    "auto": "auto (best method on validation)",
}
"""Display names; the order is the column order. Unknown methods follow, sorted."""

METRIC_TITLES = (("miou", "mIoU"), ("map50", "mAP50"))

REPORT_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;
max-width:1500px;color:#222;padding:0 16px}
h1{margin-bottom:4px}h2{margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
.banner{background:#fff3cd;border:2px solid #e0a800;color:#5c4400;padding:12px 16px;
font-weight:600;font-size:1.1em;margin:16px 0;border-radius:4px}
table{border-collapse:collapse;margin:8px 0 16px 0;font-size:0.85em;display:block;overflow-x:auto;max-width:100%}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{background:#f3f3f3}td.name,th.name{text-align:left}
tr.mean td{border-top:2px solid #888;font-style:italic}
td.pos{color:#13700f}td.neg{color:#a11}
.muted{color:#777}details{margin:6px 0}summary{cursor:pointer}
img{max-width:100%;height:auto;display:block;margin:6px 0}
.example{margin:18px 0 28px 0}
figure{margin:8px 0 16px 0}figcaption{font-size:0.85em;color:#444;margin-top:2px}
table.confusion caption{text-align:left;font-weight:600;padding:2px 0}
.confusions{display:flex;flex-wrap:wrap;gap:24px}
"""


def _ok(v: Any) -> bool:
    """A usable number (not None, not NaN/inf)."""
    return isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(float(v))


def _fmt(v: Any, signed: bool = False) -> str:
    if not _ok(v):
        return "&ndash;"
    return f"{float(v):+.1f}" if signed else f"{float(v):.1f}"


def _method_order(metrics: Mapping[str, Mapping[str, Any]]) -> list[str]:
    present: set[str] = set()
    for m in metrics.values():
        present.update(m.get("methods", {}).keys())
    known = [k for k in METHOD_TITLES if k in present]
    return known + sorted(present - set(known))


def _title(method: str) -> str:
    return METHOD_TITLES.get(method, method)


def _value(metrics: Mapping[str, Any], cat: str, method: str, key: str) -> float | None:
    v = metrics[cat].get("methods", {}).get(method, {}).get(key)
    return float(v) if _ok(v) else None


def summary_metrics(metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float | int]]:
    """Overall mean per method over categories (DVC metrics).

    ``{method: {"miou": mean, "map50": mean, "n_categories": k}}``. A category without the
    method (or with a missing/NaN value) is left out of that method's mean, so the means of
    two methods may cover different categories when results are incomplete.
    """
    out: dict[str, dict[str, float | int]] = {}
    for method in _method_order(metrics):
        row: dict[str, float | int] = {}
        cats = [c for c in metrics if method in metrics[c].get("methods", {})]
        for key, _ in METRIC_TITLES:
            vals = [v for c in cats if (v := _value(metrics, c, method, key)) is not None]
            if vals:
                row[key] = float(np.mean(vals))
        row["n_categories"] = len(cats)
        out[method] = row
    return out


def _png_figure(png: bytes, alt: str, caption: str) -> str:
    """An inlined PNG with its caption: every picture says what, which object, method, view."""
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}</figcaption></figure>'
    )


def _img_tag(image: np.ndarray, alt: str, caption: str | None = None) -> str:
    """A figure of an (h,w,3) uint8 image; the caption defaults to the alt text."""
    return _png_figure(png_bytes(image), alt, caption if caption is not None else alt)


def _mean_delta(metrics: Mapping[str, Any], key: str) -> float | None:
    d = [
        b - a
        for c in metrics
        if (a := _value(metrics, c, "partslip", key)) is not None and (b := _value(metrics, c, "partstad", key)) is not None
    ]
    return float(np.mean(d)) if d else None


def _main_table(metrics: Mapping[str, Mapping[str, Any]], methods: list[str]) -> str:
    """Categories x (mIoU per method, delta | mAP50 per method, delta); best per row bold."""
    has_delta = "partslip" in methods and "partstad" in methods
    span = len(methods) + int(has_delta)
    h1 = ['<th class="name" rowspan="2">category</th>', '<th rowspan="2">n test</th>']
    h2 = []
    for _, mt in METRIC_TITLES:
        h1.append(f'<th colspan="{span}">{html.escape(mt)}</th>')
        h2 += [f"<th>{html.escape(_title(m))}</th>" for m in methods]
        if has_delta:
            h2.append("<th>&Delta; PartSTAD &minus; PartSLIP</th>")

    def cells(values: list[float | None], delta: float | None, marks: list[str] | None = None) -> list[str]:
        good = [v for v in values if v is not None]
        best = max(good) if good else None
        out = []
        for i, v in enumerate(values):
            txt = _fmt(v)
            # compare the printed values so ties at display precision are all bold
            if v is not None and best is not None and _fmt(v) == _fmt(best) and len(good) > 1:
                txt = f"<b>{txt}</b>"
            out.append(f"<td>{txt}{marks[i] if marks and v is not None else ''}</td>")
        if has_delta:
            cls = ""
            if delta is not None and delta != 0:
                cls = ' class="pos"' if delta > 0 else ' class="neg"'
            out.append(f"<td{cls}>{_fmt(delta, signed=True)}</td>")
        return out

    rows = []
    for cat in metrics:
        sim = ' <span class="muted">(simulated)</span>' if metrics[cat].get("simulated") else ""
        n_test = metrics[cat].get("n_test")
        r = [
            f'<td class="name">{html.escape(str(cat))}{sim}</td>',
            f"<td>{html.escape(str(n_test)) if n_test is not None else '&ndash;'}</td>",
        ]
        for key, _ in METRIC_TITLES:
            vals = [_value(metrics, cat, m, key) for m in methods]
            a, b = _value(metrics, cat, "partslip", key), _value(metrics, cat, "partstad", key)
            r += cells(vals, b - a if a is not None and b is not None else None)
        rows.append("<tr>" + "".join(r) + "</tr>")
    summ = summary_metrics(metrics)
    total = sum(int(m.get("n_test") or 0) for m in metrics.values())
    r = [f'<td class="name">mean ({len(metrics)} categories)</td>', f"<td>{total}</td>"]
    # a mean over fewer categories than the table has is flagged: it is not comparable
    marks = [
        f'<sup title="over {summ[m]["n_categories"]} of {len(metrics)} categories">*</sup>'
        if summ[m]["n_categories"] < len(metrics)
        else ""
        for m in methods
    ]
    for key, _ in METRIC_TITLES:
        vals = [summ.get(m, {}).get(key) for m in methods]
        r += cells([float(v) if v is not None else None for v in vals], _mean_delta(metrics, key), marks)
    rows.append('<tr class="mean">' + "".join(r) + "</tr>")
    return "<table><thead><tr>" + "".join(h1) + "</tr><tr>" + "".join(h2) + "</tr></thead><tbody>" + "\n".join(rows) + "</tbody></table>"


def _part_table(cat: str, entry: Mapping[str, Any], methods: list[str]) -> str:
    """Collapsible per-part IoU / AP50 table for one category."""
    meths = [m for m in methods if m in entry.get("methods", {})]
    parts: list[str] = []
    for m in meths:
        for key in ("part_iou", "part_ap50"):
            for p in entry["methods"][m].get(key, {}) or {}:
                if p not in parts:
                    parts.append(p)
    head = ['<th class="name">part</th>']
    head += [f"<th>{html.escape(_title(m))} IoU</th>" for m in meths]
    head += [f"<th>{html.escape(_title(m))} AP50</th>" for m in meths]
    rows = []
    for p in parts:
        r = [f'<td class="name">{html.escape(str(p))}</td>']
        for key in ("part_iou", "part_ap50"):
            r += [f"<td>{_fmt((entry['methods'][m].get(key) or {}).get(p))}</td>" for m in meths]
        rows.append("<tr>" + "".join(r) + "</tr>")
    body = (
        ("<table><thead><tr>" + "".join(head) + "</tr></thead><tbody>" + "\n".join(rows) + "</tbody></table>")
        if parts
        else '<p class="muted">no per-part values</p>'
    )
    return (
        f"<details><summary>{html.escape(str(cat))}: per-part IoU / AP50 "
        f"(&ndash; = part absent from the test objects)</summary>{body}</details>"
    )


def _labelings(labels: Mapping[str, Any], instances: Mapping[str, Any], auto: Mapping[str, Any] | None) -> list[report_3d.Labeling]:
    """The scenes of a 3D block: each label set (its title names the method, e.g. "PartSTAD"),
    its instances when given, then the method ``auto`` picked (its own title and arrays)."""
    out = [
        report_3d.Labeling(str(t), str(t), np.asarray(sem), None if instances.get(t) is None else np.asarray(instances[t]))
        for t, sem in labels.items()
    ]
    if auto is not None:
        ins = auto.get("ins")
        out.append(report_3d.Labeling(str(auto["title"]), "auto", np.asarray(auto["sem"]), None if ins is None else np.asarray(ins)))
    return out


def _block_3d(name: str, xyz: np.ndarray, labelings: list[report_3d.Labeling], parts: list[str], open_: bool) -> str:
    """The interactive 3D block of one object with a caption naming its scenes and points."""
    fig = report_3d.object_figure(xyz, labelings, parts)
    shown = min(len(xyz), report_3d.MAX_POINTS)
    caption = (
        f"{name}: {', '.join(lab.title for lab in labelings)} on {shown} of its {len(xyz)} points (a fixed subset); "
        "colour by part (legend; grey = no part) or by instance (one colour per instance id, grey = none); "
        "hover a point for its part and instance."
    )
    return report_3d.block_html(name, fig, caption, open_=open_)


def _example(ex: Mapping[str, Any], open_3d: bool = True) -> str:
    name = str(ex.get("object", "?"))
    parts = list(ex.get("part_names", []))
    out = [f'<div class="example"><h3>{html.escape(name)}</h3>']
    views = ex.get("views")
    if views is not None and len(views):
        out.append(
            _img_tag(
                contact_sheet(np.asarray(views), cols=5, thumb_px=160),
                f"{name}: rendered views",
                f"{name}: the {len(views)} rendered views (view 0 top left, row-major), input of the detector and SAM.",
            )
        )
    labels = ex.get("labels") or {}
    instances = ex.get("instances") or {}
    if labels and ex.get("xyz") is not None:
        ins_row = " Second row: instances, one colour per instance id (grey = none)." if instances else ""
        out.append(
            _img_tag(
                scatter_views(np.asarray(ex["xyz"]), labels, len(parts), parts, instance_sets=instances or None),
                f"{name}: part labels",
                f"{name}: point-cloud part labels, panels {', '.join(map(str, labels))} (same camera; grey = no part).{ins_row}",
            )
        )
        out.append(_block_3d(name, np.asarray(ex["xyz"]), _labelings(labels, instances, ex.get("auto")), parts, open_3d))
    out.append("</div>")
    return "\n".join(out)


def _failure_section(cat: str, data: Mapping[str, Any]) -> str:
    """One category's failure gallery: the worst objects per criterion with their numbers and
    GT / PartSLIP / PartSTAD pictures, then the confusion matrices of both methods.

    ``data`` = {"part_names", "scores": {object: {"partslip", "partstad": mIoU %}},
    "worst": {criterion: [object, ...]}, "objects": {object: {"xyz", "labels"}},
    "confusion": {method title: (K+1, K+1) counts}} (see ``pipeline.report_gallery``); an object may
    add "instances" {title: (N,) ids} (a second picture row) and "auto" {"title", "sem", "ins"}
    (a fourth scene in its interactive 3D block, closed until opened).
    """
    names = list(data.get("part_names", []))
    scores = data.get("scores", {})
    out = [f"<h3>{html.escape(str(cat))}</h3>"]
    if not scores:
        out.append('<p class="muted">no evaluated, labelled test object</p>')
        return "\n".join(out)
    rows = []
    for key, what in CRITERIA:
        for rank, oid in enumerate(data.get("worst", {}).get(key, []), 1):
            sc = scores[oid]
            d = sc["partstad"] - sc["partslip"] if _ok(sc.get("partstad")) and _ok(sc.get("partslip")) else None
            cls = "" if d is None or d == 0 else (' class="pos"' if d > 0 else ' class="neg"')
            rows.append(
                f'<tr><td class="name">{html.escape(what)}</td><td>{rank}</td><td class="name">{html.escape(str(oid))}</td>'
                f"<td>{_fmt(sc.get('partslip'))}</td><td>{_fmt(sc.get('partstad'))}</td><td{cls}>{_fmt(d, signed=True)}</td></tr>"
            )
    out.append(
        '<table><tr><th class="name">ranked by</th><th>rank</th><th class="name">object</th>'
        "<th>PartSLIP mIoU</th><th>PartSTAD mIoU</th><th>&Delta;</th></tr>" + "".join(rows) + "</table>"
    )
    for oid, obj in data.get("objects", {}).items():
        sc = scores.get(oid, {})
        cap = (
            f"{oid} ({cat}): ground truth, PartSLIP and PartSTAD part labels on the test points "
            f"(object mIoU PartSLIP {_fmt(sc.get('partslip'))}, PartSTAD {_fmt(sc.get('partstad'))}; grey = no part)."
        )
        instances = obj.get("instances") or {}
        if instances:
            cap += " Second row: instances, one colour per instance id (grey = none)."
        img = scatter_views(
            np.asarray(obj["xyz"]), obj["labels"], len(names), names, size_px=280, max_points=4000, instance_sets=instances or None
        )
        out.append(_img_tag(img, f"{oid}: failure gallery labels", cap))
        out.append(_block_3d(str(oid), np.asarray(obj["xyz"]), _labelings(obj["labels"], instances, obj.get("auto")), names, False))
    mats = [
        confusion_html(c, names, f"{method}: GT part (row) vs predicted part (column), % of the row's points")
        for method, c in data.get("confusion", {}).items()
    ]
    if mats:
        out.append(
            f'<p class="muted">Confusion over the {len(scores)} test objects of {html.escape(str(cat))}, all their points; '
            "rows sum to 100 %; point counts on hover; &ndash; = part absent from the ground truth.</p>"
        )
        out.append('<div class="confusions">' + "".join(mats) + "</div>")
    return "\n".join(out)


def _box_weight_section(entry: Mapping[str, Any]) -> str:
    """One object's views with its boxes and learned PartSTAD weights, and the SAM mask of
    each view's most trusted box; ``entry`` = box_weight_sheet's arrays + category, object, source."""
    names = list(entry["part_names"])
    img = box_weight_sheet(entry["rgb"], entry["xyxy"], entry["view"], entry["label"], entry["weight"], names, entry.get("mask"))
    oid, cat = str(entry["object"]), str(entry["category"])
    w = np.asarray(entry["weight"], np.float64)
    stats = f"{len(w)} boxes, weight min {w.min():.2f} / median {np.median(w):.2f} / max {w.max():.2f}" if len(w) else "no boxes"
    below = " below it the SAM mask of that view's highest-weight box (thick outline);" if entry.get("mask") is not None else ""
    cap = (
        f"{oid} ({cat}), PartSTAD: every view with its detector boxes, each labelled with its part and the "
        f"weight the network learned (its trust);{below} {stats}. Weights: {entry.get('source', 'evaluate')}."
    )
    return _img_tag(img, f"{oid}: PartSTAD box weights per view", cap)


def _inline(text: str) -> str:
    """Escaped text with markdown **bold** and `code` kept."""
    out = html.escape(text)
    parts = out.split("**")
    out = "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))
    parts = out.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def markdown_section(text: str, images: Mapping[str, bytes]) -> str:
    """HTML of the small markdown the benchmark scripts write: headings, paragraphs, pipe
    tables and ``![alt](file.png)`` images (inlined from ``images``; a missing one is named)."""
    out: list[str] = []
    table: list[list[str]] = []

    def flush() -> None:
        if table:
            head, body = table[0], [r for r in table[1:] if not all(set(c) <= set("-: ") for c in r)]
            rows = ["<tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>"]
            rows += [
                "<tr>" + "".join(f"<td{' class=name' if j == 0 else ''}>{_inline(c)}</td>" for j, c in enumerate(r)) + "</tr>" for r in body
            ]
            out.append("<table>" + "".join(rows) + "</table>")
            table.clear()

    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("|"):
            table.append([c.strip() for c in line.strip("|").split("|")])
            continue
        flush()
        if not line:
            continue
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")) + 2, 5)
            out.append(f"<h{level}>{_inline(line.lstrip('#').strip())}</h{level}>")
        elif line.startswith("![") and "](" in line and line.endswith(")"):
            alt, name = line[2:].split("](", 1)
            name = name[:-1]
            if name in images:
                out.append(_png_figure(images[name], alt, f"{alt} ({name}, written by the benchmark script)"))
            else:
                out.append(f'<p class="muted">(image {html.escape(name)} not found)</p>')
        else:
            out.append(f"<p>{_inline(line)}</p>")
    flush()
    return "\n".join(out)


def build_report(
    out_dir: Path,
    metrics: Mapping[str, Mapping[str, Any]],
    curves: Mapping[str, Sequence[Mapping[str, float]]],
    examples: Sequence[Mapping[str, Any]],
    simulated: bool,
    notes: Sequence[str] = (),
    simulated_components: Sequence[str] = (),
    provenance: Mapping[str, str] | None = None,
    studies: Sequence[tuple[str, str, Mapping[str, bytes]]] = (),
    failures: Mapping[str, Mapping[str, Any]] | None = None,
    box_weights: Sequence[Mapping[str, Any]] = (),
    filename: str = "index.html",
) -> Path:
    """Write ``out_dir/<filename>`` (self-contained) and return its path.

    - ``metrics[cat]`` = {"n_test": int, "simulated": bool, "methods": {method: {"miou",
      "map50": float in 0..100, "part_iou"/"part_ap50": {part: float or None}}}}, with any
      subset of partslip / partstad / partstad_boxes / masks_only (others are shown too);
    - ``curves[cat]`` = [{"epoch", "loss", "val_miou"}, ...];
    - ``examples`` = [{"object", "part_names", "xyz" (N,3), "labels": {title: (N,) int},
      "views": (V,H,W,3) uint8 or None, optional "instances": {title: (N,) int} and "auto":
      {"title", "sem", "ins"}}, ...]: pictures and an interactive 3D block each (open for
      the first object of a category, named ``<Category>/<id>``);
    - ``simulated_components``: named in the banner when ``simulated``;
    - ``provenance[cat]``: one line saying which detector, SAM, model and params produced it;
    - ``studies``: (source name, markdown, {image file: PNG bytes}) written by the benchmark
      scripts (simulated calibration, beyond-the-paper sweeps), shown at the end;
    - ``failures[cat]``: the failure gallery data of :func:`_failure_section`;
    - ``box_weights``: per category one object's views, boxes (xyxy, view, label), learned
      ``weight``, SAM ``mask`` (or None), "category", "object", "part_names", "source".
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    methods = _method_order(metrics)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>PartSTAD pipeline report</title>",
        f"<style>{REPORT_CSS}{report_3d.CSS}</style></head><body>",
        "<h1>PartSTAD few-shot 3D part segmentation: report</h1>",
    ]
    if simulated:
        parts.append(f'<div class="banner">{html.escape(simulated_banner(simulated_components))}</div>')
    if notes:
        parts.append("<ul>" + "".join(f"<li>{html.escape(str(n))}</li>" for n in notes) + "</ul>")

    parts.append("<h2>Semantic mIoU and instance mAP50 per category (%)</h2>")
    if metrics:
        parts.append(_main_table(metrics, methods))
        parts.append(
            '<p class="muted">Bold: best method in the row. The mean row averages '
            "each method over the categories where it has a value (* = not all categories); "
            "its &Delta; is the mean over categories that have both methods.</p>"
        )
        parts.append("<h2>Per-part results</h2>")
        parts += [_part_table(c, metrics[c], methods) for c in metrics]
    else:
        parts.append('<p class="muted">no metrics</p>')

    if provenance:
        parts.append("<h2>Provenance</h2>")
        parts.append(_provenance_table(provenance))
    if curves:
        parts.append("<h2>Training curves</h2>")
        parts.append(
            _img_tag(
                plot_curves(curves),
                "training loss and validation mIoU",
                "PartSTAD weight-network training per category: loss (left) and validation mIoU (right) against epoch.",
            )
        )
    if examples:
        parts.append("<h2>Examples</h2>")
        first: set[str] = set()
        for ex in examples:
            cat = str(ex.get("object", "?")).split("/")[0]
            parts.append(_example(ex, open_3d=cat not in first))
            first.add(cat)
    if failures:
        parts.append("<h2>Where it fails</h2>")
        parts.append(
            '<p class="muted">Per category the worst test objects by PartSTAD &minus; PartSLIP mIoU and by PartSTAD mIoU '
            "(object mIoU = mean IoU over the parts in that object's ground truth, %), then per-part confusion matrices.</p>"
        )
        parts += [_failure_section(c, d) for c, d in failures.items()]
    if box_weights:
        parts.append("<h2>Which boxes PartSTAD trusted</h2>")
        parts += [_box_weight_section(e) for e in box_weights]
    if studies:
        parts.append("<h2>Benchmark studies (simulated)</h2>")
        parts.append(
            '<p class="muted">Written by the scripts in <code>benchmarks/</code> (each file names its command); '
            "simulated detector and SAM on synthetic shapes at small settings, not accuracy claims.</p>"
        )
        for name, text, images in studies:
            parts.append(f"<details open><summary>{html.escape(name)}</summary>{markdown_section(text, images)}</details>")
    if any('class="pv3d"' in part for part in parts):
        parts.append(report_3d.page_scripts())  # plotly.js once, only when a 3D block needs it
    parts.append("</body></html>")

    path = out_dir / filename
    tmp = out_dir / f".{filename}.tmp"
    tmp.write_text("\n".join(parts), encoding="utf-8")
    os.replace(tmp, path)  # never rewrite in place a file DVC may have linked
    return path
