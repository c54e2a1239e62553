"""What every backend owns, and the registry that finds one by name.

A backend is a small object (in the style of segment-anything's ``sam_model_registry``):
its name, whether it is simulated, how doctor and provenance describe it, its preflight,
the weights it loads (content digest for the cache key, records for provenance, paths for
dvc.yaml), whether it needs a GPU, and its per-object work. The defaults describe a
weight-free CPU backend, so a simple one overrides only ``work``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Generic, TypeVar

Row = tuple[str, str, str]  # doctor: (status, name, detail)


class Backend:
    """One detector, masker or input source. Subclasses set the class attributes."""

    name: ClassVar[str] = ""
    #: True when its results are simulated (read from the ground truth or generated).
    simulated: ClassVar[bool] = False
    #: One line for ``partstad doctor`` (and the provenance text of a simulated component).
    description: ClassVar[str] = ""
    #: Its own section of the stage's config (``detect.pixels``), defined once in stages/config.py.
    config_section: ClassVar[str | None] = None
    #: No other backend reads ``config_section``: the cache key drops it when another backend runs.
    private_section: ClassVar[bool] = False
    #: (module, distribution) it imports, reported by doctor (a FAIL when it runs and is missing).
    package: ClassVar[tuple[str, str] | None] = None
    #: False for results another command writes (``detect.backend: import``): the stage refuses to run.
    computed: ClassVar[bool] = True

    def uses_model(self, cfg: Any) -> bool:
        """It loads a torch model: the stage resolves --device, keys hold the resolved precision."""
        return False

    def needs_gpu(self, device: str) -> bool:
        """Its tasks need a dask GPU worker (``dask worker --resources GPU=1``) on ``device``."""
        return False

    def describe(self, cfg: Any) -> str:
        """Doctor's line for this backend under ``cfg``."""
        return self.description

    def component(self) -> str | None:
        """The provenance text of this backend as a simulated component (None when real)."""
        return self.description if self.simulated else None

    def preflight(self, cfg: Any, device: str) -> None:
        """Before any object: load weights, check settings (raise stages.common.ParamsError: exit 2)."""

    def weights_key(self, cfg: Any, category: str) -> dict[str, Any]:
        """The cache-key entry for the weights it loads: content digests, never paths."""
        return {}

    def weights_records(self, cfg: Any, categories: list[str] | None = None) -> list[dict[str, Any]]:
        """Provenance of the weights it loads: role, setting, spec, path, source, digest."""
        return []

    def weights_deps(self, cfg: Any) -> list[str]:
        """Local paths of the weights it loads, for dvc.yaml deps (``{category}`` per category)."""
        return []

    def record(self, cfg: Any) -> dict[str, Any]:
        """Settings provenance names next to the backend (weights setting, model type)."""
        return {}

    def doctor_rows(self, cfg: Any, device: str, load: bool, active: bool) -> list[Row]:
        """Doctor checks of its settings (weights that load); ``active``: it is the configured one."""
        return []

    def key_extra(self, ctx: Any, current: Any) -> dict[str, Any]:
        """Other inputs of its results for the cache key (``current(stage, oid)``: verified upstream keys)."""
        return {}

    def work(self, ctx: Any, object_id: str) -> tuple[Any, dict[str, Any]]:
        """One object's result (detector: Detections; masker: (B,H,W) masks; source: PointCloud) and
        extra attrs to store with it (a masker may return extra arrays under ``"arrays"``)."""
        raise NotImplementedError(f"{type(self).__name__} computes nothing per object")


class Source(Backend):
    """A ``data.source``. The defaults read a dataset under ``data.root``."""

    #: It reads files under data.root (else --root is refused as missing).
    needs_root = True
    #: One folder is one category (``--category`` required).
    one_category = False
    #: ``categories`` can list the root's categories (ingest without --category ingests them all).
    lists_categories = False

    def list_objects(self, category: str, data: Any, default_split: str = "test") -> list[dict[str, Any]]:
        raise NotImplementedError

    def categories(self, data: Any) -> set[str] | None:
        """Every category the root holds (for ingest without --category); None: it cannot tell."""
        return None

    def digest(self, row: dict[str, Any]) -> Any:
        """What an object's ingest key hashes besides config and code: its input files' content."""
        from pathlib import Path

        from stages.keys import files_digest

        path = Path(row["path"])
        files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
        return files_digest(files)


class Masker(Backend):
    """A ``segment.mode``: its ``work`` also gets the object's Detections (one mask per box)."""

    def work(self, ctx: Any, object_id: str, det: Any = None) -> tuple[Any, dict[str, Any]]:
        """((B,H,W) masks, extra attrs) for the boxes of ``det``; extra arrays go under ``"arrays"``."""
        raise NotImplementedError(f"{type(self).__name__} computes no masks")


B = TypeVar("B", bound=Backend)


class Registry(Generic[B]):
    """Backends of one kind by name; ``register`` is the one line a new backend adds."""

    def __init__(self, kind: str, setting: str):
        self.kind = kind  # "detector"
        self.setting = setting  # "detect.backend": named in errors
        self._items: dict[str, B] = {}

    def register(self, backend: B) -> B:
        """Add (or replace) a backend under its name; returns it."""
        if not backend.name:
            raise ValueError(f"a {self.kind} backend needs a name")
        self._items[backend.name] = backend
        return backend

    def unregister(self, name: str) -> None:
        """Remove a backend (tests that registered a fake one)."""
        self._items.pop(name, None)

    def get(self, name: str) -> B:
        """The backend called ``name``; KeyError naming the setting and the choices otherwise."""
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(f"{self.setting}: no {self.kind} backend {name!r} (registered: {', '.join(self._items)})") from None

    def __getitem__(self, name: str) -> B:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def names(self) -> tuple[str, ...]:
        return tuple(self._items)

    def values(self) -> list[B]:
        return list(self._items.values())

    def configured(self, cfg: Any) -> B:
        """The backend ``cfg`` selects (the value of :attr:`setting`)."""
        section, field = self.setting.split(".")
        return self.get(getattr(getattr(cfg, section), field))


class TorchModel:
    """Mix-in of a backend that loads a torch model: the stage resolves --device and keys hold
    the resolved precision; on CUDA its tasks need a dask GPU worker."""

    def uses_model(self, cfg: Any) -> bool:
        return True

    def needs_gpu(self, device: str) -> bool:
        return device == "cuda"
