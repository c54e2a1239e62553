"""What a trained weights file was trained for, and whether a run may use it.

Why: the box-weight network reads detector features, so a model is only meaningful with the
category, part names (the detector's prompts and label ids), feature space (detector backend
and feature width) it was trained on. Nothing in the tensors stops a Table model from running
on Chair shapes, or 256-d simulated features from meeting another detector's: the run must
compare, before any expensive stage, and refuse a mismatch naming both sides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pipeline.posenc import POSENC_DIM

#: Metadata keys train writes for these checks (besides ``config``, ``pos_enc``, ``membership``).
CARD_KEYS = ("category", "part_names", "detect_backend")
#: Which membership each variant file is trained on (evaluate reads it that way).
VARIANT_MEMBERSHIP = {"partstad": "mask", "partstad_boxes": "box"}


@dataclass(frozen=True)
class ModelCard:
    """What one weights file says about itself (None: the file predates that record)."""

    category: str | None
    part_names: tuple[str, ...] | None
    detect_backend: str | None
    feat_dim: int
    pos_enc: bool
    variant: str | None
    membership: str | None


@dataclass(frozen=True)
class RunSpec:
    """What the current run will feed a model (feat_dim None: not known before detect runs)."""

    category: str
    part_names: tuple[str, ...]
    detect_backend: str
    feat_dim: int | None


def card_metadata(category: str, part_names: tuple[str, ...] | list[str], detect_backend: str) -> dict[str, str]:
    """The metadata entries train writes so that every later load can check compatibility."""
    return {"category": category, "part_names": json.dumps(list(part_names)), "detect_backend": detect_backend}


def model_card(meta: dict[str, str], in_dim: int) -> ModelCard:
    """The card of a file whose metadata passed :func:`pipeline.train.checkpoint.check_metadata`.

    ``in_dim`` is the network's input width; the detector feature width is that minus the
    positional encoding when the model was trained with one."""
    config = json.loads(meta["config"]) if "config" in meta else {}
    category = meta.get("category", config.get("category"))
    names = tuple(json.loads(meta["part_names"])) if "part_names" in meta else None
    pos_enc = meta.get("pos_enc", "True") == "True"
    return ModelCard(
        category=category if isinstance(category, str) else None,
        part_names=names,
        detect_backend=meta.get("detect_backend"),
        feat_dim=in_dim - (POSENC_DIM if pos_enc else 0),
        pos_enc=pos_enc,
        variant=meta.get("variant"),
        membership=meta.get("membership"),
    )


def layout_problems(card: ModelCard, file_name: str) -> list[str]:
    """Inconsistencies of the file with itself: a width that cannot hold its encoding, a
    variant stored under another variant's name or trained on the other membership."""
    out = []
    if card.feat_dim < 1:
        out.append(
            f"its network input width {card.feat_dim + (POSENC_DIM if card.pos_enc else 0)} is too small for pos_enc {card.pos_enc} "
            f"(the positional encoding alone is {POSENC_DIM} wide)"
        )
    stem = file_name.rsplit(".", 1)[0]
    if card.variant is not None and stem in VARIANT_MEMBERSHIP and card.variant != stem:
        out.append(f"it holds variant {card.variant!r}, not {stem!r}")
    want = VARIANT_MEMBERSHIP.get(card.variant or stem)
    if card.membership is not None and want is not None and card.membership != want:
        out.append(f"variant {card.variant or stem!r} is trained on {want!r} membership, the file says {card.membership!r}")
    return out


def mismatches(card: ModelCard, run: RunSpec) -> list[str]:
    """``what: model X, run Y`` for every recorded property the run does not share."""
    out = []
    if card.category is not None and card.category != run.category:
        out.append(f"category: model {card.category}, run {run.category}")
    if card.part_names is not None and card.part_names != tuple(run.part_names):
        out.append(f"part names: model [{', '.join(card.part_names)}], run [{', '.join(run.part_names)}]")
    if card.detect_backend is not None and card.detect_backend != run.detect_backend:
        out.append(f"detector backend: model {card.detect_backend}, run {run.detect_backend}")
    if run.feat_dim is not None and card.feat_dim != run.feat_dim:
        out.append(f"detector feature dimension: model {card.feat_dim}, run {run.feat_dim}")
    return out


def unrecorded(card: ModelCard) -> list[str]:
    """Properties an older file does not record (they cannot be checked)."""
    return [
        name
        for name, value in (("category", card.category), ("part names", card.part_names), ("detector backend", card.detect_backend))
        if value is None
    ]
