"""``partstad visibility``: point -> pixel coordinates and per-view visibility.

Per object: ``uv`` (V,N,2) f32 pixel (col,row) of every point, ``visible`` (V,N) bool,
true iff the point wins at least one pixel of the render's ``pix2pt`` (SPEC §2.3).
"""

from __future__ import annotations

from typing import Any

import click
import numpy as np

from stages.common import common_options, run_object_stage
from stages.helpers import cameras_from_config
from stages.runner import StageContext


def visibility_work(ctx: StageContext, object_id: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    from pipeline.cameras import project
    from pipeline.visibility import visible_points

    xyz = ctx.store("ingest").read(object_id, "xyz")
    pix2pt = ctx.store("render").read(object_id, "pix2pt")
    cams = cameras_from_config(ctx.config.render)
    uv, _ = project(cams, xyz)
    vis = visible_points(pix2pt, len(xyz))
    return {"uv": uv.astype(np.float32), "visible": vis}, {"n_visible_per_view": vis.sum(1).tolist()}


@click.command()
@common_options
def visibility(**kw: Any) -> None:
    """Project every point into every view and mark the points that win a pixel."""
    run_object_stage("visibility", visibility_work, **kw)
