"""Minimal stand-in for the torchvision functions that ``segment_anything`` imports.

Why: ``import segment_anything`` imports ``torchvision.transforms.functional.{resize,
to_pil_image}`` and ``torchvision.ops.boxes.{batched_nms, box_area}``, but no CPU build of
torchvision is installable in this environment (STACK §6). The shim is put into
``sys.modules`` only when the real torchvision cannot be imported.

Import-order pitfall (STACK §11, pitfall 8): transformers probes torchvision with
``importlib.util.find_spec`` and crashes on a fake module without a spec. ``install()``
therefore imports transformers first (when available), which caches "torchvision absent".
"""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence

import numpy as np
import torch

_SHIM_ATTR = "__partstad_torchvision_shim__"


def _to_pil_image(pic, mode=None):
    """numpy HWC/HW or torch CHW/HW array -> PIL image (uint8 data only, like SAM uses it)."""
    from PIL import Image

    if isinstance(pic, torch.Tensor):
        arr = pic.detach().cpu()
        if arr.ndim == 3:
            arr = arr.permute(1, 2, 0)
        if arr.is_floating_point():
            arr = (arr * 255).clamp(0, 255).to(torch.uint8)
        arr = arr.numpy()
    else:
        arr = np.asarray(pic)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.dtype != np.uint8:
        raise TypeError(f"torchvision shim: to_pil_image expects uint8 data, got {arr.dtype}")
    return Image.fromarray(np.ascontiguousarray(arr), mode=mode)


def _resize(img, size: Sequence[int] | int, interpolation=None, max_size=None, antialias=True):
    """Resize a PIL image to ``size`` = (h, w) with bilinear filtering (torchvision's PIL path)."""
    from PIL import Image

    if not isinstance(img, Image.Image):
        raise TypeError("torchvision shim: resize supports PIL images only")
    if isinstance(size, int) or len(size) == 1:
        s = size if isinstance(size, int) else size[0]
        w, h = img.size
        if w <= h:
            new_w, new_h = s, int(s * h / w)
        else:
            new_w, new_h = int(s * w / h), s
    else:
        new_h, new_w = int(size[0]), int(size[1])
    return img.resize((new_w, new_h), Image.Resampling.BILINEAR)


def _box_area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS, indices sorted by decreasing score (torchvision semantics)."""
    from pipeline.detect.nms import nms_torch

    return nms_torch(boxes, scores, iou_threshold)


def _batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    from pipeline.detect.nms import batched_nms_torch

    return batched_nms_torch(boxes, scores, idxs, iou_threshold)


def _module(name: str, **attrs: object) -> types.ModuleType:
    """A fake module ``name`` holding ``attrs``, marked as the shim's (setattr: ModuleType has no fields)."""
    mod = types.ModuleType(name)
    for key, value in attrs.items():
        setattr(mod, key, value)
    setattr(mod, _SHIM_ATTR, True)
    return mod


def is_installed() -> bool:
    """True when the fake torchvision is the one in ``sys.modules``."""
    mod = sys.modules.get("torchvision")
    return mod is not None and getattr(mod, _SHIM_ATTR, False)


def install() -> bool:
    """Make ``import segment_anything`` work. Idempotent.

    Returns True when the shim is (now or already) installed, False when the real
    torchvision is importable and nothing was done.
    """
    if is_installed():
        return True
    try:  # pitfall 8: let transformers cache "no torchvision" before the fake appears
        import transformers  # noqa: F401
    except ImportError:
        pass
    try:
        import torchvision  # noqa: F401

        return False
    except Exception:  # ImportError, or RuntimeError from a CUDA-only build
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]

    functional = _module("torchvision.transforms.functional", resize=_resize, to_pil_image=_to_pil_image)
    boxes = _module("torchvision.ops.boxes", batched_nms=_batched_nms, nms=_nms, box_area=_box_area)
    ops = _module("torchvision.ops", boxes=boxes, batched_nms=_batched_nms, nms=_nms, box_area=_box_area)
    transforms = _module("torchvision.transforms", functional=functional)
    tv = _module("torchvision", transforms=transforms, ops=ops, __version__="0.0.0+partstad-shim")
    sys.modules.update(
        {
            "torchvision": tv,
            "torchvision.transforms": transforms,
            "torchvision.transforms.functional": functional,
            "torchvision.ops": ops,
            "torchvision.ops.boxes": boxes,
        }
    )
    return True
