"""Detector output for one object and the detector interface (DESIGN §6).

Box order is the global box index b of SPEC §3.4: views in order, then descending score.
That index links boxes, features and masks everywhere downstream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

#: (xyxy (n,4) f32, labels (n,) i16, scores (n,) f32, feats (n,D) f32) for one view.
ViewDetections = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass
class Detections:
    """All boxes of one object, ordered by view then descending score."""

    xyxy: np.ndarray  # (B,4) float32 pixels, (x1, y1, x2, y2)
    view: np.ndarray  # (B,) int16
    label: np.ndarray  # (B,) int16, 0-based part id
    score: np.ndarray  # (B,) float32
    feat: np.ndarray  # (B,D) float32
    simulated: bool = False

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        b = self.xyxy.shape[0]
        self.view = np.asarray(self.view, dtype=np.int16).reshape(-1)
        self.label = np.asarray(self.label, dtype=np.int16).reshape(-1)
        self.score = np.asarray(self.score, dtype=np.float32).reshape(-1)
        self.feat = np.asarray(self.feat, dtype=np.float32)
        if self.feat.ndim != 2:
            raise ValueError(f"feat must be (B,D), got shape {self.feat.shape}")
        for name in ("view", "label", "score"):
            if getattr(self, name).shape[0] != b:
                raise ValueError(f"{name} has {getattr(self, name).shape[0]} rows, xyxy has {b}")
        if self.feat.shape[0] != b:
            raise ValueError(f"feat has {self.feat.shape[0]} rows, xyxy has {b}")
        if b and np.any(np.diff(self.view.astype(np.int64)) < 0):
            raise ValueError("boxes must be ordered by view")

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    @property
    def feat_dim(self) -> int:
        return int(self.feat.shape[1])

    def offsets(self, n_views: int) -> np.ndarray:
        """(V+1,) int64: boxes of view v are ``offsets[v]:offsets[v+1]``."""
        if len(self) and (int(self.view.min()) < 0 or int(self.view.max()) >= n_views):
            raise ValueError(f"box views outside 0..{n_views - 1}")
        return np.searchsorted(self.view.astype(np.int64), np.arange(n_views + 1), side="left").astype(np.int64)

    @staticmethod
    def empty(feat_dim: int, simulated: bool = False) -> Detections:
        return Detections(
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.int16),
            np.zeros(0, np.int16),
            np.zeros(0, np.float32),
            np.zeros((0, feat_dim), np.float32),
            simulated,
        )

    @staticmethod
    def concat(per_view: Sequence[ViewDetections], feat_dim: int, simulated: bool = False) -> Detections:
        """Stack per-view results (list position = view id), sorting each view by descending score.

        Views with zero boxes may be given as arrays with zero rows of any consistent shape.
        """
        xyxy, view, label, score, feat = [], [], [], [], []
        for v, (bx, lb, sc, ft) in enumerate(per_view):
            bx = np.asarray(bx, dtype=np.float32).reshape(-1, 4)
            n = bx.shape[0]
            lb = np.asarray(lb, dtype=np.int16).reshape(n)
            sc = np.asarray(sc, dtype=np.float32).reshape(n)
            ft = np.asarray(ft, dtype=np.float32).reshape(n, feat_dim)
            order = np.argsort(-sc, kind="stable")
            xyxy.append(bx[order])
            label.append(lb[order])
            score.append(sc[order])
            feat.append(ft[order])
            view.append(np.full(n, v, dtype=np.int16))
        if not xyxy:
            return Detections.empty(feat_dim, simulated)
        return Detections(
            np.concatenate(xyxy),
            np.concatenate(view),
            np.concatenate(label),
            np.concatenate(score),
            np.concatenate(feat),
            simulated,
        )


@runtime_checkable
class Detector(Protocol):
    """One open-vocabulary detector backend: image + part names -> boxes of one view."""

    #: True for backends that simulate a detector (must be labelled in logs/reports).
    simulated: bool
    #: Dimension D of the per-box feature.
    feat_dim: int

    def detect_view(self, image: np.ndarray, part_names: Sequence[str], view: int) -> ViewDetections:
        """image (H,W,3) uint8 RGB -> (xyxy (n,4) f32, labels (n,) i16, scores (n,) f32, feats (n,D) f32)."""
        ...


def detect_object(detector: Detector, images: np.ndarray, part_names: Sequence[str]) -> Detections:
    """Run ``detector`` on every view of one object (images (V,H,W,3) uint8)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (V,H,W,3), got {images.shape}")
    per_view = [detector.detect_view(images[v], part_names, v) for v in range(images.shape[0])]
    return Detections.concat(per_view, detector.feat_dim, simulated=bool(detector.simulated))


def clip_boxes(xyxy: np.ndarray, height: int, width: int) -> np.ndarray:
    """Clip xyxy boxes to the image rectangle [0,W]x[0,H] (continuous pixel coordinates)."""
    out = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4).copy()
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height)
    return out
