"""Cache keys that cannot go stale: config + code + inputs + upstream keys, per object.

An object's key in stage S is the hash of
- the object id (different objects never share a key),
- the key-relevant fields of the config sections S reads (:data:`STAGES`, derived from the
  stage table, stages/stage_table.py),
- a **code hash** of the source of every project module S can import (found by walking the
  import statements of ``stages/<S>.py`` through ``pipeline``/``stages``; nothing to bump by
  hand), leaving out the plumbing modules that cannot change a result (:data:`PLUMBING`),
- the current keys of the object in S's upstream stages,
- stage extras: for ingest the content hash of the input files, for evaluate the hash of
  the trained weights.

:class:`KeyResolver` computes the key a stage *would* write now and checks every upstream
result it depends on, recursively: an upstream object whose stored key differs from the
key its own config, code and upstreams give now is **stale** (someone changed its settings
or code and did not re-run it), and the object fails with a message naming the stage to
re-run, instead of silently mixing old and new data. import-partstad keys the six stores it
writes with the same resolver (:meth:`KeyResolver.keys_written_together`, its own code hash).
Roots (ingest, imported objects) are trusted as stored: re-running ingest is what re-reads
the input files. Every upstream result must also say it belongs to this object, and the
counts its arrays give (points, views, boxes: :func:`stages.object_digest.counts_of`) must
agree across the object's upstream results, so a result made from another object's arrays
fails instead of being mixed in.
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pipeline.errors import BadInputError, MissingUpstreamError, ObjectError
from stages.object_digest import COUNTS_ATTR
from stages.stage_table import ROWS, TABLE

REPO_ROOT = Path(__file__).resolve().parent.parent
PROJECT_PACKAGES = ("pipeline", "stages")
#: Modules that move data around without changing any value a stage computes.
PLUMBING = frozenset(
    {
        "stages",
        "pipeline",
        "stages.cli",
        "stages.common",
        "stages.runner",
        "stages.scheduling",
        "stages.store",
        "stages.config",
        "stages.keys",
        "stages.locking",
        "stages.stage_table",
        "pipeline.errors",
    }
)
ORIGIN_ATTR = "origin"
UPSTREAM_ATTR = "upstream_keys"


class StaleUpstreamError(ObjectError):
    """An upstream result was computed with other settings, code or inputs than now."""


@dataclass(frozen=True)
class StageSpec:
    """What one per-object stage reads: upstream stages and config sections."""

    upstream: tuple[str, ...]
    sections: tuple[str, ...]


#: The per-object stages, their upstream stages and the config sections that shape results
#: (derived from the stage table, stages/stage_table.py).
STAGES: dict[str, StageSpec] = {r.name: StageSpec(r.upstream, r.sections) for r in TABLE if r.scope == "object"}


def _module_file(name: str) -> Path | None:
    base = REPO_ROOT.joinpath(*name.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _imports(name: str, path: Path) -> set[str]:
    """Project modules named by any import statement of a module (function-level ones too)."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)  # `from pkg import module`
    return {m for m in found if m.split(".")[0] in PROJECT_PACKAGES and _module_file(m) is not None}


@cache
def module_closure(root: str) -> tuple[str, ...]:
    """Every project module reachable from ``root`` by imports, plumbing left out."""
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in PLUMBING and name != root:  # plumbing is not followed (its values are hashed via the config)
            continue
        path = _module_file(name)
        if path is not None:
            todo.extend(_imports(name, path) - seen)
        parent = name.rsplit(".", 1)[0]  # importing a.b.c runs a/b/__init__.py too
        if "." in name and parent not in seen:
            todo.append(parent)
    return tuple(sorted(m for m in seen if m not in PLUMBING))


@cache
def code_hash(stage: str) -> str:
    """Hash of the source of the modules a stage runs (its stage-table module and its imports)."""
    h = hashlib.sha256()
    for name in module_closure(ROWS[stage].module if stage in ROWS else f"stages.{stage}"):
        path = _module_file(name)
        assert path is not None
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def files_digest(paths: list[Path]) -> str:
    """Content hash of input files (sorted by path); a missing file hashes as missing."""
    h = hashlib.sha256()
    for p in sorted(Path(x) for x in paths):
        h.update(str(p).encode() + b"\0")
        if p.is_file():
            with p.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        else:
            h.update(b"<missing>")
    return h.hexdigest()[:20]


def object_key(
    stage: str, object_id: str, section_view: Mapping[str, Any], code: str, upstream: Mapping[str, str], extra: Any = None
) -> str:
    """The key of one object's result in one stage."""
    return digest(
        {
            "stage": stage,
            "object": object_id,
            "config": section_view,
            "code": code,
            "upstream": dict(sorted(upstream.items())),
            "extra": extra,
        }
    )


