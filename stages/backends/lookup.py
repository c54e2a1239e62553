"""Find a registry by kind, for the plumbing that serves every stage (config validation, the
key builder, doctor).

Kept apart from :mod:`stages.backends.base` on purpose: a stage's code hash (stages/keys.py)
follows every import, so a stage importing only its own registry must not reach the others
(a change to a detector must not make every ingest result stale).
"""

from __future__ import annotations

from typing import Any

from stages.backends.base import Backend, Registry

#: Per-object stages that run a registered backend -> its registry.
STAGE_REGISTRY = {"ingest": "sources", "detect": "detectors", "segment": "maskers"}


def stage_backend(stage: str, cfg: Any) -> Backend | None:
    """The backend ``stage`` runs under ``cfg`` (None for stages without backends)."""
    kind = STAGE_REGISTRY.get(stage)
    return registry(kind).configured(cfg) if kind else None


def check_name(kind: str, value: str) -> str:
    """Config validator: ``value`` names a registered backend of ``kind`` (detectors, maskers, sources)."""
    reg = registry(kind)
    if value not in reg:
        raise ValueError(f"Input should be one of {', '.join(repr(n) for n in reg.names())} (the registered {reg.kind} backends)")
    return value


def registry(kind: str) -> Registry[Any]:
    """The registry of ``kind`` (imported here, lazily: the registries import stage helpers that import the config)."""
    if kind == "detectors":
        from stages.backends.detectors import DETECTORS

        return DETECTORS
    if kind == "maskers":
        from stages.backends.maskers import MASKERS

        return MASKERS
    if kind == "sources":
        from stages.backends.sources import SOURCES

        return SOURCES
    raise ValueError(f"no backend registry {kind!r}")
