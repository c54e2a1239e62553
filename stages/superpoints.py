"""``partstad superpoints``: over-segment each cloud into homogeneous connected regions.

Per object: ``sp`` (N,) i32 superpoint id and the ``normal`` (N,3) f32 used by the graph.
"""

from __future__ import annotations

from typing import Any

import click
import numpy as np

from pipeline.viz_geometry import render_superpoint_sheet
from stages.common import common_options, run_object_stage, save_preview
from stages.runner import StageContext


def superpoints_work(ctx: StageContext, object_id: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    from pipeline.superpoints import compute_superpoints

    sec = ctx.config.superpoints
    ing = ctx.store("ingest").read_all(object_id, ["xyz", "rgb"])
    res = compute_superpoints(
        ing["xyz"],
        ing["rgb"],
        k_adj=sec.k_adj,
        reg=sec.reg,
        rgb_weight=sec.rgb_weight,
        min_size=sec.min_size,
        grow_size=sec.grow_size,
        backend=sec.backend,
    )
    sp = res.sp.astype(np.int32)
    save_preview(ctx, object_id, "superpoints", lambda: render_superpoint_sheet(ing["xyz"], sp))
    return {"sp": sp, "normal": res.normals.astype(np.float32)}, {"n_superpoints": int(sp.max() + 1) if len(sp) else 0}


@click.command()
@common_options
@click.option("--preview", is_flag=True, help="Also write PNG sheets of the superpoints in random colours to reports/previews/<Category>/.")
def superpoints(preview: bool, **kw: Any) -> None:
    """Partition each cloud into superpoints (kNN graph on normals + colour, L0-style partition)."""
    run_object_stage("superpoints", superpoints_work, runtime={"preview": preview}, **kw)
