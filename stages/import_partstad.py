"""``partstad import-partstad``: fill the caches from the original PartSTAD preprocessing.

Lets training and evaluation run on the real GLIP boxes/features and SAM masks produced by
the official ``preprocess.py`` (SPEC §9) instead of our own render/detect/segment stages.
For every object of a category that exists both in the PartNetE root (``--data-root``,
``data/{few_shot,test}/<Cat>/<id>/{pc.ply,label.npy}``) and in the preprocessing
``--save-dir`` (``rendered_pc/``, ``glip_preprocess/``, ``sam_preprocess/``) it writes, in
one go, the six stores ``partstad lift`` reads:

- ``ingest``: xyz/rgb/sem/ins from the PartNetE files, exactly as ``partstad ingest
  --source partnete`` (same reader, same SPEC §2.1 normalisation, which is also PartSTAD's,
  so the imported screen coordinates refer to our normalised xyz); the ingest
  ``manifest.json`` lists the objects imported by this run.
- ``render``: ``rgb`` from ``rendered_img/{v}.png`` (alpha dropped), ``pix2pt`` = ``pc_idx``
  as int32; ``K``/``world_to_cam``/``view_dirs`` from ``make_cameras`` with the 10 paper
  views at the image size read from the files. The original stores no depth map, so
  ``depth`` is recomputed as the camera z of each pixel's winning point (0 = background),
  the same definition as our renderer's.
- ``visibility``: ``uv`` = ``screen_coords.npy``; ``visible`` from ``pix2pt``.
- ``superpoints``: ``sp`` from ``superpoint.npy`` (restricted unpickler); the original keeps
  no normals, so ``normal`` is all zeros (nothing downstream reads it).
- ``detect``: ``pred.json`` + ``glip_feature.npz['feature']`` (xywh -> xyxy,
  category_id - 1 -> label, view then descending score); attrs backend "import",
  simulated False.
- ``segment``: ``sam_mask.npz`` as bool; attrs mode "import".

Each object is read completely before anything is written, so it is either complete in all
six stores or in none: a missing/corrupt file (or a point-count mismatch between the
PartNetE cloud and ``screen_coords.npy``) is recorded, naming the file, in the
``failures.json`` of every one of the six stores, any stale result of the object is removed,
and the other objects complete. Keys come from :class:`stages.keys.KeyResolver` like every
stage's: the stage name, the code hash of this module and its imports, the save dir, the
data root and the content of the object's files, with the upstream keys of the same import
(render <- ingest, ...), so a re-run skips unchanged objects and ``partstad lift`` accepts
the results. Do not run ``render``/``visibility``/``superpoints``/``detect``
/``segment`` afterwards: they would overwrite the imported results with their own.
"""

from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path
from typing import Any

import click
import numpy as np

from pipeline.errors import BadInputError, ObjectError
from stages.common import common_options, finish, load_params, make_context, resolve_categories
from stages.keys import ORIGIN_ATTR, UPSTREAM_ATTR, KeyResolver, code_hash, files_digest
from stages.keys import STAGES as KEY_GRAPH
from stages.runner import StageContext, StageReport
from stages.stage_table import ROWS
from stages.store import StoreBusyError, StoreCorruptError

log = logging.getLogger("partstad")

#: The stores written, in write order, with the upstream stages of each (the stage table's
#: ``writes`` of import_partstad, upstreams as in the real stages).
STAGES: dict[str, tuple[str, ...]] = {s: KEY_GRAPH[s].upstream for s in KEY_GRAPH if s in ROWS["import_partstad"].writes}
#: Warn (attrs + log) when screen_coords and our projection of the ingested cloud differ by
#: more than this median distance in pixels: a sign of mismatched objects or conventions.
REPROJECTION_WARN_PX = 2.0


def preprocessed_ids(save_dir: Path, category: str) -> set[str]:
    """Object ids with at least one per-object folder in the preprocessing save dir."""
    out: set[str] = set()
    for sub in ("rendered_pc", "glip_preprocess", "sam_preprocess"):
        d = save_dir / sub / category
        if d.is_dir():
            out.update(p.name for p in d.iterdir() if p.is_dir())
    return out


def _files_digest(save_dir: str, data_path: str, category: str, local_id: str) -> str:
    """Content hash of every file the import of one object reads."""
    from pipeline.detect.imported import object_paths

    P = object_paths(save_dir, category, local_id)
    paths = [P[k] for k in ("pc_idx", "screen_coords", "superpoint", "pred", "feature", "mask")]
    paths += [P["rendered_img"] / f"{v}.png" for v in range(10)]
    paths += [Path(data_path) / "pc.ply", Path(data_path) / "label.npy"]
    return files_digest(paths)


