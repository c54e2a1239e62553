"""Open a generated HTML file in the system's headless Chromium (Debian package `chromium`).

Driven by Playwright's Python package with ``executable_path`` set to that browser: a browser
downloaded by ``playwright install`` is not reachable on the project's machines. ``./dev.sh
test`` installs Chromium and sets ``PARTSTAD_REQUIRE_BROWSER=1``; without it (and without a
Chromium) the browser tests are skipped with the reason, never silently passed.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CHROMIUM = Path(os.environ.get("PARTSTAD_CHROMIUM", "/usr/bin/chromium"))
#: Headless, no GPU (WebGL through SwiftShader), and none of Chromium's background
#: connections (the machines' network is closed; they would only add console noise).
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_browser() -> None:
    """Skip (or fail, where ./dev.sh promised a browser) when Chromium is missing."""
    if CHROMIUM.exists():
        return
    reason = f"no Chromium at {CHROMIUM} (./dev.sh test installs Debian's chromium; or set PARTSTAD_CHROMIUM)"
    if os.environ.get("PARTSTAD_REQUIRE_BROWSER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass
class Opened:
    """A loaded page and everything it said while loading."""

    page: Any
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


@contextmanager
def open_page(path: Path, width: int = 1400, height: int = 1000) -> Iterator[Opened]:
    """Load ``path`` (a file URL) and record console errors, uncaught errors and every request."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            opened = Opened(page)
            page.on("console", lambda m: opened.console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: opened.page_errors.append(str(e)))
            page.on("request", lambda r: opened.requests.append(r.url))
            page.goto(path.resolve().as_uri(), wait_until="load")
            yield opened
        finally:
            browser.close()


def painted_pixels(png: bytes) -> int:
    """Pixels of a screenshot that are drawn on the white page: coloured, or grey
    (points labelled "none"); anti-aliased near-white edges do not count."""
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    return int((rgb.min(axis=2) < 225).sum())
