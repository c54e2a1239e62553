"""LiftedObject <-> the flat arrays of the lift store (written by lift, read by train/evaluate)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from pipeline.errors import BadInputError
from pipeline.lift import LiftedObject

_ARRAY_FIELDS = [f.name for f in dataclasses.fields(LiftedObject) if f.name not in ("n_parts", "mode", "min_visible")]


def lifted_to_arrays(lifted: LiftedObject, prefix: str) -> dict[str, np.ndarray]:
    out = {f"{prefix}{name}": getattr(lifted, name) for name in _ARRAY_FIELDS if getattr(lifted, name) is not None}
    out[f"{prefix}meta"] = np.array([lifted.n_parts, lifted.min_visible], dtype=np.int32)
    return out


def lifted_from_arrays(arrays: dict[str, np.ndarray], prefix: str, mode: str) -> LiftedObject:
    meta = arrays[f"{prefix}meta"]
    # an array lift did not write (``gt`` of an unlabelled object) is None
    kwargs: dict[str, Any] = {name: arrays.get(f"{prefix}{name}") for name in _ARRAY_FIELDS}
    return LiftedObject(**kwargs, n_parts=int(meta[0]), mode=mode, min_visible=int(meta[1]))


def read_lifted(ctx: Any, object_id: str, mode: str = "mask") -> LiftedObject:
    store = ctx.store("lift")
    prefix = f"{mode}_"
    names = [f"{prefix}{n}" for n in _ARRAY_FIELDS] + [f"{prefix}meta"]
    present = set(store.attrs(object_id).get("arrays", []))
    return lifted_from_arrays({n: store.read(object_id, n) for n in names if n in present}, prefix, mode)


def read_box_valid(ctx: Any, object_id: str, n_boxes: int) -> np.ndarray:
    """(B,) bool PartSLIP whole-object filter, computed once by lift (``whole_object_valid``);
    another shape or dtype is bad input naming the object and file."""
    store = ctx.store("lift")
    valid = store.read(object_id, "whole_object_valid", expect_shape=(n_boxes,))
    if valid.dtype != np.bool_:
        raise BadInputError(
            f"array 'whole_object_valid' is {valid.dtype}, expected bool",
            object_id=object_id,
            path=store.path(object_id, "whole_object_valid"),
        )
    return valid
