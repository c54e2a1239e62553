"""Reader for a PartNetE root: `data/{few_shot,test}/<Category>/<id>/{pc.ply,label.npy}` (SPEC §1.1).

`val_list.json` ids are test shapes (SPEC §1.3); listing marks them "val" so that the
manifest can use them for checkpoint selection. They stay test shapes on disk.
"""
from __future__ import annotations

import json
from pathlib import Path

from pipeline.data.cloud import LabelledCloud, make_cloud
from pipeline.data.ply import read_ply
from pipeline.data.safe_pickle import load_label_npy
from pipeline.errors import BadInputError
from pipeline.meta import PARTNETE_PARTS, part_names

SPLIT_DIRS: dict[str, str] = {"few_shot": "fewshot", "test": "test"}


def load_val_list(path: str | Path) -> dict[str, list[str]]:
    """Read a `val_list.json` (Category -> list of model ids)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BadInputError(f"cannot read val list ({e})", path=path) from None
    if not isinstance(raw, dict):
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
    categories are listed; order is sorted by (category, split dir, id) for reproducibility.
    """
    root = Path(root)
    if val_ids is None and (root / "val_list.json").is_file():
        val_ids = load_val_list(root / "val_list.json")
    val = {c: set(ids) for c, ids in (val_ids or {}).items()}
    wanted = set(categories) if categories is not None else None
    out: list[tuple[str, str, str, Path]] = []
    for sub, split in SPLIT_DIRS.items():
        base = root / "data" / sub
        if not base.is_dir():
            continue
        for cat_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            cat = cat_dir.name
            if cat not in PARTNETE_PARTS or (wanted is not None and cat not in wanted):
                continue
            for obj_dir in sorted((p for p in cat_dir.iterdir() if p.is_dir()), key=_id_key):
                oid = obj_dir.name
                s = "val" if split == "test" and oid in val.get(cat, ()) else split
                out.append((cat, oid, s, obj_dir))
    out.sort(key=lambda r: (r[0], r[3].parent.parent.name, _id_key(r[3])))
    return out


def _id_key(p: Path) -> tuple[int, int | str]:
    """Numeric ids sort numerically, others lexically after them."""
    return (0, int(p.name)) if p.name.isdigit() else (1, p.name)


def read_partnete_object(obj_dir: str | Path, category: str, object_id: str) -> LabelledCloud:
    """Read `pc.ply` (+ `label.npy` if present) of one PartNetE object, normalised.

    `object_id` is the model id (e.g. "179"); the cloud's id is "<Category>/<id>".
    """
    obj_dir = Path(obj_dir)
    oid = f"{category}/{object_id}"
    k = len(part_names(category))
    ply_path = obj_dir / "pc.ply"
    if not ply_path.is_file():
        raise BadInputError("missing pc.ply", object_id=oid, path=ply_path)
    try:
        pts = read_ply(ply_path)
    except BadInputError as e:
        raise BadInputError(e.reason, object_id=oid, path=e.path) from None
    sem = ins = None
    label_path = obj_dir / "label.npy"
    src_path = ply_path
    if label_path.is_file():
        try:
            lab = load_label_npy(label_path)
        except BadInputError as e:
            raise type(e)(e.reason, object_id=oid, path=e.path) from None
        sem, ins = lab["semantic_seg"], lab["instance_seg"]
        src_path = label_path
        if sem.shape[0] != pts.xyz.shape[0]:
            raise BadInputError(f"label.npy has {sem.shape[0]} labels but pc.ply has "
                                f"{pts.xyz.shape[0]} points", object_id=oid, path=label_path)
    return make_cloud(pts.xyz, pts.rgb, sem, ins, object_id=oid, category=category,
                      source="partnete", n_parts=k, path=src_path)
