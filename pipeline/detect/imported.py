"""``import`` backend: read one object of the original PartSTAD preprocessing cache (SPEC §9).

Layout under ``save_dir`` (C = category, <id> = object id):
  rendered_pc/C/<id>/rendered_img/{v}.png            RGBA PNG, alpha dropped
  rendered_pc/C/<id>/img_meta/pc_idx.npy             (V,H,W) int64, -1 background
  rendered_pc/C/<id>/img_meta/screen_coords.npy      (V,N,2) float32
  rendered_pc/C/<id>/superpoint.npy                  pickled lists (restricted unpickler)
  glip_preprocess/C/<id>/glip_pred/pred.json         [{image_id, category_id (1-based), bbox xywh, score}]
  glip_preprocess/C/<id>/glip_pred/glip_feature.npz  feature (B,256) float32
  sam_preprocess/C/<id>/sam_mask.npz                 mask (B,H,W) float64 0/1
H and W are read from the files (800 in the original). Every problem raises BadInputError
naming the object and the file. The SAM masks are converted to bool in chunks of boxes, so a
float64 stack of B x 5 MB is never held in memory at once.
"""

from __future__ import annotations

import json
import math
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.lib.format as npformat

from pipeline.data.safe_pickle import load_superpoint_npy
from pipeline.errors import BadInputError, ObjectError
from pipeline.meta import part_names

from .types import Detections


@dataclass
class ImportedObject:
    """Everything PartSTAD's preprocessing produced for one object, in pipeline conventions."""

    rgb: np.ndarray  # (V,H,W,3) uint8
    pix2pt: np.ndarray  # (V,H,W) int32, -1 background
    uv: np.ndarray  # (V,N,2) float32
    sp: np.ndarray  # (N,) int32
    detections: Detections  # simulated=False
    masks: np.ndarray  # (B,H,W) bool


def object_paths(save_dir: str | Path, category: str, object_id: str) -> dict[str, Path]:
    """Paths of the files read for one object."""
    s = Path(save_dir)
    r = s / "rendered_pc" / category / str(object_id)
    g = s / "glip_preprocess" / category / str(object_id) / "glip_pred"
    return {
        "rendered_img": r / "rendered_img",
        "pc_idx": r / "img_meta" / "pc_idx.npy",
        "screen_coords": r / "img_meta" / "screen_coords.npy",
        "superpoint": r / "superpoint.npy",
        "pred": g / "pred.json",
        "feature": g / "glip_feature.npz",
        "mask": s / "sam_preprocess" / category / str(object_id) / "sam_mask.npz",
    }


def _npy_header(f, path, obj):
    try:
        version = npformat.read_magic(f)
        if version == (1, 0):
            return npformat.read_array_header_1_0(f)
        if version == (2, 0):
            return npformat.read_array_header_2_0(f)
        return npformat._read_array_header(f, version)  # noqa: SLF001 - (3,0) utf-8 header
    except (ValueError, EOFError, SyntaxError) as e:
        raise BadInputError(f"not a valid .npy member ({e})", object_id=obj, path=path) from None


def _load_npy(path: Path, obj: str, mmap: bool = False) -> np.ndarray:
    if not path.is_file():
        raise BadInputError("missing file", object_id=obj, path=path)
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except (ValueError, OSError, EOFError) as e:
        raise BadInputError(f"cannot read .npy ({e})", object_id=obj, path=path) from None


def _load_npz_key(path: Path, key: str, obj: str) -> np.ndarray:
    if not path.is_file():
        raise BadInputError("missing file", object_id=obj, path=path)
    try:
        with np.load(path, allow_pickle=False) as z:
            if key not in z.files:
                raise BadInputError(f"no key {key!r} (keys: {z.files})", object_id=obj, path=path)
            return np.asarray(z[key])
    except ObjectError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as e:
        raise BadInputError(f"cannot read .npz ({type(e).__name__}: {e})", object_id=obj, path=path) from None


