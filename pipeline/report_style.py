"""One colour per method for every figure (report, training curves, benchmark plots).

Defined once so PartSLIP and PartSTAD never swap colours between two figures: every plot
asks :func:`method_colour` with a method key or its display name.
"""

from __future__ import annotations

METHOD_COLOURS: dict[str, str] = {
    "partslip": "#888888",
    "partstad": "#4477aa",
    "masks_only": "#ee6677",
    "partstad_boxes": "#228833",
    "auto": "#aa3377",
    "ground_truth": "#333333",
}
"""Method key -> hex colour (Paul Tol's colour-blind-safe set; PartSLIP neutral grey)."""

METHOD_NAMES: dict[str, str] = {
    "PartSLIP": "partslip",
    "PartSTAD": "partstad",
    "w/o weights": "masks_only",
    "w/o SAM": "partstad_boxes",
    "ground truth": "ground_truth",
}
"""Display names used in the benchmark plots -> method key."""

OTHER_COLOURS = ("#ccbb44", "#66ccee", "#bbbbbb", "#000000")
"""Series that are no method of the pipeline (e.g. benchmark set-ups), in order."""


def method_colour(name: str, fallback_index: int = 0) -> str:
    """Hex colour of a method key or display name; others cycle through ``OTHER_COLOURS``."""
    key = METHOD_NAMES.get(name, name)
    return METHOD_COLOURS.get(key) or OTHER_COLOURS[fallback_index % len(OTHER_COLOURS)]
