"""Looking at geometry results: contact sheets of the 10 views, superpoint colourings.

Used by tests, the benchmark and the report to check renders by eye (upright, centred,
all views) and to show superpoint partitions. Images are plain uint8 arrays; PNGs are
written with matplotlib (no extra dependency).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.cameras import Cameras, make_cameras, resize_cameras


def _font_5x7() -> dict[str, np.ndarray]:
    """A tiny bitmap font (digits, a few letters) for titles without any font files."""
    glyphs = {
        "0": "01110 10001 10011 10101 11001 10001 01110",
        "1": "00100 01100 00100 00100 00100 00100 01110",
        "2": "01110 10001 00001 00010 00100 01000 11111",
        "3": "11110 00001 00001 01110 00001 00001 11110",
        "4": "00010 00110 01010 10010 11111 00010 00010",
        "5": "11111 10000 11110 00001 00001 10001 01110",
        "6": "00110 01000 10000 11110 10001 10001 01110",
        "7": "11111 00001 00010 00100 01000 01000 01000",
        "8": "01110 10001 10001 01110 10001 10001 01110",
        "9": "01110 10001 10001 01111 00001 00010 01100",
        "-": "00000 00000 00000 11111 00000 00000 00000",
        ",": "00000 00000 00000 00000 00110 00100 01000",
        "(": "00010 00100 01000 01000 01000 00100 00010",
        ")": "01000 00100 00010 00010 00010 00100 01000",
        " ": "00000 00000 00000 00000 00000 00000 00000",
        ".": "00000 00000 00000 00000 00000 01100 01100",
        "v": "00000 00000 10001 10001 10001 01010 00100",
        "e": "00000 00000 01110 10001 11111 10000 01110",
        "a": "00000 00000 01110 00001 01111 10001 01111",
        "z": "00000 00000 11111 00010 00100 01000 11111",
        ":": "00000 01100 01100 00000 01100 01100 00000",
        "/": "00001 00010 00010 00100 01000 01000 10000",
    }
    return {k: np.array([[c == "1" for c in row] for row in v.split()], dtype=bool) for k, v in glyphs.items()}


_FONT = _font_5x7()


def _draw_text(img: np.ndarray, text: str, x: int, y: int, scale: int = 2) -> None:
    """Black text (unknown characters skipped) drawn in place at (x, y) top-left."""
    for ch in text:
        g = _FONT.get(ch) if ch in _FONT else _FONT.get(ch.lower())
        if g is None:
            x += 6 * scale
            continue
        big = np.kron(g, np.ones((scale, scale), dtype=bool))
        h, w = big.shape
        sub = img[y : y + h, x : x + w]
        sub[big[: sub.shape[0], : sub.shape[1]]] = 0
        x += 6 * scale


def contact_sheet(images: np.ndarray, titles: list[str] | None = None, cols: int = 5, pad: int = 4) -> np.ndarray:
    """Tile (V,H,W,3) uint8 images into one (h,w,3) uint8 sheet, row-major, grey gaps.

    Titles (e.g. "0 (10,0)") are drawn in a small bitmap font above each tile.
    """
    imgs = np.asarray(images)
    if imgs.ndim != 4 or imgs.shape[-1] != 3:
        raise ValueError(f"images must be (V,H,W,3), got {imgs.shape}")
    v, h, w, _ = imgs.shape
    cols = max(1, min(int(cols), max(v, 1)))
    rows = max(1, -(-v // cols))
    th = 18 if titles else 0
    sheet = np.full((rows * (h + th + pad) + pad, cols * (w + pad) + pad, 3), 160, np.uint8)
    for i in range(v):
        r, c = divmod(i, cols)
        y0 = pad + r * (h + th + pad)
        x0 = pad + c * (w + pad)
        if titles:
            sheet[y0 : y0 + th, x0 : x0 + w] = 255
            _draw_text(sheet, str(titles[i]), x0 + 2, y0 + 2)
        sheet[y0 + th : y0 + th + h, x0 : x0 + w] = imgs[i].astype(np.uint8)
    return sheet


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an (h,w,3) uint8 image as PNG (creates parent folders)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(p, np.ascontiguousarray(np.asarray(image, dtype=np.uint8)))
    return p


def superpoint_colours(sp: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N,3) uint8 random but reproducible colour per superpoint id (never near-white)."""
    sp = np.asarray(sp, dtype=np.int64)
    n_sp = int(sp.max()) + 1 if sp.size else 0
    rng = np.random.default_rng(seed)
    palette = rng.integers(30, 226, size=(max(n_sp, 1), 3), dtype=np.int64).astype(np.uint8)
    return palette[sp] if sp.size else np.zeros((0, 3), np.uint8)


def view_titles(cameras: Cameras) -> list[str]:
    return [f"{i} ({e:g},{a:g})" for i, (e, a) in enumerate(cameras.views)]


def render_superpoint_sheet(
    xyz: np.ndarray, sp: np.ndarray, cameras: Cameras | None = None, image_size: int = 200, cols: int = 5, seed: int = 0
) -> np.ndarray:
    """Contact sheet of the cloud coloured by superpoint, numpy splat at reduced size.

    The given cameras (default: the paper's) are resized to ``image_size`` pixels; points
    use the paper's 0.005 NDC radius, at least 1 px so small renders stay solid.
    """
    from pipeline.render.render import default_radius_px, render_views

    small = resize_cameras(cameras if cameras is not None else make_cameras(), image_size)
    radius = max(default_radius_px(small.image_size), 1.0)
    res = render_views(xyz, superpoint_colours(sp, seed), small, radius_px=radius, backend="numpy")
    return contact_sheet(res.rgb, titles=view_titles(small), cols=cols)
