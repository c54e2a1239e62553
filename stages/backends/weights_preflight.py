"""The preflight every model backend shares: its configured weights resolve, exist and load,
or the command stops with one exit-2 line naming the setting before the cache is touched."""

from __future__ import annotations

from typing import Any


def preflight_weights(
    setting: str,
    value: Any,
    resolve: Any,
    kind: str,
    hint: str,
    load: Any,
    what: str,
) -> Any:
    """The shared preflight of a model backend: resolve ``value``, check it is a ``kind``
    ("directory" or "file") and that ``load(path)`` succeeds; any failure is one exit-2 line
    naming ``setting`` (the cache is not touched). Returns the resolved path.

    ``resolve()`` returns the resolved weights (``.path``) or None, raising
    ``WeightsNotFound`` for an id missing from the local caches.
    """
    from stages.common import ParamsError
    from stages.weights_resolve import WeightsNotFound

    try:
        resolved = resolve()
    except WeightsNotFound as exc:
        raise ParamsError(str(exc)) from None
    path = resolved.path if resolved else None
    ok = path is not None and (path.is_dir() if kind == "directory" else path.is_file())
    if not ok:
        raise ParamsError(f"{setting}: {value!r} is not a {kind}; {hint}")
    try:
        load(path)
    except Exception as exc:  # noqa: BLE001 - any load failure (truncated, wrong type, pickle) means unusable weights
        raise ParamsError(f"{setting}: cannot load {what} from {path} ({type(exc).__name__}: {exc})") from None
    return path
