"""A SYNTHETIC rendered object at array level (pix2pt, sem, ins, rgb) for tests and benchmarks.

Why: the oracle detector/segmenter and the SAM wrapper need a plausible ``pix2pt`` without a
renderer. Each view shows an elliptic silhouette (unlabelled body points) with part instances
drawn on top as rectangles or ellipses (later ones occlude earlier ones). Instances keep their
identity and label across views; their position and size change per view, and some are
hidden in some views.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SyntheticScene:
    pix2pt: np.ndarray  # (V,H,W) int32, -1 background
    sem: np.ndarray  # (N,) int16
    ins: np.ndarray  # (N,) int32
    rgb: np.ndarray  # (V,H,W,3) uint8
    part_names: tuple[str, ...]


def synthetic_scene(
    n_views: int = 10,
    height: int = 128,
    width: int = 128,
    part_names: tuple[str, ...] = ("arm", "back", "leg"),
    instances_per_part: tuple[int, int] = (1, 3),
    part_size: tuple[float, float] = (0.12, 0.4),
    hide_prob: float = 0.15,
    off_center: float = 0.0,
    pool_size: int = 64,
    seed: int = 0,
) -> SyntheticScene:
    """Build one synthetic object.

    part_size: range of instance box sides as fractions of the silhouette box sides.
    off_center: maximum shift of the silhouette centre as a fraction of the image size
    (values > 0.1 make silhouettes and boxes cross the image border).
    """
    rng = np.random.default_rng(seed)
    K = len(part_names)
    n_per = rng.integers(instances_per_part[0], instances_per_part[1] + 1, size=K)
    inst_label = np.repeat(np.arange(K), n_per)
    rng.shuffle(inst_label)
    n_inst = inst_label.shape[0]
    body_pool = 4 * pool_size
    n_points = body_pool + n_inst * pool_size
    sem = np.full(n_points, -1, np.int16)
    ins = np.full(n_points, -1, np.int32)
    for i, lab in enumerate(inst_label):
        s = body_pool + i * pool_size
        sem[s : s + pool_size] = lab
        ins[s : s + pool_size] = i
    colours = rng.integers(40, 255, size=(K + 1, 3))

    rr, cc = np.mgrid[0:height, 0:width]
    lin = rr * width + cc
    pix2pt = np.full((n_views, height, width), -1, np.int32)
    rgb = np.zeros((n_views, height, width, 3), np.uint8)
    for v in range(n_views):
        cy = height / 2 + rng.uniform(-off_center, off_center) * height
        cx = width / 2 + rng.uniform(-off_center, off_center) * width
        ry = rng.uniform(0.3, 0.45) * height
        rx = rng.uniform(0.3, 0.45) * width
        sil = ((rr + 0.5 - cy) / ry) ** 2 + ((cc + 0.5 - cx) / rx) ** 2 <= 1.0
        owner = np.where(sil, -1, -2)  # -2 background, -1 body, i >= 0 instance
        for i in range(n_inst):
            if rng.random() < hide_prob:
                continue
            h = rng.uniform(*part_size) * 2 * ry
            w = rng.uniform(*part_size) * 2 * rx
            py = rng.uniform(cy - ry * 0.7, cy + ry * 0.7)
            px = rng.uniform(cx - rx * 0.7, cx + rx * 0.7)
            if rng.random() < 0.5:
                shape = (np.abs(rr + 0.5 - py) <= h / 2) & (np.abs(cc + 0.5 - px) <= w / 2)
            else:
                shape = ((rr + 0.5 - py) / (h / 2)) ** 2 + ((cc + 0.5 - px) / (w / 2)) ** 2 <= 1.0
            owner = np.where(shape & sil, i, owner)
        body = owner == -1
        part = owner >= 0
        pix2pt[v][body] = (lin[body] % body_pool).astype(np.int32)
        pix2pt[v][part] = (body_pool + owner[part] * pool_size + lin[part] % pool_size).astype(np.int32)
        col_idx = np.where(part, inst_label[np.maximum(owner, 0)] + 1, 0)
        img = colours[col_idx] + rng.integers(-20, 21, size=(height, width, 3))
        img[~sil] = 255
        rgb[v] = np.clip(img, 0, 255).astype(np.uint8)
    return SyntheticScene(pix2pt=pix2pt, sem=sem, ins=ins, rgb=rgb, part_names=tuple(part_names))
