"""The typed, validated configuration of every stage: the one place where defaults live.

``params.yaml`` is parsed once, before any object runs, into :class:`PipelineConfig`.
Unknown keys, wrong types and out-of-range values are refused with the dotted key named
(``render.image_size: Input should be a valid integer``) and the command exits with code 2
before anything in the cache is touched. Every float, in every section and container, must
be finite (``allow_inf_nan=False`` in the one shared model config: ``-S train.lr=1e999``
would otherwise pass ``gt=0`` as inf and wreck training); ``tests/stages/test_finite_settings.py``
walks the schema so a new float field cannot skip it. Each field carries a docstring (shown by
``partstad params``).

A field marked ``affects_results=False`` (e.g. ``evaluate.splits``) decides *which* objects
run, not *what* an object's result is, so it is left out of the cache keys
(:func:`section_digest`): changing it never recomputes anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from pipeline.cameras import PAPER_VIEWS
from pipeline.meta import CATEGORIES


def _registered(kind: str) -> Callable[[str], str]:
    """The check of a backend name against its registry in stages/backends (``kind``: detectors,
    maskers, sources), so a registered backend is a valid value without editing this file."""

    def check(value: str) -> str:
        from pydantic_core import PydanticCustomError

        from stages.backends.lookup import check_name  # lazy: the registries import modules that import this one

        try:
            return check_name(kind, value)
        except ValueError as exc:
            raise PydanticCustomError("unknown_backend", str(exc)) from None

    return check


#: Backend names: whatever stages/backends registers (detect.backend, segment.mode, data.source).
DetectorName: TypeAlias = Annotated[str, AfterValidator(_registered("detectors"))]
MaskerName: TypeAlias = Annotated[str, AfterValidator(_registered("maskers"))]
SourceName: TypeAlias = Annotated[str, AfterValidator(_registered("sources"))]

#: Shared by every section (and the models derived from pipeline dataclasses): no unknown
#: keys, no nan/inf in any float (lists and tuples of floats included).
_STRICT = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True, validate_default=True, allow_inf_nan=False)


class ConfigError(ValueError):
    """params.yaml is unreadable or invalid; the message names the file and the keys."""


#: Every seed feeds numpy's default_rng (refuses negatives) and torch.manual_seed (at most 64 bits).
Seed = Annotated[int, Field(ge=0, lt=2**63)]


def not_in_key(**kw: Any) -> Any:
    """A field that selects work but does not change any object's result (left out of keys)."""
    return Field(json_schema_extra={"affects_results": False}, **kw)


class Section(BaseModel):
    model_config = _STRICT


