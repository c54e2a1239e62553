"""The ingest stage's machinery, shared by ``partstad ingest`` and ``partstad predict``.

Lists the objects a source offers (with their split), reads one object (the work
function) and writes the manifest. Stages never import each other, so the two commands
that ingest both come here.

Each input source (``data.source``: synthetic, partnete, mobility, files) is one entry of
:data:`stages.backends.sources.SOURCES`, which lists, hashes and reads its objects; own
shape files are :mod:`stages.backends.files_source`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import BadInputError, ObjectError
from pipeline.meta import part_names
from stages.backends.files_source import SPLITS, SPLITS_FILE, file_rows, read_splits_file
from stages.backends.sources import SOURCES
from stages.common import ParamsError, key_resolver
from stages.config import DataConfig
from stages.runner import StageContext, StageReport, run_stage

log = logging.getLogger("partstad")


def ingest_work(ctx: StageContext, object_id: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    src = ctx.runtime["sources"][object_id]
    if src.get("invalid"):
        raise BadInputError(src["invalid"], object_id=object_id, path=src.get("path"))
    source = SOURCES.get(src["source"])
    cloud, extra = source.work(ctx, object_id)
    arrays = {"xyz": cloud.xyz.astype(np.float32), "rgb": cloud.rgb.astype(np.uint8)}
    if cloud.sem is not None:
        arrays["sem"] = cloud.sem.astype(np.int16)
        arrays["ins"] = (cloud.ins if cloud.ins is not None else np.full(len(cloud.xyz), -1)).astype(np.int32)
    arrays.update(extra.get("arrays", {}))
    attrs = {
        "centre": np.asarray(cloud.centre, dtype=float).tolist(),
        "scale": float(cloud.scale),
        "parts": list(part_names(ctx.category)),
        "source": src["source"],
        "simulated": source.simulated,
        "labelled": cloud.sem is not None,
        "n_points": int(len(cloud.xyz)),
        **extra.get("attrs", {}),
    }
    return arrays, attrs


def source_digest(row: dict[str, Any]) -> Any:
    """What an object's ingest key hashes besides config and code: its input files' content
    (and, for your own shapes, the category's part names, which give the label ids)."""
    return SOURCES.get(row["source"]).digest(row)


def _id_problem(row: dict[str, Any]) -> str | None:
    from pipeline.data.ids import validate_object_id

    try:
        validate_object_id(row["object"].split("/", 1)[1], path=row.get("path"))
    except BadInputError as exc:
        return exc.reason
    return None


def categories_in_root(data: DataConfig) -> list[str]:
    """Every known category the configured source's root holds (sorted), for ingest without
    --category; [] when the source cannot tell (then params' categories are used)."""
    from pipeline.meta import known_categories

    found = SOURCES.get(data.source).categories(data) or set()
    known = set(known_categories())
    unknown = sorted(found - known)
    if unknown:
        log.warning(
            "[ingest] skipping categories without part names under %s: %s (add them to data.part_names)", data.root, ", ".join(unknown)
        )
    return sorted(found & known)


def list_sources(category: str, data: DataConfig, default_split: str = "test") -> list[dict[str, Any]]:
    """Every object of a category the configured source offers, with its split.

    Raises ParamsError for a bad root and BadInputError for an inconsistent dataset (the
    same object in two splits)."""
    source, root = SOURCES.get(data.source), data.root
    if source.needs_root:
        if not root:
            raise ParamsError(f"data.root: --source {source.name} needs --root (or data.root in params)")
        if not Path(root).is_dir():
            raise ParamsError(f"data.root: dataset root {root!r} is not a directory")
    return mark_invalid_ids(source.list_objects(category, data, default_split))


def mark_invalid_ids(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows whose object id the cache cannot hold (unicode, spaces, ``..``) get an ``invalid`` reason."""
    for r in rows:
        problem = _id_problem(r)
        if problem:
            r.setdefault("invalid", problem)
    return rows


def previous_manifest(store: Any) -> tuple[list[dict[str, Any]], bool]:
    """(the rows of the store's manifest.json that are rows, whether the file was damaged).

    A damaged file (not JSON, not a list, rows that are not objects) gets a warning naming it
    and is rebuilt by the caller instead of stopping ingest for good."""
    where = store.side_file("manifest.json")
    try:
        rows = store.read_json("manifest.json", default=[])
    except (ObjectError, OSError, ValueError) as exc:
        problem = exc.reason if isinstance(exc, ObjectError) else f"{type(exc).__name__}: {exc}"
        log.warning("[ingest] file %s: %s; writing a fresh one", where, problem)
        return [], True
    if rows is None:
        return [], False
    if not isinstance(rows, list):
        log.warning("[ingest] file %s: not a list of objects; writing a fresh one", where)
        return [], True
    from pipeline.data.ids import is_valid_object_id

    prefix = f"{store.category}/"
    good = [
        r
        for r in rows
        if isinstance(r, dict)
        and isinstance(r.get("object"), str)
        and r["object"].startswith(prefix)
        and is_valid_object_id(r["object"][len(prefix) :])
    ]
    if len(good) != len(rows):
        log.warning("[ingest] file %s: %d row(s) are not objects; writing a fresh one", where, len(rows) - len(good))
    return good, len(good) != len(rows)


def write_manifest(ctx: StageContext, all_rows: list[dict[str, Any]], report: StageReport) -> None:
    """manifest.json: the objects downstream stages may use, with their split.

    Objects of this run count when they are complete and did not fail (a failing object's
    older result no longer matches its input); objects this run did not look at keep their
    previous membership, and so do objects of *another source* still in the store (your own
    shapes ingested next to a dataset). Never written empty: a run that found nothing exits
    before this.
    """
    store = ctx.store()
    this_run = set(report.done) | set(report.skipped) | {f["object"] for f in report.failed}
    ok = set(report.done) | set(report.skipped)
    previous_rows, damaged = previous_manifest(store)
    previous = {r["object"] for r in previous_rows}
    if damaged:  # membership unknown: every complete object of the source's listing is back in
        previous |= {r["object"] for r in all_rows}
    keep = [
        r
        for r in all_rows
        if (r["object"] in ok if r["object"] in this_run else r["object"] in previous) and store.is_complete(r["object"])
    ]
    sources = {r["source"] for r in all_rows}
    listed = {r["object"] for r in all_rows}
    others = [
        r
        for r in previous_rows
        if r.get("source") not in sources
        and r.get("object") not in listed
        and all(isinstance(r.get(k), str) for k in ("object", "split", "source"))
        and store.is_complete(r["object"])
    ]
    store.write_json(
        "manifest.json", [{k: r[k] for k in ("object", "split", "source")} | {"category": ctx.category} for r in keep + others]
    )


def run_ingest(
    ctx: StageContext,
    all_rows: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    *,
    scheduler: str = "sync",
    force: bool = False,
    lock_timeout: float = -1,
) -> StageReport:
    """Ingest ``rows`` (a subset of ``all_rows``, the source's listing) into ctx's store and
    rewrite the manifest. ``ctx.runtime["sources"]`` is filled here."""
    sources = {r["object"]: r for r in rows}
    ctx.runtime["sources"] = sources
    digests = {oid: source_digest(r) for oid, r in sources.items()}
    extra: Callable[[str, str], Any] = lambda stage, oid: digests.get(oid)  # noqa: E731
    return run_stage(
        ctx,
        list(sources),
        ingest_work,
        keys=key_resolver(ctx, extra),
        scheduler=scheduler,
        force=force,
        lock_timeout=lock_timeout,
        after=lambda rep: write_manifest(ctx, all_rows, rep),
    )


__all__ = [
    "SPLITS",
    "SPLITS_FILE",
    "ObjectError",
    "categories_in_root",
    "file_rows",
    "ingest_work",
    "list_sources",
    "mark_invalid_ids",
    "previous_manifest",
    "read_splits_file",
    "run_ingest",
    "source_digest",
    "write_manifest",
]
