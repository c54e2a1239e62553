"""The one in-memory type every reader returns: a normalised, optionally labelled point cloud.

All readers (synthetic, PartNetE, PartNet-Mobility, your own shape files) hand back a `LabelledCloud` so that
`ingest` can treat every source alike. Normalisation follows SPEC §2.1 (centroid, then max norm)
and is done once, here, so that every cached 2D quantity refers to the same frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import BadInputError


@dataclass
class LabelledCloud:
    """A point cloud in the normalised object frame with optional ground-truth labels."""

    object_id: str  # e.g. "Chair/179"
    category: str
    xyz: np.ndarray  # (N,3) float32, normalised (SPEC §2.1)
    rgb: np.ndarray  # (N,3) uint8
    sem: np.ndarray | None  # (N,) int16, 0-based part id or -1; None when unlabelled
    ins: np.ndarray | None  # (N,) int32 instance id or -1
    centre: np.ndarray  # (3,) float64 centroid that was subtracted
    scale: float  # max norm the centred points were divided by
    source: str  # the reader that made it, as data.source names it: "synthetic" | "partnete" | "mobility" | "files"

    @property
    def n_points(self) -> int:
        return int(self.xyz.shape[0])

    def raw_xyz(self) -> np.ndarray:
        """Points back in the file's frame (float64), e.g. for export next to the input."""
        return self.xyz.astype(np.float64) * self.scale + self.centre


def normalise(xyz_raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """SPEC §2.1: subtract the centroid (mean, not bbox centre), divide by the max norm.

    Computed in float64 so that large raw coordinates do not lose precision before the cast.
    Returns (xyz float32, centre float64 (3,), scale float). A zero scale is returned as is;
    `validate_cloud` is what rejects it.
    """
    p = np.asarray(xyz_raw, dtype=np.float64).reshape(-1, 3)
    if p.shape[0] == 0:
        return np.zeros((0, 3), np.float32), np.zeros(3), 0.0
    centre = p.mean(axis=0)
    p = p - centre
    scale = float(np.sqrt((p * p).sum(axis=1)).max())
    if scale > 0 and np.isfinite(scale):
        p = p / scale
    return p.astype(np.float32), centre, scale


def validate_cloud(
    xyz_raw: np.ndarray,
    rgb: np.ndarray | None = None,
    sem: np.ndarray | None = None,
    ins: np.ndarray | None = None,
    *,
    n_parts: int | None = None,
    object_id: str | None = None,
    path: str | Path | None = None,
) -> None:
    """Reject inputs the pipeline cannot process, naming the object and the file.

    Checks: at least one point, (N,3) shape, finite coordinates, not all points identical
    (scale 0), colour/label lengths equal to N, semantic ids within -1..n_parts-1.
    """

    def fail(reason: str) -> None:
        raise BadInputError(reason, object_id=object_id, path=path)

    xyz = np.asarray(xyz_raw)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        fail(f"points must have shape (N, 3), got {xyz.shape}")
    n = xyz.shape[0]
    if n == 0:
        fail("point cloud has zero points")
    finite = np.isfinite(xyz).all(axis=1)
    if not finite.all():
        fail(f"{int((~finite).sum())} of {n} points have NaN/inf coordinates")
    if np.all(xyz == xyz[0]):
        fail("all points are identical (scale 0), cannot normalise")
    if rgb is not None:
        rgb = np.asarray(rgb)
        if rgb.shape != (n, 3):
            fail(f"colours have shape {rgb.shape}, expected ({n}, 3)")
    for name, lab in (("semantic", sem), ("instance", ins)):
        if lab is None:
            continue
        lab = np.asarray(lab)
        if lab.ndim != 1 or lab.shape[0] != n:
            fail(f"{name} labels have shape {lab.shape} but the cloud has {n} points")
        if not np.issubdtype(lab.dtype, np.integer):
            fail(f"{name} labels must be integers, got dtype {lab.dtype}")
        if lab.size and lab.min() < -1:
            fail(f"{name} labels contain {int(lab.min())} (< -1)")
    if sem is not None and n_parts is not None:
        s = np.asarray(sem)
        if s.size and s.max() > n_parts - 1:
            fail(f"semantic label {int(s.max())} out of range -1..{n_parts - 1}")


def make_cloud(
    xyz_raw: np.ndarray,
    rgb: np.ndarray,
    sem: np.ndarray | None,
    ins: np.ndarray | None,
    *,
    object_id: str,
    category: str,
    source: str,
    n_parts: int | None = None,
    path: str | Path | None = None,
) -> LabelledCloud:
    """Validate, normalise and cast to the array conventions (CONTRIBUTING)."""
    validate_cloud(xyz_raw, rgb, sem, ins, n_parts=n_parts, object_id=object_id, path=path)
    xyz, centre, scale = normalise(xyz_raw)
    return LabelledCloud(
        object_id=object_id,
        category=category,
        xyz=xyz,
        rgb=np.ascontiguousarray(rgb, dtype=np.uint8),
        sem=None if sem is None else np.asarray(sem).astype(np.int16),
        ins=None if ins is None else np.asarray(ins).astype(np.int32),
        centre=centre,
        scale=scale,
        source=source,
    )
