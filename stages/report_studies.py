"""The benchmark studies the report shows at its end ("Benchmark studies (simulated)"):
their Markdown pages and figures under docs/. One list, read by the report and by the
stage table (they are the report's DVC deps, so regenerating a study re-runs the report)."""

from __future__ import annotations

#: Markdown pages, in the order the report shows them
STUDY_FILES: tuple[str, ...] = (
    "seed_study.md",
    "pixel_simulators.md",
    "beyond_paper.md",
    "beyond_paper_views.md",
    "simulated_calibration.md",
)
#: figures those pages embed
STUDY_IMAGES: tuple[str, ...] = ("beyond_shared.png", "beyond_kshot.png", "beyond_views.png")