def _read_masks(path: Path, n_boxes: int, height: int, width: int, obj: str, chunk: int = 16) -> np.ndarray:
    """``mask`` (B,H,W) of an npz as bool (value > 0.5), streamed ``chunk`` boxes at a time."""
    if not path.is_file():
        raise BadInputError("missing file", object_id=obj, path=path)
    try:
        with zipfile.ZipFile(path) as zf:
            if "mask.npy" not in zf.namelist():
                raise BadInputError(f"no key 'mask' (members: {zf.namelist()})", object_id=obj, path=path)
            with zf.open("mask.npy") as f:
                shape, fortran, dtype = _npy_header(f, path, obj)
                if tuple(shape) != (n_boxes, height, width):
                    raise BadInputError(
                        f"mask has shape {tuple(shape)}, expected {(n_boxes, height, width)} ({n_boxes} boxes in pred.json)",
                        object_id=obj,
                        path=path,
                    )
                if dtype.hasobject or dtype.kind not in "biuf":
                    raise BadInputError(f"mask has dtype {dtype}, expected numbers", object_id=obj, path=path)
                out = np.empty((n_boxes, height, width), dtype=bool)
                if fortran:  # not written by numpy's savez of a C array; read whole
                    a = np.frombuffer(f.read(), dtype=dtype, count=n_boxes * height * width)
                    a = a.reshape((width, height, n_boxes)).T
                    if a.dtype.kind == "f" and not np.isfinite(a).all():
                        raise BadInputError("mask has non-finite values", object_id=obj, path=path)
                    out[:] = a > 0.5
                    return out
                row = height * width * dtype.itemsize
                for s in range(0, n_boxes, chunk):
                    n = min(chunk, n_boxes - s)
                    buf = f.read(n * row)
                    if len(buf) != n * row:
                        raise BadInputError("mask data truncated", object_id=obj, path=path)
                    a = np.frombuffer(buf, dtype=dtype).reshape(n, height, width)
                    if a.dtype.kind == "f" and not np.isfinite(a).all():
                        raise BadInputError("mask has non-finite values", object_id=obj, path=path)
                    out[s : s + n] = a > 0.5
                return out
    except ObjectError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as e:
        raise BadInputError(f"cannot read .npz ({type(e).__name__}: {e})", object_id=obj, path=path) from None


