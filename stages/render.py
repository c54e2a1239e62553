"""``partstad render``: 10-view splat renders of each point cloud -> cache/render/<Cat>.zarr.

Per object: ``rgb`` (V,H,W,3) u8, ``pix2pt`` (V,H,W) i32 (-1 background), ``depth``
(V,H,W) f32, and the cameras as arrays (``K`` (3,3), ``world_to_cam`` (V,4,4),
``view_dirs`` (V,3)). ``--preview`` also writes PNG contact sheets under reports/previews.
"""

from __future__ import annotations

from typing import Any

import click
import numpy as np

from pipeline.viz_geometry import contact_sheet
from stages.common import common_options, run_object_stage, save_preview
from stages.helpers import cameras_from_config
from stages.runner import StageContext


def render_work(ctx: StageContext, object_id: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    from pipeline.render.render import render_views

    sec = ctx.config.render
    ing = ctx.store("ingest").read_all(object_id, ["xyz", "rgb"])
    cams = cameras_from_config(sec)
    res = render_views(ing["xyz"], ing["rgb"], cams, radius_px=sec.radius_px, backend=sec.backend, footprint=sec.footprint)
    arrays = {
        "rgb": res.rgb,
        "pix2pt": res.pix2pt.astype(np.int32),
        "depth": res.depth.astype(np.float32),
        "K": np.asarray(cams.K, dtype=np.float64),
        "world_to_cam": np.asarray(cams.world_to_cam, dtype=np.float64),
        "view_dirs": np.asarray(cams.directions, dtype=np.float32),
    }
    save_preview(ctx, object_id, "views", lambda: contact_sheet(res.rgb, titles=[f"view {i}" for i in range(len(res.rgb))]))
    return arrays, {"backend": res.backend, "image_size": list(res.pix2pt.shape[1:]), "views": [list(v) for v in cams.views]}


@click.command()
@common_options
@click.option("--preview", is_flag=True, help="Also write PNG contact sheets of the views to reports/previews/<Category>/.")
def render(preview: bool, **kw: Any) -> None:
    """Render each ingested point cloud from the configured views (pyrender or numpy splat)."""
    run_object_stage("render", render_work, runtime={"preview": preview}, **kw)
