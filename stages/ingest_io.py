"""The ingest stage's machinery, shared by ``partstad ingest`` and ``partstad predict``.

Lists the objects a source offers (with their split), reads one object (the work
function) and writes the manifest. Stages never import each other, so the two commands
that ingest both come here.

Own shape files (``data.source: files``): every supported file directly under the root
(:data:`pipeline.data.shapes.SHAPE_SUFFIXES`) is one object named by its stem. Splits come
from ``<root>/splits.yaml`` (``stem: fewshot|val|test``), then ``data.splits``, then the
``--split`` default (``test``); the log says which.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import BadInputError, ObjectError
from pipeline.meta import part_names
from stages.common import ParamsError, key_resolver
from stages.config import DataConfig
from stages.keys import files_digest
from stages.runner import StageContext, StageReport, run_stage

log = logging.getLogger("partstad")
SPLITS = ("fewshot", "val", "test")
SPLITS_FILE = "splits.yaml"
#: Side files whose content can change what a mesh file looks like (materials, textures, buffers).
_SIDE_SUFFIXES = (".mtl", ".png", ".jpg", ".jpeg", ".bin", ".tga", ".bmp")


def _load(ctx: StageContext, object_id: str):
    src = ctx.runtime["sources"][object_id]
    data = ctx.config.data
    kind = src["source"]
    if kind == "synthetic":
        from pipeline.data.synthetic import generate_shape

        return generate_shape(ctx.category, int(src["index"]), n_points=data.n_points, seed=data.seed), {}
    if kind == "partnete":
        from pipeline.data.partnete import read_partnete_object

        return read_partnete_object(Path(src["path"]), ctx.category, object_id.split("/", 1)[-1]), {}
    if kind == "mobility":
        from pipeline.data.mobility import read_mobility_object

        return read_mobility_object(Path(src["path"]), n_points=data.n_points, seed=data.seed), {}
    if kind == "files":
        from pipeline.data.shapes import read_shape

        cloud, info = read_shape(Path(src["path"]), category=ctx.category, object_id=object_id, part_names=part_names(ctx.category),
                                 n_points=data.n_points, seed=data.seed)
        if not info.has_colour:
            log.warning("[ingest] %s: %s has no colours (no texture, vertex or face colours): neutral grey used", object_id, Path(src["path"]).name)
        extra_arrays = {"face": info.face} if info.face is not None else {}
        attrs = {"path": str(Path(src["path"]).resolve()), "kind": info.kind, "has_colour": info.has_colour,
                 "labels_from": info.labels_from, "n_faces": info.n_faces}
        return cloud, {"arrays": extra_arrays, "attrs": attrs}
    raise BadInputError(f"unknown source {kind!r}", object_id=object_id)


def ingest_work(ctx: StageContext, object_id: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    src = ctx.runtime["sources"][object_id]
    if src.get("invalid"):
        raise BadInputError(src["invalid"], object_id=object_id, path=src.get("path"))
    cloud, extra = _load(ctx, object_id)
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
        "simulated": src["source"] == "synthetic",
        "labelled": cloud.sem is not None,
        "n_points": int(len(cloud.xyz)),
        **extra.get("attrs", {}),
    }
    return arrays, attrs


def source_digest(row: dict[str, Any]) -> Any:
    """What an object's ingest key hashes besides config and code: its input files' content
    (and, for your own shapes, the category's part names, which give the label ids)."""
    if row["source"] == "synthetic":
        return {"index": row["index"]}
    path = Path(row["path"])
    if row["source"] == "partnete":
        return files_digest([path / "pc.ply", path / "label.npy"])
    if row["source"] == "files":
        from pipeline.data.shapes import INSTANCES_SUFFIX, LABELS_SUFFIX

        side = [path.with_name(path.stem + LABELS_SUFFIX), path.with_name(path.stem + INSTANCES_SUFFIX)]
        if path.suffix.lower() in (".obj", ".gltf"):
            side += [p for p in path.parent.iterdir() if p.is_file() and p.suffix.lower() in _SIDE_SUFFIXES]
        return {"files": files_digest([path, *side]), "parts": list(part_names(row["object"].split("/", 1)[0]))}
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    return files_digest(files)


def _id_problem(row: dict[str, Any]) -> str | None:
    from pipeline.data.ids import validate_object_id

    try:
        validate_object_id(row["object"].split("/", 1)[1], path=row.get("path"))
    except BadInputError as exc:
        return exc.reason
    return None


def read_splits_file(root: Path) -> dict[str, str]:
    """``<root>/splits.yaml``: {stem: fewshot|val|test}; {} when absent; ParamsError when malformed."""
    import yaml

    path = root / SPLITS_FILE
    if not path.is_file():
        if path.exists() or path.is_symlink():  # a folder or a dangling link: a typo, not "no splits"
            raise ParamsError(f"{path}: not a readable file (a folder or a broken link); remove it or make it a YAML mapping stem: fewshot|val|test")
        return {}
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ParamsError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    except OSError as exc:
        raise ParamsError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping stem: fewshot|val|test")
    bad = {str(k): v for k, v in raw.items() if v not in SPLITS}
    if bad:
        raise ParamsError(f"{path}: unknown split(s) {bad} (fewshot, val, test)")
    return {str(k): str(v) for k, v in raw.items()}


def file_rows(category: str, files: list[Path], splits: dict[str, str], default_split: str = "test", where: str = "") -> list[dict[str, Any]]:
    """One manifest row per shape file (object id = file stem); logs where the splits came from.

    Two files with one stem (``a.obj``, ``a.ply``) are one id twice: the second is invalid."""
    rows: list[dict[str, Any]] = []
    seen: dict[str, Path] = {}
    for f in files:
        stem = f.name[: -len(f.suffix)] if f.suffix else f.name
        row = {"object": f"{category}/{stem}", "split": splits.get(stem, default_split), "source": "files", "path": str(f)}
        if stem in seen:
            row["invalid"] = f"object id {stem!r} is also given by {seen[stem].name}; rename one of them"
        seen.setdefault(stem, f)
        rows.append(row)
    counts = {s: sum(r["split"] == s for r in rows) for s in SPLITS}
    listed = sum(stem in splits for stem in seen)
    how = f"{listed} listed in the splits, the other {len(seen) - listed} default to {default_split}" if splits else f"no {SPLITS_FILE}: every object goes to the {default_split} split"
    log.info("[ingest] %s: %d shape file(s)%s; %s (%s)", category, len(rows), f" under {where}" if where else "", how,
             ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    unknown = sorted(set(splits) - set(seen))
    if unknown:
        log.warning("[ingest] %s: the splits name no file for %s", category, ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else ""))
    return rows


def list_files_root(category: str, data: DataConfig, default_split: str = "test") -> list[dict[str, Any]]:
    """Rows for every shape file directly under data.root."""
    from pipeline.data.shapes import is_shape_file

    root = Path(str(data.root))
    files = sorted(p for p in root.iterdir() if is_shape_file(p))
    splits = {**read_splits_file(root), **(data.splits or {})}
    return file_rows(category, files, splits, default_split, where=str(root))


def categories_in_root(data: DataConfig) -> list[str]:
    """Every category a partnete / mobility root holds (sorted), for ingest without --category."""
    from pipeline.meta import known_categories

    root = Path(str(data.root))
    found: set[str] = set()
    if data.source == "partnete":
        for sub in ("few_shot", "test"):
            base = root / "data" / sub
            if base.is_dir():
                found |= {p.name for p in base.iterdir() if p.is_dir()}
    elif data.source == "mobility":
        for d in root.iterdir():
            meta = d / "meta.json"
            if meta.is_file():
                try:
                    cat = json.loads(meta.read_text()).get("model_cat")
                except (ValueError, UnicodeDecodeError, AttributeError):
                    continue
                if isinstance(cat, str):
                    found.add(cat)
    known = set(known_categories())
    unknown = sorted(found - known)
    if unknown:
        log.warning("[ingest] skipping categories without part names under %s: %s (add them to data.part_names)", root, ", ".join(unknown))
    return sorted(found & known)


def list_sources(category: str, data: DataConfig, default_split: str = "test") -> list[dict[str, Any]]:
    """Every object of a category the configured source offers, with its split.

    Raises ParamsError for a bad root and BadInputError for an inconsistent dataset (the
    same object in two splits)."""
    source, root = data.source, data.root
    rows: list[dict[str, Any]] = []
    if source != "synthetic":
        if not root:
            raise ParamsError(f"data.root: --source {source} needs --root (or data.root in params)")
        if not Path(root).is_dir():
            raise ParamsError(f"data.root: dataset root {root!r} is not a directory")
    if source == "synthetic":
        from pipeline.data.synthetic import SYNTHETIC_CATEGORIES, synthetic_split

        if category not in SYNTHETIC_CATEGORIES:
            raise ParamsError(f"--category: synthetic data has no category {category!r}; available: {', '.join(SYNTHETIC_CATEGORIES)}")
        for index, split in synthetic_split(data.n_fewshot, data.n_val, data.n_test):
            rows.append({"object": f"{category}/{index:04d}", "split": split, "source": "synthetic", "index": index})
    elif source == "partnete":
        from pipeline.data.partnete import list_partnete

        for cat, oid, split, path in list_partnete(Path(root), val_ids=data.val_ids or None):
            if cat == category:
                rows.append({"object": f"{cat}/{oid}", "split": split, "source": "partnete", "path": str(path)})
    elif source == "mobility":
        for d in sorted(Path(root).iterdir()):
            meta = d / "meta.json"
            if not meta.exists():
                continue
            try:
                cat = json.loads(meta.read_text()).get("model_cat")
            except (ValueError, UnicodeDecodeError):
                cat = None
            if cat == category:
                split = (data.splits or {}).get(d.name, "test")
                rows.append({"object": f"{category}/{d.name}", "split": split, "source": "mobility", "path": str(d)})
    elif source == "files":
        rows = list_files_root(category, data, default_split)
    return mark_invalid_ids(rows)


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
    good = [r for r in rows if isinstance(r, dict) and isinstance(r.get("object"), str) and r["object"].startswith(prefix)
            and is_valid_object_id(r["object"][len(prefix):])]
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
    keep = [r for r in all_rows if (r["object"] in ok if r["object"] in this_run else r["object"] in previous) and store.is_complete(r["object"])]
    sources = {r["source"] for r in all_rows}
    listed = {r["object"] for r in all_rows}
    others = [r for r in previous_rows if r.get("source") not in sources and r.get("object") not in listed
              and all(isinstance(r.get(k), str) for k in ("object", "split", "source")) and store.is_complete(r["object"])]
    store.write_json("manifest.json", [{k: r[k] for k in ("object", "split", "source")} | {"category": ctx.category} for r in keep + others])


def run_ingest(ctx: StageContext, all_rows: list[dict[str, Any]], rows: list[dict[str, Any]], *, scheduler: str = "sync", force: bool = False,
               lock_timeout: float = -1) -> StageReport:
    """Ingest ``rows`` (a subset of ``all_rows``, the source's listing) into ctx's store and
    rewrite the manifest. ``ctx.runtime["sources"]`` is filled here."""
    sources = {r["object"]: r for r in rows}
    ctx.runtime["sources"] = sources
    digests = {oid: source_digest(r) for oid, r in sources.items()}
    extra: Callable[[str, str], Any] = lambda stage, oid: digests.get(oid)  # noqa: E731
    return run_stage(ctx, list(sources), ingest_work, keys=key_resolver(ctx, extra), scheduler=scheduler,
                     force=force, lock_timeout=lock_timeout, after=lambda rep: write_manifest(ctx, all_rows, rep))


__all__ = ["ObjectError", "categories_in_root", "file_rows", "ingest_work", "list_sources", "mark_invalid_ids", "previous_manifest", "read_splits_file", "run_ingest", "source_digest", "write_manifest"]
