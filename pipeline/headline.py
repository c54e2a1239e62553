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
