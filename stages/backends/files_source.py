"""``data.source: files``: your own shape files (.ply, .obj, .glb/.gltf, .off, .stl).

Every supported file directly under the root (:data:`pipeline.data.shapes.SHAPE_SUFFIXES`) is
one object named by its stem. Splits come from ``<root>/splits.yaml`` (``stem:
fewshot|val|test``), then ``data.splits``, then the ``--split`` default (``test``); the log
says which. Also used by ``partstad predict`` (through stages/ingest_io.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipeline.meta import part_names
from stages.backends.base import Source
from stages.keys import files_digest

log = logging.getLogger("partstad")
SPLITS = ("fewshot", "val", "test")
SPLITS_FILE = "splits.yaml"
#: Side files whose content can change what a mesh file looks like (materials, textures, buffers).
_SIDE_SUFFIXES = (".mtl", ".png", ".jpg", ".jpeg", ".bin", ".tga", ".bmp")


def read_splits_file(root: Path) -> dict[str, str]:
    """``<root>/splits.yaml``: {stem: fewshot|val|test}; {} when absent; ParamsError when malformed."""
    import yaml

    from stages.common import ParamsError

    path = root / SPLITS_FILE
    if not path.is_file():
        if path.exists() or path.is_symlink():  # a folder or a dangling link: a typo, not "no splits"
            raise ParamsError(
                f"{path}: not a readable file (a folder or a broken link); remove it or make it a YAML mapping stem: fewshot|val|test"
            )
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


def file_rows(
    category: str, files: list[Path], splits: dict[str, str], default_split: str = "test", where: str = ""
) -> list[dict[str, Any]]:
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
    how = (
        f"{listed} listed in the splits, the other {len(seen) - listed} default to {default_split}"
        if splits
        else f"no {SPLITS_FILE}: every object goes to the {default_split} split"
    )
    log.info(
        "[ingest] %s: %d shape file(s)%s; %s (%s)",
        category,
        len(rows),
        f" under {where}" if where else "",
        how,
        ", ".join(f"{n} {s}" for s, n in counts.items() if n),
    )
    unknown = sorted(set(splits) - set(seen))
    if unknown:
        log.warning(
            "[ingest] %s: the splits name no file for %s", category, ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        )
    return rows


def list_files_root(category: str, data: Any, default_split: str = "test") -> list[dict[str, Any]]:
    """Rows for every shape file directly under data.root."""
    from pipeline.data.shapes import is_shape_file

    root = Path(str(data.root))
    files = sorted(p for p in root.iterdir() if is_shape_file(p))
    splits = {**read_splits_file(root), **(data.splits or {})}
    return file_rows(category, files, splits, default_split, where=str(root))


class FilesSource(Source):
    name = "files"
    description = "files (your own shape files)"
    one_category = True

    def list_objects(self, category: str, data: Any, default_split: str = "test") -> list[dict[str, Any]]:
        return list_files_root(category, data, default_split)

    def digest(self, row: dict[str, Any]) -> Any:
        """The shape file and its side files (labels, instances, materials, textures), and the
        category's part names, which give the label ids."""
        from pipeline.data.shapes import INSTANCES_SUFFIX, LABELS_SUFFIX

        path = Path(row["path"])
        side = [path.with_name(path.stem + LABELS_SUFFIX), path.with_name(path.stem + INSTANCES_SUFFIX)]
        if path.suffix.lower() in (".obj", ".gltf"):
            side += [p for p in path.parent.iterdir() if p.is_file() and p.suffix.lower() in _SIDE_SUFFIXES]
        return {"files": files_digest([path, *side]), "parts": list(part_names(row["object"].split("/", 1)[0]))}

    def work(self, ctx: Any, object_id: str) -> tuple[Any, dict[str, Any]]:
        from pipeline.data.shapes import read_shape

        src, data = ctx.runtime["sources"][object_id], ctx.config.data
        cloud, info = read_shape(
            Path(src["path"]),
            category=ctx.category,
            object_id=object_id,
            part_names=part_names(ctx.category),
            n_points=data.n_points,
            seed=data.seed,
        )
        if not info.has_colour:
            log.warning(
                "[ingest] %s: %s has no colours (no texture, vertex or face colours): neutral grey used", object_id, Path(src["path"]).name
            )
        extra_arrays = {"face": info.face} if info.face is not None else {}
        attrs = {
            "path": str(Path(src["path"]).resolve()),
            "kind": info.kind,
            "has_colour": info.has_colour,
            "labels_from": info.labels_from,
            "n_faces": info.n_faces,
        }
        return cloud, {"arrays": extra_arrays, "attrs": attrs}