def object_fingerprints(ctx: StageContext, object_id: str) -> dict[str, str]:
    """Keys of the six stores for one object, chained through their upstreams (one key scheme
    with the stages: :class:`KeyResolver`, the code hash of this module instead of a version)."""
    rt = ctx.runtime
    src = rt["sources"][object_id]
    files = _files_digest(rt["save_dir"], src["path"], ctx.category, object_id.split("/", 1)[1])
    resolver = KeyResolver(
        lambda stage: {"import": rt["save_dir"], "data_root": rt["data_root"]},
        ctx.store,
        extra=lambda stage, oid: {"files": files},
        code=lambda stage: code_hash("import_partstad"),
    )
    return resolver.keys_written_together(list(STAGES), object_id)


def ingest_arrays(ctx: StageContext, object_id: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The ingest store's arrays and attrs of one PartNetE object (as ``partstad ingest``)."""
    from pipeline.data.partnete import read_partnete_object
    from pipeline.meta import part_names

    src = ctx.runtime["sources"][object_id]
    cloud = read_partnete_object(Path(src["path"]), ctx.category, object_id.split("/", 1)[1])
    arrays: dict[str, np.ndarray] = {"xyz": cloud.xyz.astype(np.float32), "rgb": cloud.rgb.astype(np.uint8)}
    if cloud.sem is not None:
        arrays["sem"] = cloud.sem.astype(np.int16)
        arrays["ins"] = (cloud.ins if cloud.ins is not None else np.full(len(cloud.xyz), -1)).astype(np.int32)
    attrs = {
        "centre": np.asarray(cloud.centre, dtype=float).tolist(),
        "scale": float(cloud.scale),
        "parts": list(part_names(ctx.category)),
        "split": src["split"],
        "source": "partnete",
        "simulated": False,
        "labelled": cloud.sem is not None,
        "n_points": int(len(cloud.xyz)),
        "imported_from": ctx.runtime["save_dir"],
    }
    return arrays, attrs


def import_object(ctx: StageContext, object_id: str) -> dict[str, tuple[dict[str, np.ndarray], dict[str, Any]]]:
    """Read one object (PartNetE files + PartSTAD preprocessing) into the six stores' arrays.

    Raises ObjectError subclasses naming the object and the file on any problem.
    """
    from pipeline.cameras import PAPER_VIEWS, make_cameras, project
    from pipeline.detect.imported import object_paths, read_partstad_preprocessed
    from pipeline.render.render import depth_from_pix2pt
    from pipeline.visibility import visible_points

    save_dir = ctx.runtime["save_dir"]
    local_id = object_id.split("/", 1)[1]
    ing_arrays, ing_attrs = ingest_arrays(ctx, object_id)
    xyz = ing_arrays["xyz"]
    N = len(xyz)

    obj = read_partstad_preprocessed(save_dir, ctx.category, local_id)
    paths = object_paths(save_dir, ctx.category, local_id)
    V, H, W = obj.pix2pt.shape
    if obj.uv.shape[1] != N:
        raise BadInputError(
            f"screen_coords has {obj.uv.shape[1]} points but the PartNetE cloud ({ctx.runtime['sources'][object_id]['path']}) has {N}: "
            "the preprocessing belongs to another point cloud",
            object_id=object_id,
            path=paths["screen_coords"],
        )
    if V != len(PAPER_VIEWS):
        raise BadInputError(
            f"{V} views, expected the {len(PAPER_VIEWS)} views of the paper cameras (SPEC §2.2)", object_id=object_id, path=paths["pc_idx"]
        )
    cams = make_cameras(views=PAPER_VIEWS, image_size=(H, W))
    uv_ours, z = project(cams, xyz)
    err = np.linalg.norm(uv_ours.astype(np.float64) - obj.uv, axis=-1)
    reproj = float(np.nanmedian(err)) if np.isfinite(err).any() else float("nan")
    if not reproj <= REPROJECTION_WARN_PX:
        log.warning(
            "%s: screen_coords differ from our projection by %.1f px (median); check that --data-root and --save-dir hold the same objects",
            object_id,
            reproj,
        )

    det = obj.detections
    render = (
        {
            "rgb": obj.rgb,
            "pix2pt": obj.pix2pt.astype(np.int32),
            "depth": depth_from_pix2pt(obj.pix2pt, z),
            "K": np.asarray(cams.K, np.float64),
            "world_to_cam": np.asarray(cams.world_to_cam, np.float64),
            "view_dirs": np.asarray(cams.directions, np.float32),
        },
        {
            "backend": "import",
            "image_size": [int(H), int(W)],
            "views": [list(v) for v in cams.views],
            "depth": "camera z of the winning point (not stored by the original)",
            "imported_from": save_dir,
        },
    )
    vis = visible_points(obj.pix2pt, N)
    visibility = (
        {"uv": obj.uv.astype(np.float32), "visible": vis},
        {"n_visible_per_view": vis.sum(1).tolist(), "source": "import", "reprojection_px_median": reproj},
    )
    superpoints = (
        {"sp": obj.sp.astype(np.int32), "normal": np.zeros((N, 3), np.float32)},
        {"n_superpoints": int(obj.sp.max() + 1) if N else 0, "backend": "import", "normals": "zeros (not stored by the original)"},
    )
    detect: tuple[dict[str, np.ndarray], dict[str, Any]] = (
        {
            "xyxy": det.xyxy.astype(np.float32),
            "view": det.view.astype(np.int16),
            "label": det.label.astype(np.int16),
            "score": det.score.astype(np.float32),
            "feat": det.feat.astype(np.float16),
            "offsets": det.offsets(V).astype(np.int64),
        },
        {"backend": "import", "simulated": False, "n_boxes": int(len(det.xyxy)), "imported_from": save_dir},
    )
    segment = (
        {"mask": np.asarray(obj.masks, dtype=bool).reshape(len(det.xyxy), H, W)},
        {"mode": "import", "simulated": False, "n_boxes": int(len(det.xyxy))},
    )
    return {
        "ingest": (ing_arrays, ing_attrs),
        "render": render,
        "visibility": visibility,
        "superpoints": superpoints,
        "detect": detect,
        "segment": segment,
    }


def _import_one(ctx: StageContext, object_id: str, fps: dict[str, str]) -> dict[str, str]:
    """Worker-side task: read everything, then write the six stores in upstream order."""
    try:
        out = import_object(ctx, object_id)
        for stage, ups in STAGES.items():
            arrays, attrs = out[stage]
            meta = {ORIGIN_ATTR: "import", UPSTREAM_ATTR: {u: fps[u] for u in ups}}
            ctx.store(stage).write_object(object_id, arrays, {**attrs, **meta}, fps[stage])
        return {"object": object_id, "status": "done"}
    except Exception as exc:  # noqa: BLE001 - one object's problem must not stop the others
        res = {
            "object": object_id,
            "status": "failed",
            "error": str(exc) if isinstance(exc, ObjectError) else f"object {object_id}: {exc!r}",
            "type": type(exc).__name__,
        }
        if not isinstance(exc, ObjectError):
            res["traceback"] = traceback.format_exc(limit=3)
        # Previous results stay (each store swaps whole objects in); the manifest leaves the
        # object out, so downstream stages do not use it until an import succeeds.
        return res


def import_category(ctx: StageContext, rows: list[dict[str, Any]], scheduler: str, force: bool) -> list[StageReport]:
    """Import the given PartNetE rows; one report per store (same outcome for all six)."""
    t0 = time.perf_counter()
    todo, skipped = [], []
    for r in rows:
        fps = object_fingerprints(ctx, r["object"])
        if not force and all(ctx.store(s).is_complete(r["object"], fps[s]) for s in STAGES):
            skipped.append(r["object"])
        else:
            todo.append((r["object"], fps))
    if scheduler == "sync":
        from stages.progress import track

        results = [_import_one(ctx, oid, fps) for oid, fps in track(todo, f"import {ctx.category}")]
    else:
        from stages.scheduling import run_tasks

        results = run_tasks([(_import_one, (ctx, oid, fps)) for oid, fps in todo], scheduler, desc=f"import {ctx.category}")
    done = [r["object"] for r in results if r["status"] == "done"]
    failed = [{k: v for k, v in r.items() if k != "status"} for r in results if r["status"] != "done"]
    for f in failed:
        log.error("%s", f["error"])
    seconds = time.perf_counter() - t0
    reports = []
    for stage in STAGES:
        ctx.store(stage).write_json(
            "failures.json",
            {
                "stage": stage,
                "category": ctx.category,
                "failed": failed,
                "n_ok": len(done) + len(skipped),
                "imported_from": ctx.runtime["save_dir"],
            },
        )
        reports.append(StageReport(stage, ctx.category, list(done), list(skipped), list(failed), seconds=seconds))
    bad = {f["object"] for f in failed}
    ctx.store("ingest").write_json(
        "manifest.json",
        [  # the objects this import offers, as `ingest` would list them
            {"object": r["object"], "split": r["split"], "source": "partnete", "category": ctx.category}
            for r in rows
            if r["object"] not in bad
        ],
    )
    return reports


@click.command("import-partstad")
@common_options
@click.option(
    "--save-dir",
    "save_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="save_dir of the original PartSTAD preprocess.py (rendered_pc/, glip_preprocess/, sam_preprocess/).",
)
@click.option(
    "--data-root",
    "data_root",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="PartNetE root: data/{few_shot,test}/<Category>/<id>/{pc.ply,label.npy}; val_list.json optional.",
)
def import_partstad(
    params_path: str,
    cache: str,
    categories: tuple[str, ...],
    objects: str | None,
    scheduler: str,
    device: str,
    force: bool,
    jobs: str,
    keep_going: bool,
    lock_timeout: float,
    save_dir: str,
    data_root: str,
) -> None:
    """Import real GLIP boxes/features and SAM masks from the original PartSTAD preprocessing.

    Fills cache/{ingest,render,visibility,superpoints,detect,segment}/<Category>.zarr for
    every object present in both --data-root and --save-dir, so that `partstad lift`,
    `train` and `evaluate` run on them. Bad objects are listed in each store's failures.json.
    Categories are imported one after the other (--jobs is not used here).
    """
    import contextlib

    from pipeline.data.partnete import list_partnete

    cfg = load_params(params_path)
    sd, root = Path(save_dir).resolve(), Path(data_root).resolve()
    all_reports, problems = [], []
    for category in resolve_categories(cfg, categories):
        have = preprocessed_ids(sd, category)
        rows = [
            {"object": f"{cat}/{oid}", "split": split, "source": "partnete", "path": str(path)}
            for cat, oid, split, path in list_partnete(root, val_ids=cfg.data.val_ids or None, categories=[category])
        ]
        only_data = [r["object"] for r in rows if r["object"].split("/", 1)[1] not in have]
        only_save = sorted(have - {r["object"].split("/", 1)[1] for r in rows})
        rows = [r for r in rows if r["object"].split("/", 1)[1] in have]
        if objects:
            wanted = {o if "/" in o else f"{category}/{o}" for o in objects.split(",") if o}
            rows = [r for r in rows if r["object"] in wanted]
        if only_data:
            click.echo(f"[import] {category}: {len(only_data)} PartNetE objects have no preprocessing in {sd} (not imported)", err=True)
        if only_save:
            click.echo(
                f"[import] {category}: {len(only_save)} preprocessed objects are not in {root}/data (not imported): {', '.join(only_save[:10])}",
                err=True,
            )
        if not rows:
            problems.append(
                f"[import-partstad] {category}: no object present in both {root} and {sd}"
                + (f" matching --objects {objects!r}" if objects else "")
            )
            continue
        ctx = make_context(
            "import", category, cache, cfg, runtime={"sources": {r["object"]: r for r in rows}, "save_dir": str(sd), "data_root": str(root)}
        )
        try:
            with contextlib.ExitStack() as locks:
                for stage in STAGES:  # fixed order: no deadlock between two imports
                    locks.enter_context(ctx.store(stage).lock(lock_timeout))
                    ctx.store(stage).check_root()
                reports = import_category(ctx, rows, scheduler, force)
        except (StoreBusyError, StoreCorruptError) as exc:
            problems.append(f"[import-partstad] {category}: {exc}")
            continue
        r0 = reports[0]
        click.echo(
            f"[import-partstad] {category}: {len(r0.done)} imported, {len(r0.skipped)} up to date, "
            f"{len(r0.failed)} failed ({r0.seconds:.1f} s) -> {', '.join(STAGES)}"
        )
        all_reports.append(r0)
    finish([], problems, keep_going) if problems else None
    n_failed = sum(len(r.failed) for r in all_reports)
    if n_failed:
        for r in all_reports:
            for f in r.failed:
                click.echo(f"  FAILED {f['object']}: {f['error']}", err=True)
        if keep_going:
            click.echo(
                f"WARNING {n_failed} object(s) failed to import (listed in each store's failures.json); exit 0 because of --keep-going",
                err=True,
            )
        else:
            from stages.common import StageFailed

            raise StageFailed(f"{n_failed} object(s) failed to import (listed in each store's failures.json); the others are imported")
