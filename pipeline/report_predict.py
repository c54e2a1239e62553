"""The page of predicted shapes: predict's ``viewer.html`` and ``partstad report --predict``.

Own shapes have no ground truth, so there is no metrics table: each shape gets the
interactive 3D block of :mod:`pipeline.report_3d` (the exported methods' part and instance
labels) and, in the report, the static part / instance picture too. Self-contained and offline
like the evaluation report.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import report_3d
from pipeline.report import REPORT_CSS, _img_tag, simulated_banner
from pipeline.viz_labels import scatter_views


def _shape(obj: Mapping[str, Any], pictures: bool, open_: bool) -> str:
    name = str(obj["object"])
    parts = [str(p) for p in obj["part_names"]]
    labs: list[report_3d.Labeling] = list(obj["labelings"])
    xyz = np.asarray(obj["xyz"])
    src = f" from {obj['source_file']}" if obj.get("source_file") else ""
    out = [f'<div class="example"><h3>{html.escape(name)}</h3>']
    if pictures:
        img = scatter_views(
            xyz,
            {lab.title: lab.sem for lab in labs},
            len(parts),
            parts,
            instance_sets={lab.title: lab.ins for lab in labs},
        )
        out.append(
            _img_tag(
                img,
                f"{name}: predicted part labels",
                f"{name}{src}: predicted part labels ({', '.join(lab.title for lab in labs)}; grey = no part), "
                "second row: instances, one colour per instance id (grey = none).",
            )
        )
    fig = report_3d.object_figure(xyz, labs, parts)
    cap = (
        f"{name}{src}: predicted labels ({', '.join(lab.title for lab in labs)}) on {min(len(xyz), report_3d.MAX_POINTS)} "
        f"of its {len(xyz)} points; colour by part (legend; grey = no part) or by instance (grey = none)."
    )
    out.append(report_3d.block_html(name, fig, cap, open_=open_))
    out.append("</div>")
    return "\n".join(out)


def predicted_page(
    objects: Sequence[Mapping[str, Any]],
    simulated_components: Sequence[str] | None,
    title: str,
    pictures: bool = False,
    provenance: Sequence[str] = (),
) -> str:
    """HTML of the predicted shapes.

    ``objects`` = [{"object", "part_names", "xyz" (N,3) normalised, "labelings":
    [report_3d.Labeling], "source_file" (optional)}]; ``simulated_components``: None when
    nothing was simulated, else the banner names them (empty: the generic banner);
    ``pictures`` adds the static pictures (the report; the viewer stays small).
    """
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{REPORT_CSS}{report_3d.CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if simulated_components is not None:
        parts.append(f'<div class="banner">{html.escape(simulated_banner(simulated_components))}</div>')
    parts.append(
        '<p class="muted">No metrics: these shapes have no ground truth here, so there is nothing to score them against '
        "(the labelled test shapes of <code>partstad evaluate</code> get the mIoU / mAP50 tables of the main report).</p>"
    )
    if provenance:
        parts.append("<ul>" + "".join(f"<li>{html.escape(str(p))}</li>" for p in provenance) + "</ul>")
    if not objects:
        parts.append('<p class="muted">no predicted shape</p>')
    parts += [_shape(obj, pictures, open_=True) for obj in objects]
    if objects:
        parts.append(report_3d.page_scripts())
    parts.append("</body></html>")
    return "\n".join(parts)


def write_page(path: Path, text: str) -> Path:
    """Write via a temporary file + rename (never rewrite in place a file DVC may have linked)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
