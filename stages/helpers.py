"""Small helpers more than one stage needs (stages never import each other)."""

from __future__ import annotations

import zlib
from typing import Any


def cameras_from_config(render: Any):
    """The cameras of the render section (SPEC §2.2)."""
    from pipeline.cameras import make_cameras

    return make_cameras(
        views=[tuple(v) for v in render.views], distance=render.distance, fov_deg=render.fov_deg, image_size=render.image_size
    )


def object_seed(base: int, object_id: str) -> int:
    """A per-object seed that does not depend on processing order."""
    return (int(base) * 1_000_003 + zlib.crc32(object_id.encode())) % (2**31)
