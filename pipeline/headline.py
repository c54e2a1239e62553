"""The headline numbers DVC shows: mIoU and mAP50 per method, one small file per category.

Why a separate file: ``dvc metrics show`` prints one row per metrics file and one column per
flattened key (the union over files). The full per-category results (per-part IoU/AP50,
provenance, the auto choice) made 267 columns and lines of ~10,000 characters. The headline
files hold one metric each, keyed by method only, so every file has the same five keys:
``metrics/headline/mIoU/<Category>.json`` = ``{"partslip": 58.9, "partstad": 63.2, ...}``
(and ``mAP50`` alike; ``mean.json`` is the mean over categories). ``dvc metrics show`` is
then one row per (metric, category) and one column per method, about 100 characters wide.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: the methods of the headline, in the order of the report; the only keys a headline file holds
HEADLINE_METHODS: tuple[str, ...] = ("partslip", "partstad", "masks_only", "partstad_boxes", "auto")
#: headline metric name (directory under metrics/headline/) -> key in a method's full metrics
HEADLINE_METRICS: dict[str, str] = {"mIoU": "miou", "mAP50": "map50"}
#: decimals kept: percent to 0.1 is what the paper reports and keeps the columns narrow
DECIMALS = 1


def _rounded(value: Any) -> float | None:
    """A finite number rounded for display, else None (missing, NaN, not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return round(float(value), DECIMALS)


def headline(methods: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """``{metric: {method: value}}`` from a ``{method: {"miou": x, "map50": y, ...}}`` mapping.

    A method without a finite value is left out (``dvc metrics show`` prints ``-``), so
    incomplete results never add columns beyond :data:`HEADLINE_METHODS`.
    """
    out: dict[str, dict[str, float]] = {}
    for name, key in HEADLINE_METRICS.items():
        row: dict[str, float] = {}
        for method in HEADLINE_METHODS:
            entry = methods.get(method)
            value = _rounded(entry.get(key)) if isinstance(entry, Mapping) else None
            if value is not None:
                row[method] = value
        out[name] = row
    return out


def headline_paths(category: str) -> dict[str, str]:
    """Relative paths (under the metrics root) of a category's headline files, per metric."""
    return {name: f"headline/{name}/{category}.json" for name in HEADLINE_METRICS}


#: column titles of the methods (as in the report and the README table)
METHOD_TITLES: dict[str, str] = {
    "partslip": "PartSLIP",
    "partstad": "PartSTAD",
    "masks_only": "w/o weights",
    "partstad_boxes": "w/o SAM",
    "auto": "auto",
}


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return "-" if value is None else str(value)


def experiments_table(
    records: list[Mapping[str, Any]], param_sections: set[str], metric: str = "mIoU", category: str = "mean"
) -> list[list[str]]:
    """``dvc exp show`` reduced to what fits a terminal: one row per experiment with the
    params that differ between the rows (``key=value`` where a row differs from the first
    baseline) and the headline ``metric`` of ``category`` per method.

    ``records`` are ``dvc.api.exp_show()`` rows (flattened columns: ``<metrics file>:<key>``,
    params by dotted name, deps by path); ``param_sections`` the top-level keys of params.yaml,
    which tell a param column from a dependency's hash column. Returns the header and rows.
    """
    prefix = f"metrics/headline/{metric}/{category}.json:"
    params = sorted(k for k in {k for r in records for k in r} if ":" not in k and k.split(".", 1)[0] in param_sections)
    changed = [k for k in params if len({repr(r.get(k)) for r in records}) > 1]
    # the commit's row (DVC marks the workspace "baseline" too); experiments differ from it
    base = next((r for r in records if r.get("typ") == "baseline" and r.get("rev") != "workspace"), records[0] if records else {})
    if not any(prefix + m in r for r in records for m in HEADLINE_METHODS):
        prefix = ""  # a repository with one metrics file: DVC drops the file from the column names
    header = ["experiment", "created", "changed params", *(METHOD_TITLES[m] for m in HEADLINE_METHODS)]
    out = [header]
    for r in records:
        name = r.get("Experiment") or r.get("rev") or "-"
        if r.get("typ") not in ("workspace", "baseline"):
            name = f"  {name}"
        diff = " ".join(f"{k}={_shown(r.get(k))}" for k in changed if r is not base and r.get(k) != base.get(k))
        values = [r.get(prefix + m) for m in HEADLINE_METHODS]
        shown = [f"{v:.{DECIMALS}f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "-" for v in values]
        out.append([str(name), _shown(r.get("Created")), diff or "-", *shown])
    return out


def format_table(rows: list[list[str]]) -> str:
    """Left-aligned text columns separated by two spaces (no trailing blanks)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)
