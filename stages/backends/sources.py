"""The input-source registry (``data.source``): which objects a category has, and one object's points.

A source lists rows (``object``, ``split``, ``source`` and what it needs to read the object:
``index``, ``path``), hashes an object's input files for the ingest key (``digest``) and reads
one object (``work`` -> (PointCloud, {"arrays": extra arrays, "attrs": extra attrs})).
Adding a source = one class (here, or its own module like :mod:`stages.backends.files_source`)
+ one ``SOURCES.register`` line.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from stages.backends.base import Registry, Source
from stages.backends.files_source import FilesSource
from stages.keys import files_digest

log = logging.getLogger("partstad")


class SyntheticSource(Source):
    name = "synthetic"
    simulated = True
    description = "shapes (synthetic generator)"
    needs_root = False

    def describe(self, cfg: Any) -> str:
        return "synthetic (simulated shapes)"

    def list_objects(self, category: str, data: Any, default_split: str = "test") -> list[dict[str, Any]]:
        from pipeline.data.synthetic import SYNTHETIC_CATEGORIES, synthetic_split
        from stages.common import ParamsError

        if category not in SYNTHETIC_CATEGORIES:
            raise ParamsError(f"--category: synthetic data has no category {category!r}; available: {', '.join(SYNTHETIC_CATEGORIES)}")
        return [
            {"object": f"{category}/{index:04d}", "split": split, "source": self.name, "index": index}
            for index, split in synthetic_split(data.n_fewshot, data.n_val, data.n_test)
        ]

    def digest(self, row: dict[str, Any]) -> Any:
        return {"index": row["index"]}

    def work(self, ctx: Any, object_id: str) -> tuple[Any, dict[str, Any]]:
        from pipeline.data.synthetic import generate_shape

        data = ctx.config.data
        return generate_shape(ctx.category, int(ctx.runtime["sources"][object_id]["index"]), n_points=data.n_points, seed=data.seed), {}


class PartneteSource(Source):
    name = "partnete"
    description = "partnete (PartNet-Ensembled dataset)"
    lists_categories = True

    def list_objects(self, category: str, data: Any, default_split: str = "test") -> list[dict[str, Any]]:
        from pipeline.data.partnete import list_partnete

        return [
            {"object": f"{cat}/{oid}", "split": split, "source": self.name, "path": str(path)}
            for cat, oid, split, path in list_partnete(Path(data.root), val_ids=data.val_ids or None)
            if cat == category
        ]

    def categories(self, data: Any) -> set[str] | None:
        root = Path(str(data.root))
        found: set[str] = set()
        for sub in ("few_shot", "test"):
            base = root / "data" / sub
            if base.is_dir():
                found |= {p.name for p in base.iterdir() if p.is_dir()}
        return found

    def digest(self, row: dict[str, Any]) -> Any:
        path = Path(row["path"])
        return files_digest([path / "pc.ply", path / "label.npy"])

    def work(self, ctx: Any, object_id: str) -> tuple[Any, dict[str, Any]]:
        from pipeline.data.partnete import read_partnete_object

        return read_partnete_object(Path(ctx.runtime["sources"][object_id]["path"]), ctx.category, object_id.split("/", 1)[-1]), {}


def _model_cat(meta: Path) -> Any:
    """The ``model_cat`` of a PartNet-Mobility meta.json (None when unreadable)."""
    try:
        return json.loads(meta.read_text()).get("model_cat")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None


class MobilitySource(Source):
    name = "mobility"
    description = "mobility (PartNet-Mobility dataset)"
    lists_categories = True

    def list_objects(self, category: str, data: Any, default_split: str = "test") -> list[dict[str, Any]]:
        rows = []
        for d in sorted(Path(data.root).iterdir()):
            meta = d / "meta.json"
            if meta.exists() and _model_cat(meta) == category:
                rows.append(
                    {
                        "object": f"{category}/{d.name}",
                        "split": (data.splits or {}).get(d.name, "test"),
                        "source": self.name,
                        "path": str(d),
                    }
                )
        return rows

    def categories(self, data: Any) -> set[str] | None:
        found = set()
        for d in Path(str(data.root)).iterdir():
            meta = d / "meta.json"
            if meta.is_file():
                cat = _model_cat(meta)
                if isinstance(cat, str):
                    found.add(cat)
        return found

    def work(self, ctx: Any, object_id: str) -> tuple[Any, dict[str, Any]]:
        from pipeline.data.mobility import read_mobility_object

        data = ctx.config.data
        return read_mobility_object(Path(ctx.runtime["sources"][object_id]["path"]), n_points=data.n_points, seed=data.seed), {}


SOURCES: Registry[Source] = Registry("input source", "data.source")
SOURCES.register(SyntheticSource())
SOURCES.register(PartneteSource())
SOURCES.register(MobilitySource())
SOURCES.register(FilesSource())


def source(cfg: Any) -> Source:
    """The configured input source (``data.source``)."""
    return SOURCES.get(cfg.data.source)