class DataConfig(Section):
    source: SourceName = "synthetic"
    """Where shapes come from: the embedded synthetic generator, a PartNetE root, raw PartNet-Mobility, or your own shape files (.ply/.obj/.glb/.gltf/.off/.stl)."""
    root: str | None = None
    """Dataset root for `partnete` / `mobility`, or the folder of shape files for `files` (a local directory)."""
    n_points: int = Field(20000, gt=0, le=10_000_000)
    """Points per shape for the synthetic generator and for sampling meshes."""
    seed: Seed = 0
    """Seed of the synthetic generator and of mesh sampling."""
    n_fewshot: int = not_in_key(default=8, ge=0)
    """Few-shot training shapes per category (synthetic; paper: 8)."""
    n_val: int = not_in_key(default=4, ge=0)
    """Validation shapes per category (synthetic), used for checkpoint selection."""
    n_test: int = not_in_key(default=8, ge=0)
    """Test shapes per category (synthetic)."""
    val_ids: dict[str, list[str]] | None = not_in_key(default=None)
    """PartNetE: per category, the test ids that are validation shapes (checkpoint selection, method auto; they stay test shapes, SPEC §1.3), e.g. {Chair: ['179', '20']}; replaces `<root>/val_list.json`, which is the default."""
    splits: dict[str, Literal["fewshot", "val", "test"]] | None = not_in_key(default=None)
    """PartNet-Mobility / files: split per object folder name or file stem (files: overrides `<root>/splits.yaml`; default: test, logged)."""
    part_names: dict[str, list[str]] = not_in_key(default_factory=dict)
    """Part names of your own categories (not among the 45 PartNetE ones), e.g. {MyCat: [lid, handle, body]}; label ids follow this order. Enter a category's cache keys through its ingest key."""

    @field_validator("val_ids")
    @classmethod
    def _val_categories(cls, value: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        """A misspelt category would leave its validation shapes silently unmarked."""
        import difflib

        from pipeline.meta import PARTNETE_PARTS

        for cat in value or {}:
            if cat not in PARTNETE_PARTS:
                close = difflib.get_close_matches(cat, list(PARTNETE_PARTS), n=3)
                raise ValueError(f"{cat!r} is not a PartNetE category" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        return value

    @field_validator("part_names")
    @classmethod
    def _part_lists(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        from pipeline.meta import PARTNETE_PARTS

        for cat, names in value.items():
            if not names:
                raise ValueError(f"category {cat!r} needs at least one part name")
            if len(set(names)) != len(names):
                raise ValueError(f"category {cat!r} lists a part name twice")
            if cat in PARTNETE_PARTS and tuple(names) != PARTNETE_PARTS[cat]:
                raise ValueError(f"{cat!r} is a PartNetE category; its part names are fixed ({', '.join(PARTNETE_PARTS[cat])})")
        return value


class RenderConfig(Section):
    backend: Literal["numpy", "pyrender", "auto"] = "numpy"
    """Splat renderer: pure numpy z-buffer, pyrender (OpenGL/EGL), or pyrender when it works."""
    image_size: int = Field(800, gt=0, le=8192)
    """Square image side in pixels (paper: 800)."""
    distance: float = Field(2.2, gt=0)
    """Camera distance from the origin (shapes are normalised to the unit sphere)."""
    fov_deg: float = Field(60.0, gt=0, lt=180)
    """Vertical field of view in degrees."""
    radius_ndc: float = Field(0.005, gt=0, le=1)
    """Splat radius in NDC units (2 px at 800 px)."""
    footprint: Literal["disc", "square"] = "disc"
    """Splat shape: PyTorch3D-like disc or pyrender-like square."""
    views: list[tuple[float, float]] = Field(
        default_factory=lambda: list(PAPER_VIEWS),
        min_length=1,
        max_length=64,
    )
    """Camera (elevation, azimuth) pairs in degrees (paper: these 10)."""

    @property
    def radius_px(self) -> float:
        """Splat radius in pixels at this image size."""
        return self.radius_ndc * self.image_size / 2.0


class VisibilityConfig(Section):
    """No knobs: a point is visible in a view iff it wins at least one pixel."""


class SuperpointsConfig(Section):
    backend: Literal["greedy", "cutpursuit", "auto"] = "greedy"
    """Partition: in-house MIT greedy L0 partition, or GPL pycut-pursuit if installed."""
    reg: float = Field(0.05, gt=0)
    """Regularisation strength of the L0 partition (larger = fewer superpoints)."""
    k_adj: int = Field(10, ge=1, le=100)
    """Neighbours of the kNN adjacency graph."""
    rgb_weight: float = Field(0.3, ge=0)
    """Weight of colour relative to normals in the partitioned signal."""
    min_size: int = Field(10, ge=0)
    """SPEC §5.6: components of at most this many points merge into a neighbour."""
    grow_size: int = Field(30, ge=0)
    """Regions of at most this many points grow into their best neighbour (0 = off)."""


def _docstrings(cls: type) -> dict[str, str]:
    """Attribute docstrings of a dataclass (the string right after each field)."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    out = {}
    for node, nxt in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
        ):
            out[node.target.id] = " ".join(str(nxt.value.value).split())
    return out


def model_of_dataclass(
    cls: type,
    name: str,
    *,
    exclude: tuple[str, ...] = (),
    constraints: dict[str, dict[str, Any]] | None = None,
    types: dict[str, Any] | None = None,
) -> type[BaseModel]:
    """A strict pydantic model whose fields, types, defaults and docs come from a pipeline
    dataclass, so the defaults live in one place (the dataclass next to the maths).
    ``types`` replaces a field's type where its range must be stated per element (tuples)."""
    hints = typing.get_type_hints(cls)
    docs = _docstrings(cls)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            raise TypeError(f"{cls.__name__}.{f.name} needs a default: it becomes an optional params.yaml key")
        fields[f.name] = (
            (types or {}).get(f.name, hints[f.name]),
            Field(default, description=docs.get(f.name), **(constraints or {}).get(f.name, {})),
        )
    return create_model(name, __config__=_STRICT, **fields)


def _oracle_model() -> type[BaseModel]:
    from pipeline.detect.oracle_params import OracleDetectorParams

    nonneg = {"ge": 0}
    prob = {"ge": 0, "le": 1}
    # noise std in feature units: features are float16 on disk (max 65504), so 1000 keeps them finite
    feature_noise = {"ge": 0, "le": 1000}
    side_fraction = Annotated[float, Field(gt=0, le=1)]
    return model_of_dataclass(
        OracleDetectorParams,
        "OracleDetectConfig",
        exclude=("score_threshold", "max_per_view", "feat_dim"),  # set by the detect section itself
        constraints={
            "p_max": prob,
            "area_scale": {"gt": 0},
            "jitter": nonneg,
            "confusion": prob,
            "confused_confidence": nonneg,
            "fp_rate": {"ge": 0, "le": 1000},  # a Poisson mean of boxes per view (each one is drawn and stored)
            "whole_object_prob": prob,
            "score_noise": nonneg,
            "min_box_px": nonneg,
            "feat_noise": feature_noise,
            "informativeness": prob,
            "objectness_noise": feature_noise,
            "max_parts": {"ge": 1},
            "max_views": {"ge": 1},
            "feat_seed": {"ge": 0, "lt": 2**63},
        },
        types={"fp_size": tuple[side_fraction, side_fraction]},
    )


OracleDetectConfig = _oracle_model()


def _pixels_detect_model() -> type[BaseModel]:
    from pipeline.detect.pixel_params import PixelDetectorParams

    nonneg = {"ge": 0}
    return model_of_dataclass(
        PixelDetectorParams,
        "PixelsDetectConfig",
        constraints={
            "ring": nonneg,
            "sigma": {"gt": 0, "le": 100},
            "l2": nonneg,
            "steps": nonneg,
            "lr": {"gt": 0, "le": 1},
            "temperature": {"ge": 1e-3, "le": 1e3},
            "match_iou": {"gt": 0, "le": 1},
            "background_per_view": nonneg,
            "feat_seed": {"ge": 0, "lt": 2**63},
        },
    )


PixelsDetectConfig = _pixels_detect_model()


def _pixels_segment_model() -> type[BaseModel]:
    from pipeline.segment.pixel_sam_params import PixelSamParams

    return model_of_dataclass(
        PixelSamParams,
        "PixelsSegmentConfig",
        constraints={
            "sigma": {"gt": 0, "le": 100},
            "depth_weight": {"ge": 0},
            "n_superpixels": {"ge": 1},
            "compactness": {"ge": 0},
            "iterations": {"ge": 1},
            "merge_scale": {"ge": 0},
            "min_region": {"ge": 0},
            "inside": {"gt": 0, "le": 1},
            "min_cover": {"ge": 0, "le": 1},
        },
    )


PixelsSegmentConfig = _pixels_segment_model()


class DetectConfig(Section):
    backend: DetectorName = "oracle"
    """oracle (SIMULATED ground-truth oracle: labels, scores and features read from the ground truth; for tests and comparisons), pixels (SIMULATED from rendered pixels: boxes placed from the ground truth, features/labels/scores from the image and a classifier fitted on the few-shot renders), grounding_dino (real, local weights) or import (original preprocessing)."""
    feat_dim: int = Field(256, ge=1, le=4096)
    """Per-box feature dimension of the simulated detector (GLIP: 256)."""
    seed: Seed = 0
    """Seed of the simulated detectors' noise and box placement (per object: mixed with the object id)."""
    weights_dir: str | None = None
    """Grounding DINO for backend grounding_dino: a local directory (config.json + model.safetensors + processor files) or a Hugging Face model id (IDEA-Research/grounding-dino-base, optionally @revision) read from the local Hugging Face cache (never downloaded). Its content digest enters the detect keys."""
    score_threshold: float = Field(0.5, ge=0, le=1)
    """Boxes scoring at most this are dropped (GLIP: 0.5)."""
    max_per_view: int = Field(100, ge=1)
    """At most this many boxes per view (highest scores kept)."""
    batch_size: int | None = not_in_key(default=None, ge=1, le=256)
    """Views per Grounding DINO forward; null: all views of an object on CUDA, one on a CPU (where batching measured slower). Changes boxes only by float rounding (like the thread count), so it is not part of the keys."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Autocast of the Grounding DINO forward (backend grounding_dino): auto = bf16 on CUDA, fp32 on a CPU; the keys hold the resolved value. Box decoding is always float32."""
    oracle: OracleDetectConfig = Field(default_factory=OracleDetectConfig)  # type: ignore[valid-type]
    """Noise model of the simulated detectors (see pipeline/detect/oracle.py); backend pixels uses only its proposal knobs (p_max, area_scale, jitter, fp_rate, fp_size, whole_object_prob, min_box_px, max_parts)."""
    pixels: PixelsDetectConfig = Field(default_factory=PixelsDetectConfig)  # type: ignore[valid-type]
    """Feature extractor and few-shot classifier of the simulated pixels detector (see pipeline/detect/pixel_sim.py)."""


class AdaptConfig(Section):
    """Few-shot adaptation of Grounding DINO (`partstad adapt-detector`, PartSLIP's per-category fine-tuning)."""

    enabled: bool = False
    """Fine-tune the detector per category on the few-shot renders and let detect use the result (needs detect.backend: grounding_dino); false: the stage only records that it was skipped."""
    base_weights_dir: str | None = None
    """Grounding DINO to start from (local save_pretrained directory with safetensors, or a Hugging Face model id in the local cache); null: detect.weights_dir."""
    out_dir: str = not_in_key(default="models/adapt")
    """Adapted models go to <out_dir>/<Category>/ (keep in line with dvc.yaml's outs); detect reads them from there. Their content digest enters the detect keys."""
    trainable: Literal["prompt", "heads", "all"] = "all"
    """Parameters that train: all (default: the only group whose box terms fall at the default lr, docs/detector_weights.md), heads (prompt + box/class/proposal heads; learns boxes only at lr ~1e-3, less GPU memory) or prompt (text projection only, like PartSLIP's prompt tuning: rescales class scores, never moves a box)."""
    epochs: int = Field(20, ge=0, le=10_000)
    """Passes over the few-shot views; validation AP50 after each (epoch 0 = the base weights)."""
    batch_size: int = Field(4, gt=0, le=1024)
    """Views per optimisation step."""
    lr: float = Field(1.0e-4, gt=0, le=1)
    """AdamW learning rate."""
    lr_schedule: Literal["constant", "cosine"] = "constant"
    """Learning-rate schedule over all steps: constant, or cosine decay to 0."""
    weight_decay: float = Field(1.0e-4, ge=0, le=1)
    """AdamW decoupled weight decay (each step scales the weights by 1 - lr·weight_decay)."""
    grad_clip: float = Field(0.1, ge=0)
    """Gradient norm clip (Grounding DINO's 0.1; 0 = off)."""
    seed: Seed = 0
    """Seed of the batch order (and of torch)."""
    min_box_px: float = Field(2.0, ge=0)
    """Ground-truth part boxes narrower or lower than this (pixels) are left out."""
    select_split: Literal["val", "fewshot"] = "val"
    """Renders whose box AP50 (mean over parts) chooses the epoch kept: the val shapes (falls back to the few-shot views, with a warning, when there are none) or the few-shot views."""


class SegmentConfig(Section):
    mode: MaskerName = "oracle"
    """oracle (SIMULATED SAM from ground truth: the framed ground-truth part; for tests and comparisons), pixels (SIMULATED SAM from rendered pixels: segments of a ground-truth-free over-segmentation), sam (segment-anything, local checkpoint) or box (rectangles)."""
    sam_model_type: Literal["vit_b", "vit_l", "vit_h"] = "vit_b"
    """segment-anything model type of the checkpoint."""
    sam_checkpoint: str | None = None
    """segment-anything checkpoint (.pth) for mode sam: a local path, or an official name (sam_vit_b, sam_vit_l, sam_vit_h) looked up in torch.hub.get_dir()/checkpoints (never downloaded). Its content digest enters the segment keys."""
    batch_size: int | None = not_in_key(default=None, ge=1, le=256)
    """Views per SAM image-encoder forward (mode sam); null: all views of an object on CUDA, one on a CPU (where batching measured slower). Changes masks only by float rounding, so it is not part of the keys."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Autocast of SAM's image encoder (mode sam): auto = bf16 on CUDA, fp32 on a CPU; the keys hold the resolved value. The mask decoder is always float32."""
    seed: Seed = 0
    """Seed of the simulated oracle SAM's boundary noise (mode pixels draws nothing)."""
    boundary_noise: float = Field(0.2, ge=0, le=1)
    """Simulated oracle SAM: flip probability of boundary pixels."""
    pixels: PixelsSegmentConfig = Field(default_factory=PixelsSegmentConfig)  # type: ignore[valid-type]
    """Over-segmentation and prompt rule of the simulated pixels SAM (see pipeline/segment/pixel_sam.py)."""

    @model_validator(mode="after")
    def _sam_name_matches_type(self) -> SegmentConfig:
        """An official SAM name fixes the model type: a mismatch would fail only when loading."""
        from stages.weights_resolve import SAM_CHECKPOINTS

        known = SAM_CHECKPOINTS.get(self.sam_checkpoint or "")
        if known and known[1] != self.sam_model_type:
            raise ValueError(f"sam_checkpoint {self.sam_checkpoint} is a {known[1]} model but sam_model_type is {self.sam_model_type}")
        return self


def _lift_model() -> type[BaseModel]:
    from pipeline.lift import LiftParams

    return model_of_dataclass(
        LiftParams, "LiftConfig", constraints={"iou_gate": {"ge": 0, "lt": 1}, "whole_object_thresh": {"gt": 0, "le": 1}}
    )


LiftConfig = _lift_model()


def _train_model() -> type[BaseModel]:
    from pipeline.train.params import RUNTIME_FIELDS, TrainParams

    return model_of_dataclass(
        TrainParams,
        "TrainParamsConfig",
        exclude=RUNTIME_FIELDS,
        constraints={
            "epochs": {"gt": 0, "le": 100_000},
            "batch_size": {"gt": 0},
            "lr": {"gt": 0, "le": 1},
            "lr_null": {"gt": 0, "le": 1},
            "weight_decay": {"ge": 0, "le": 1},
            "tau": {"ge": 0, "le": 1000},
            "seed": {"ge": 0, "lt": 2**63},
        },
    )


class TrainConfig(_train_model()):  # type: ignore[misc]
    """Training of the box-weight network (hyper-parameters: pipeline.train.params.TrainParams, their one definition).

    The fields are TrainParams' (names, types, defaults, docs; params.yaml keys = field names)
    plus what the stage trains (``ablation_boxes``)."""

    ablation_boxes: bool = True
    """Also train the 'weights without masks' ablation on box membership."""

    def params(self, device: str) -> Any:
        """The pipeline's TrainParams of this section (same names, no mapping) on ``device``."""
        from pipeline.train.params import TrainParams

        return TrainParams(**{name: getattr(self, name) for name in type(self).model_fields if name != "ablation_boxes"}, device=device)


class EvaluateConfig(Section):
    splits: list[Literal["fewshot", "val", "test"]] = not_in_key(default_factory=lambda: ["test"], min_length=1)
    """Splits to predict and score."""


class ReportConfig(Section):
    n_examples: int = Field(2, ge=0, le=100)
    """Example objects per category shown in the HTML report."""
    n_failures: int = Field(2, ge=0, le=100)
    """Worst test objects per category in the report's failure gallery, per criterion
    (PartSTAD − PartSLIP mIoU and PartSTAD mIoU): where the method fails is what to look at."""


class PipelineConfig(BaseModel):
    """Every knob of the pipeline, one section per stage."""

    model_config = _STRICT
    categories: list[str] = Field(default_factory=lambda: ["Chair"], min_length=1)
    """Categories processed by `dvc repro` and by commands run without --category."""
    data: DataConfig = Field(default_factory=DataConfig)
    render: RenderConfig = Field(default_factory=RenderConfig)
    visibility: VisibilityConfig = Field(default_factory=VisibilityConfig)
    superpoints: SuperpointsConfig = Field(default_factory=SuperpointsConfig)
    detect: DetectConfig = Field(default_factory=DetectConfig)
    segment: SegmentConfig = Field(default_factory=SegmentConfig)
    lift: LiftConfig = Field(default_factory=LiftConfig)  # type: ignore[valid-type]
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    adapt: AdaptConfig = Field(default_factory=AdaptConfig)

    @model_validator(mode="after")
    def _known(self) -> PipelineConfig:
        """Every listed category is a PartNetE one or has part names in data.part_names."""
        import difflib

        from pydantic_core import InitErrorDetails, PydanticCustomError

        def refuse(msg: str, loc: tuple, value: Any) -> None:
            raise ValidationError.from_exception_data(
                "PipelineConfig", [InitErrorDetails(type=PydanticCustomError("category", msg), loc=loc, input=value)]
            )

        known = list(CATEGORIES) + list(self.data.part_names)
        for i, c in enumerate(self.categories):
            if c not in known:
                close = difflib.get_close_matches(c, known, n=3)
                refuse(
                    f"unknown category {c!r}"
                    + (f" (did you mean {', '.join(close)}?)" if close else "")
                    + "; your own categories need data.part_names",
                    ("categories", i),
                    c,
                )
        if len(set(self.categories)) != len(self.categories):
            refuse("a category is listed twice", ("categories",), self.categories)
        return self

    @model_validator(mode="before")
    @classmethod
    def _sections_are_mappings(cls, data: Any) -> Any:
        """`render: 5` or `render:` (None) -> a clear error / the defaults."""
        if not isinstance(data, dict):
            raise ValueError("params must be a mapping of sections")
        out = dict(data)
        for name in cls.model_fields:
            if name in out and out[name] is None and name != "categories":
                out[name] = {}
        return out


def _format_errors(path: Path | str, exc: ValidationError) -> str:
    lines = [f"invalid params file {path}:"]
    for e in exc.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<top level>"
        got = "" if e["type"] in ("extra_forbidden", "missing") else f" (got {e.get('input')!r})"
        msg = "unknown key (misspelled? it would be ignored)" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  {key}: {msg}{got}")
    return "\n".join(lines)


def parse_config(raw: Any, source: str = "params") -> PipelineConfig:
    """Validate a params mapping; ConfigError names every bad key."""
    try:
        return PipelineConfig.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        raise ConfigError(_format_errors(source, exc)) from None


DEFAULT_PARAMS = "params.yaml"
#: Set once the "no params.yaml here, packaged defaults" message was logged (log it once).
_LOGGED_DEFAULTS: set[str] = set()


def apply_overrides(raw: Any, overrides: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    """``-S key=value`` on top of a params mapping, like ``dvc exp run -S``.

    Keys are dotted (``render.image_size=64``, ``detect.oracle.p_max=0.9``); values are parsed
    as YAML (``64`` -> int, ``[a, b]`` -> list, ``{Mug: [lid]}`` -> mapping, ``null``). The
    result is validated by :func:`parse_config` like the file itself, so an unknown key is
    refused the same way. A malformed override -> ConfigError naming it.
    """
    import copy

    out: dict[str, Any] = copy.deepcopy(raw) if raw is not None else {}
    if not isinstance(out, dict):
        return out
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"-S {item!r}: expected key=value with a dotted key (e.g. -S render.image_size=800)")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"-S {item!r}: the value is not valid YAML ({exc})") from None
        node = out
        parts = key.split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"-S {item!r}: {'.'.join(parts[: depth + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def _say_once(message: str) -> None:
    """One line on stderr, once per command (the click context) or once per process outside one:
    a command may load its params more than once."""
    import click

    ctx = click.get_current_context(silent=True)
    said: set[str] = ctx.find_root().meta.setdefault("partstad.config_said", set()) if ctx is not None else _SAID
    if message not in said:
        said.add(message)
        click.echo(message, err=True)


#: Messages said outside any click command (see :func:`_say_once`).
_SAID: set[str] = set()


def load_config(path: str | Path, overrides: tuple[str, ...] | list[str] = (), *, missing_ok: bool = False) -> PipelineConfig:
    """Read and validate params.yaml plus ``-S`` overrides (missing file, YAML syntax and schema errors -> ConfigError).

    ``missing_ok``: the file was not asked for explicitly (the default ``params.yaml``) and
    may be absent: the packaged defaults (:class:`PipelineConfig`'s) are used and the log
    says so once. An explicitly given file that does not exist is always an error. An empty
    (or all-comment) file also means every default, and one line on stderr says so: an
    emptied file is more often a mistake than a choice.
    """
    p = Path(path)
    if not p.is_file():
        if not missing_ok:
            raise ConfigError(f"params file not found: {p}")
        key = str(p.resolve())
        if key not in _LOGGED_DEFAULTS:
            _LOGGED_DEFAULTS.add(key)
            logging.getLogger("partstad").info(
                "no %s in %s: using the packaged defaults (`partstad params --defaults` lists them)", p, Path.cwd()
            )
        raw: Any = {}
        source = "packaged defaults"
    else:
        try:
            raw = yaml.safe_load(p.read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(f"params file {p} is not valid YAML: {exc}") from None
        source = str(p)
        if raw is None:  # empty or only comments: probably not what the researcher meant to run
            _say_once(
                f"{p} is empty: using defaults for every setting"
                + (" not given with -S" if overrides else "")
                + " (`partstad params --defaults` lists them)"
            )
    if overrides:
        if raw is not None and not isinstance(raw, dict):
            return parse_config(raw, source)  # the usual "must be a mapping" error
        raw = apply_overrides(raw, overrides)
        source += " with -S " + " ".join(overrides)
    return parse_config(raw, source)


def _key_view(model: BaseModel) -> Any:
    """A section's fields that affect results (recursively), as plain JSON data."""
    out = {}
    for name, info in type(model).model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if extra.get("affects_results") is False:
            continue
        value = getattr(model, name)
        out[name] = _key_view(value) if isinstance(value, BaseModel) else value
    return json.loads(json.dumps(out, default=list))


def section_digest(*sections: BaseModel) -> dict[str, Any]:
    """The key-relevant content of some sections, keyed by section class (for fingerprints)."""
    return {type(s).__name__: _key_view(s) for s in sections}


def config_hash(cfg: PipelineConfig, sections: Sequence[str] | None = None) -> str:
    """Short hash of the resolved configuration, or of only ``sections`` of it (what a DVC
    stage depends on: see ``stages.stage_table.dvc_params``)."""
    dump = cfg.model_dump(mode="json")
    if sections is not None:  # top-level sections or dotted keys (adapt.enabled), as DVC params name them
        picked: dict[str, Any] = {}
        for key in sorted(set(sections)):
            value: Any = dump
            for part in key.split("."):
                value = value[part]
            picked[key] = value
        dump = picked
    return hashlib.sha256(json.dumps(dump, sort_keys=True).encode()).hexdigest()[:12]
