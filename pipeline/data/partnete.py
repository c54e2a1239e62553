"""Reader for a PartNetE root: `data/{few_shot,test}/<Category>/<id>/{pc.ply,label.npy}` (SPEC §1.1).

`val_list.json` ids are test shapes (SPEC §1.3); listing marks them "val" so that the
manifest can use them for checkpoint selection. They stay test shapes on disk.

Folder names are untrusted: listing never parses them as numbers and returns every object
folder, valid id or not, so that the stage can record a per-object error naming the folder
(callers check ids with `pipeline.data.ids.validate_object_id`; `read_partnete_object` does
too). An id present in both splits of a category is an error for the whole listing: it would
leak a test shape into the few-shot training set.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.data.cloud import LabelledCloud, make_cloud
from pipeline.data.ids import id_sort_key, validate_object_id
from pipeline.data.input_file import exists, read_text
from pipeline.data.ply import read_ply
from pipeline.data.safe_pickle import load_label_npy
from pipeline.errors import BadInputError
from pipeline.meta import PARTNETE_PARTS, part_names

SPLIT_DIRS: dict[str, str] = {"few_shot": "fewshot", "test": "test"}


def load_val_list(path: str | Path) -> dict[str, list[str]]:
    """Read a `val_list.json` (Category -> list of model ids)."""
    path = Path(path)
    try:
        raw = json.loads(read_text(path))
    except (ValueError, RecursionError) as e:
        raise BadInputError(f"cannot read val list ({e})", path=path) from None
    if not isinstance(raw, dict) or not all(isinstance(v, list) for v in raw.values()):
        raise BadInputError("val list must map category -> list of ids", path=path)
    return {str(k): [str(i) for i in v] for k, v in raw.items()}


def list_partnete(
    root: str | Path,
    val_ids: dict[str, list[str]] | None = None,
    categories: list[str] | tuple[str, ...] | None = None,
) -> list[tuple[str, str, str, Path]]:
    """Every object under `root/data/{few_shot,test}` as (category, object_id, split, dir).

    split: few_shot -> "fewshot", test -> "test", or "val" for test ids listed in `val_ids`
    (default: `root/val_list.json` when present). Only directories of known PartNetE
    categories are listed; order is sorted by (category, split dir, id) for reproducibility,
    ids in natural order (`id_sort_key`).

    Invalid ids (e.g. a folder named "²" or "a b") ARE returned; check them with
    `validate_object_id`. Raises BadInputError if an id is in both few_shot/ and test/ of
    one category, or if a directory cannot be listed.
    """
    root = Path(root)
    source = None
    if val_ids is None and exists(root / "val_list.json"):  # a FIFO or loop is an error, not "absent"
        source = root / "val_list.json"
        val_ids = load_val_list(source)
    val = {c: set(ids) for c, ids in (val_ids or {}).items()}
    wanted = set(categories) if categories is not None else None
    out: list[tuple[str, str, str, Path]] = []
    for sub, split in SPLIT_DIRS.items():
        base = root / "data" / sub
        if not base.is_dir():
            continue
        for cat_dir in _subdirs(base):
            cat = cat_dir.name
            if cat not in PARTNETE_PARTS or (wanted is not None and cat not in wanted):
                continue
            for obj_dir in _subdirs(cat_dir):
                oid = obj_dir.name
                s = "val" if split == "test" and oid in val.get(cat, ()) else split
                out.append((cat, oid, s, obj_dir))
    _check_disjoint_splits(out)
    _check_val_ids(out, val, source)
    out.sort(key=lambda r: (r[0], r[3].parent.parent.name, id_sort_key(r[1])))
    return out


def _subdirs(path: Path) -> list[Path]:
    """Sub-directories of `path` in name order; an unreadable directory is a BadInputError."""
    try:
        return sorted((p for p in path.iterdir() if p.is_dir()), key=lambda p: id_sort_key(p.name))
    except OSError as e:
        raise BadInputError(f"cannot list directory ({e.strerror or e})", path=path) from None


def _check_val_ids(rows: list[tuple[str, str, str, Path]], val: dict[str, set[str]], source: Path | None) -> None:
    """A validation id that is a few-shot shape or no shape at all would be dropped silently,
    leaving checkpoint selection and method auto with fewer (or no) validation shapes."""
    by_cat: dict[str, dict[str, str]] = {}
    for cat, oid, split, _ in rows:
        by_cat.setdefault(cat, {})[oid] = split
    where = f" ({source})" if source is not None else " (data.val_ids)"
    for cat, ids in sorted(val.items()):
        listed = by_cat.get(cat)
        if listed is None:  # no data of this category under root: nothing to mark
            continue
        fewshot = sorted((i for i in ids if listed.get(i) == "fewshot"), key=id_sort_key)
        if fewshot:
            raise BadInputError(
                f"validation ids of {cat}{where} name few-shot shapes {', '.join(fewshot)} "
                "(validation shapes are taken from test/, SPEC §1.3)",
                object_id=f"{cat}/{fewshot[0]}",
            )
        missing = sorted((i for i in ids if i not in listed), key=id_sort_key)
        if missing:
            raise BadInputError(f"validation ids of {cat}{where} name no shape under data/test/{cat}: {', '.join(missing[:5])}")


def _check_disjoint_splits(rows: list[tuple[str, str, str, Path]]) -> None:
    """One id in two splits of a category would put a test shape into few-shot training."""
    seen: dict[tuple[str, str], Path] = {}
    for cat, oid, _, path in rows:
        other = seen.setdefault((cat, oid), path)
        if other != path:
            raise BadInputError(
                f"object id {oid!r} of category {cat} is in two splits: {other} and {path} "
                "(a shape must be either few-shot or test, never both)",
                object_id=f"{cat}/{oid}",
                path=path,
            )


def read_partnete_object(obj_dir: str | Path, category: str, object_id: str) -> LabelledCloud:
    """Read `pc.ply` (+ `label.npy` if present) of one PartNetE object, normalised.

    `object_id` is the model id (e.g. "179"); the cloud's id is "<Category>/<id>". An id that
    `validate_object_id` refuses is a BadInputError naming the folder.
    """
    obj_dir = Path(obj_dir)
    validate_object_id(object_id, path=obj_dir)
    oid = f"{category}/{object_id}"
    k = len(part_names(category))
    ply_path = obj_dir / "pc.ply"
    if not exists(ply_path):
        raise BadInputError("missing pc.ply", object_id=oid, path=ply_path)
    try:
        pts = read_ply(ply_path)
    except BadInputError as e:
        raise BadInputError(e.reason, object_id=oid, path=e.path) from None
    sem = ins = None
    label_path = obj_dir / "label.npy"
    src_path = ply_path
    # Not `is_file()`: that is False for a FIFO, a directory or a symlink loop, which would
    # ingest the object unlabelled without a word. Present but unusable is an error.
    if exists(label_path):
        try:
            lab = load_label_npy(label_path)
        except BadInputError as e:
            raise type(e)(e.reason, object_id=oid, path=e.path) from None
        sem, ins = lab["semantic_seg"], lab["instance_seg"]
        src_path = label_path
        if sem.shape[0] != pts.xyz.shape[0]:
            raise BadInputError(
                f"label.npy has {sem.shape[0]} labels but pc.ply has {pts.xyz.shape[0]} points", object_id=oid, path=label_path
            )
    return make_cloud(pts.xyz, pts.rgb, sem, ins, object_id=oid, category=category, source="partnete", n_parts=k, path=src_path)