def _read_png_rgb(path: Path, obj: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise BadInputError("missing file", object_id=obj, path=path)
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise BadInputError(f"cannot read PNG ({e})", object_id=obj, path=path) from None


def _finite_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _read_pred_json(path: Path, n_views: int, n_parts: int, obj: str):
    if not path.is_file():
        raise BadInputError("missing file", object_id=obj, path=path)
    try:
        recs = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInputError(f"cannot parse JSON ({e})", object_id=obj, path=path) from None
    if not isinstance(recs, list):
        raise BadInputError(f"expected a list of boxes, got {type(recs).__name__}", object_id=obj, path=path)
    B = len(recs)
    xyxy = np.zeros((B, 4), np.float64)
    view = np.zeros(B, np.int64)
    label = np.zeros(B, np.int64)
    score = np.zeros(B, np.float64)
    for b, r in enumerate(recs):

        def bad(why: str, b: int = b) -> BadInputError:
            return BadInputError(f"box {b}: {why}", object_id=obj, path=path)

        if not isinstance(r, dict):
            raise bad("not an object")
        iid, cid, bbox, sc = r.get("image_id"), r.get("category_id"), r.get("bbox"), r.get("score")
        if not isinstance(iid, int) or isinstance(iid, bool) or not 0 <= iid < n_views:
            raise bad(f"image_id {iid!r} is not a view in 0..{n_views - 1}")
        if not isinstance(cid, int) or isinstance(cid, bool) or not 1 <= cid <= n_parts:
            raise bad(f"category_id {cid!r} is not in 1..{n_parts}")
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(_finite_number(x) for x in bbox):
            raise bad(f"bbox {bbox!r} is not 4 finite numbers [x, y, w, h]")
        if bbox[2] < 0 or bbox[3] < 0:
            raise bad(f"bbox {bbox!r} has a negative width or height")
        if not _finite_number(sc):
            raise bad(f"score {sc!r} is not a finite number")
        x, y, w, h = bbox
        xyxy[b] = (x, y, x + w, y + h)
        view[b], label[b], score[b] = iid, cid - 1, sc
    return xyxy, view, label, score


def read_partstad_preprocessed(save_dir: str | Path, category: str, object_id: str) -> ImportedObject:
    """Read one object of the original PartSTAD preprocessing cache (see module doc).

    Boxes are xywh -> xyxy (clipped to the image), category_id - 1 -> label, ordered by view
    then descending score (a stable sort: the stored order when it already follows SPEC §3.4),
    with features and masks permuted alongside.
    """
    obj = f"{category}/{object_id}"
    K = len(part_names(category))
    P = object_paths(save_dir, category, object_id)

    pc_idx = _load_npy(P["pc_idx"], obj, mmap=True)
    if pc_idx.ndim != 3 or not np.issubdtype(pc_idx.dtype, np.integer):
        raise BadInputError(f"pc_idx must be (V,H,W) integers, got {pc_idx.dtype} {pc_idx.shape}", object_id=obj, path=P["pc_idx"])
    V, H, W = pc_idx.shape
    uv = _load_npy(P["screen_coords"], obj)
    if uv.ndim != 3 or uv.shape[0] != V or uv.shape[2] != 2 or uv.dtype.kind != "f":
        raise BadInputError(f"screen_coords must be ({V},N,2) floats, got {uv.dtype} {uv.shape}", object_id=obj, path=P["screen_coords"])
    N = uv.shape[1]
    pix2pt = np.asarray(pc_idx)
    lo, hi = (int(pix2pt.min()), int(pix2pt.max())) if pix2pt.size else (-1, -1)
    if lo < -1 or hi >= N:
        raise BadInputError(f"pc_idx values {lo}..{hi} outside -1..{N - 1}", object_id=obj, path=P["pc_idx"])
    pix2pt = pix2pt.astype(np.int32)

    try:
        sp, _ = load_superpoint_npy(P["superpoint"], n_points=N)
    except ObjectError as e:
        raise type(e)(e.reason, object_id=obj, path=P["superpoint"]) from None

    rgb = np.empty((V, H, W, 3), np.uint8)
    for v in range(V):
        p = P["rendered_img"] / f"{v}.png"
        img = _read_png_rgb(p, obj)
        if img.shape[:2] != (H, W):
            raise BadInputError(f"image is {img.shape[:2]}, pc_idx is {(H, W)}", object_id=obj, path=p)
        rgb[v] = img

    xyxy, view, label, score = _read_pred_json(P["pred"], V, K, obj)
    B = xyxy.shape[0]
    if B:
        feat = _load_npz_key(P["feature"], "feature", obj)
        if feat.ndim != 2 or feat.shape[0] != B or feat.dtype.kind != "f":
            raise BadInputError(
                f"feature must be ({B},D) floats for {B} boxes, got {feat.dtype} {feat.shape}", object_id=obj, path=P["feature"]
            )
        masks = _read_masks(P["mask"], B, H, W, obj)
    else:
        D = 256
        if P["feature"].is_file():
            f0 = _load_npz_key(P["feature"], "feature", obj)
            D = int(f0.shape[1]) if f0.ndim == 2 else D
        feat = np.zeros((0, D), np.float32)
        masks = np.zeros((0, H, W), bool)
    if not np.isfinite(feat).all():
        raise BadInputError("feature has non-finite values", object_id=obj, path=P["feature"])

    order = np.lexsort((-score, view))
    if not np.array_equal(order, np.arange(B)):
        xyxy, view, label, score, feat, masks = (a[order] for a in (xyxy, view, label, score, feat, masks))
    xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, W)
    xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, H)
    det = Detections(xyxy, view, label, score, feat.astype(np.float32), simulated=False)
    return ImportedObject(rgb=rgb, pix2pt=pix2pt, uv=uv.astype(np.float32), sp=sp, detections=det, masks=masks)