class KeyResolver:
    """Current keys of objects, verified along the chain of upstream stages.

    ``section_view(stage)`` returns the key-relevant config of a stage, ``store(stage)`` its
    CategoryStore, ``extra(stage, object_id)`` any stage extra (evaluate: weights hash) and
    ``code(stage)`` the code hash of what computes the stage (default :func:`code_hash`;
    import-partstad: its own module for every store it writes).
    """

    def __init__(
        self,
        section_view: Callable[[str], Any],
        store: Callable[[str], Any],
        extra: Callable[[str, str], Any] | None = None,
        code: Callable[[str], str] = code_hash,
    ):
        self._view = section_view
        self._store = store
        self._extra = extra or (lambda stage, oid: None)
        self._code = code
        self._memo: dict[tuple[str, str], str] = {}
        self._counts: dict[str, dict[str, tuple[int, str]]] = {}  # object -> count -> (value, stage)

    @staticmethod
    def upstream_of(stage: str) -> list[str]:
        return list(STAGES[stage].upstream)

    def key(self, stage: str, object_id: str) -> str:
        """The key ``stage`` would write for ``object_id`` now (its upstreams verified)."""
        ups = {u: self.current(u, object_id) for u in STAGES[stage].upstream}
        return object_key(stage, object_id, self._view(stage), self._code(stage), ups, self._extra(stage, object_id))

    def keys_written_together(self, stages: list[str], object_id: str) -> dict[str, str]:
        """Keys of results one command writes at once (import-partstad writes six stores per
        object): an upstream in ``stages`` takes the key computed here, not a stored one."""
        unknown = set(stages) - set(STAGES)
        if unknown:
            raise KeyError(f"not per-object stages: {sorted(unknown)}")
        out: dict[str, str] = {}
        for stage in (s for s in STAGES if s in stages):  # upstream before downstream
            ups = {u: out[u] if u in out else self.current(u, object_id) for u in STAGES[stage].upstream}
            out[stage] = object_key(stage, object_id, self._view(stage), self._code(stage), ups, self._extra(stage, object_id))
        return out

    def current(self, stage: str, object_id: str) -> str:
        """The stored key of an upstream result, after checking it is up to date."""
        memo = (stage, object_id)
        if memo in self._memo:
            return self._memo[memo]
        store = self._store(stage)
        fp = store.stored_fingerprint(object_id)
        if fp is None:
            try:  # an unreadable group gets the store's precise error (object and file)
                store.attrs(object_id)
            except BadInputError:
                raise
            except ObjectError:
                pass
            raise MissingUpstreamError(
                f"upstream stage {stage!r} has no complete result (run `partstad {stage}` first)", object_id=object_id, path=store.url
            )
        attrs = store.attrs(object_id)
        recorded = attrs.get(UPSTREAM_ATTR)
        if STAGES[stage].upstream and attrs.get(ORIGIN_ATTR) != "import":  # roots (ingest) are trusted as stored
            expected = self.key(stage, object_id)
            if fp != expected:
                raise StaleUpstreamError(
                    f"the {stage} result is out of date (its settings, code or inputs changed since it was computed): "
                    f"run `partstad {stage}` first",
                    object_id=object_id,
                    path=store.path(object_id),
                )
        elif isinstance(recorded, dict):  # roots: at least their own upstream chain must agree
            for up, up_key in recorded.items():
                if self.current(up, object_id) != up_key:
                    raise StaleUpstreamError(
                        f"the {stage} result was made from another {up} result: run `partstad {stage}` first",
                        object_id=object_id,
                        path=store.path(object_id),
                    )
        self._check_belongs(stage, object_id, attrs, store.path(object_id))
        self._memo[memo] = fp
        return fp

    def _check_belongs(self, stage: str, object_id: str, attrs: Mapping[str, Any], where: str) -> None:
        """The result names this object, and its counts agree with the object's other upstream results."""
        if attrs.get("object_id", object_id) != object_id:
            raise BadInputError(
                f"the {stage} result holds object {attrs.get('object_id')!r}: run `partstad {stage}` again", object_id=object_id, path=where
            )
        seen = self._counts.setdefault(object_id, {})
        counts = attrs.get(COUNTS_ATTR)
        for name, value in counts.items() if isinstance(counts, dict) else ():
            if name in seen and seen[name][0] != value:
                raise BadInputError(
                    f"the {stage} result has {value} {name} but the {seen[name][1]} result has {seen[name][0]} "
                    f"(arrays of another object?): run `partstad {stage}` again",
                    object_id=object_id,
                    path=where,
                )
            seen.setdefault(name, (value, stage))
