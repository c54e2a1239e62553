"""Real open-vocabulary part detector: Hugging Face transformers Grounding DINO, local weights.

Weights come only from a local directory (``save_pretrained`` layout: config.json,
model.safetensors, tokenizer and processor configs); nothing is fetched from a hub.
The prompt follows GLIP's part prompt (SPEC §3.2): part names joined by " . ", ending in " .".
A query's class score for part j is the mean sigmoid of its token logits over the tokens of
part j's phrase (GLIP's SCORE_AGG MEAN); label = argmax, score = that mean. Then: score
threshold, class-wise NMS (IoU 0.6), at most 100 boxes per view (GLIP's ATSS defaults).
The per-box feature is the decoder embedding of the query (``last_hidden_state``, d_model).
transformers is imported lazily (it takes seconds).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .nms import batched_nms_np
from .types import Detections, ViewDetections


class DetectorWeightsNotFoundError(FileNotFoundError):
    """The local detector weights directory (or a file in it) is missing."""


class DetectorWeightsError(ValueError):
    """The local detector weights directory exists but cannot be loaded."""


#: Weight files accepted in a model directory (single file or sharded index); never pickles.
SAFETENSORS_FILES = ("model.safetensors", "model.safetensors.index.json")


def make_prompt(part_names: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """Prompt text and the character span [start, end) of each part name in it."""
    spans, pos, pieces = [], 0, []
    for i, name in enumerate(part_names):
        if i:
            pieces.append(" . ")
            pos += 3
        spans.append((pos, pos + len(name)))
        pieces.append(name)
        pos += len(name)
    pieces.append(" .")
    return "".join(pieces), spans


def phrase_token_matrix(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]], n_cols: int) -> np.ndarray:
    """(K, n_cols) float32 averaging matrix: row j = 1/|tokens of phrase j| on those tokens.

    Tokens are matched by their character offsets (special tokens have empty offsets), so
    multi-token part names ("footpedal" -> foot ##pedal) are averaged over all their pieces.
    """
    A = np.zeros((len(spans), n_cols), np.float32)
    for j, (s, e) in enumerate(spans):
        toks = [t for t, (a, b) in enumerate(offsets) if b > a and a < e and b > s and t < n_cols]
        if toks:
            A[j, toks] = 1.0 / len(toks)
    return A


def prompt_for(tokenizer, part_names: Sequence[str], max_text_len: int) -> tuple[str, np.ndarray]:
    """The prompt text and its (K, max_text_len) phrase-averaging matrix for this tokenizer."""
    names = tuple(part_names)
    text, spans = make_prompt(names)
    enc = tokenizer(text, return_offsets_mapping=True)
    n_tok = len(enc["input_ids"])
    if n_tok > max_text_len:
        raise ValueError(f"prompt {text!r} has {n_tok} tokens, the model takes {max_text_len}")
    A = phrase_token_matrix([tuple(o) for o in enc["offset_mapping"]], spans, max_text_len)
    empty = [names[j] for j in range(len(names)) if not A[j].any()]
    if empty:
        raise ValueError(f"part names {empty} map to no tokens in prompt {text!r}")
    return text, A


def check_weights_dir(weights_dir: str | Path) -> Path:
    """The directory, after checking it holds a ``save_pretrained`` model with safetensors weights.

    Raises :class:`DetectorWeightsNotFoundError` naming the path when the directory, its
    config.json or its ``model.safetensors`` (or sharded ``model.safetensors.index.json``) is
    missing: pickled ``pytorch_model.bin`` weights are never loaded.
    """
    path = Path(weights_dir)
    if not path.is_dir():
        raise DetectorWeightsNotFoundError(f"Grounding DINO weights directory not found: {path}")
    if not (path / "config.json").is_file():
        raise DetectorWeightsNotFoundError(f"Grounding DINO weights directory has no config.json: {path}")
    if not any((path / n).is_file() for n in SAFETENSORS_FILES):
        raise DetectorWeightsNotFoundError(
            f"Grounding DINO weights directory has no model.safetensors (only safetensors weights are loaded): {path}"
        )
    return path


def load_grounding_dino(weights_dir: str | Path, device: str | object = "cpu"):
    """(model in eval mode on ``device``, processor) from a local ``save_pretrained`` directory."""
    path = check_weights_dir(weights_dir)
    import transformers  # noqa: F401  (before any torchvision shim, STACK §11 pitfall 8)
    from transformers import AutoModelForZeroShotObjectDetection, AutoTokenizer, GroundingDinoProcessor
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import (
        GroundingDinoImageProcessorPil,
    )

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        image_processor = GroundingDinoImageProcessorPil.from_pretrained(path, local_files_only=True)
        model = AutoModelForZeroShotObjectDetection.from_pretrained(path, local_files_only=True, use_safetensors=True)  # never a pickle
    except OSError as e:  # missing files inside the directory
        raise DetectorWeightsNotFoundError(f"cannot load Grounding DINO from {path}: {e}") from e
    except (ValueError, KeyError, TypeError) as e:  # unusable config / tokenizer files
        raise DetectorWeightsError(f"cannot load Grounding DINO from {path}: {type(e).__name__}: {e}") from e
    return model.to(device).eval(), GroundingDinoProcessor(image_processor, tokenizer)


def decode_queries(
    logits, pred_boxes, hidden, A: np.ndarray, height: int, width: int, score_threshold: float, nms_iou: float, max_per_view: int
) -> ViewDetections:
    """One image's raw outputs -> kept boxes (see module doc): phrase scores, threshold, NMS, cap.

    logits (Q, max_text_len), pred_boxes (Q,4) normalised cxcywh, hidden (Q,D) torch tensors;
    A (K, max_text_len) from :func:`phrase_token_matrix`. Shared by detection and by the
    adaptation's validation (pipeline/detect/adapt.py) so both score boxes identically.
    """
    import torch

    H, W = int(height), int(width)
    prob = logits.float().sigmoid()  # (Q, max_text_len); -inf columns give 0
    cls = prob @ torch.as_tensor(A, device=prob.device, dtype=prob.dtype).T  # (Q, K) mean over each phrase's tokens
    score, label = cls.max(dim=1)
    cxcywh = pred_boxes.float()
    xyxy = torch.cat([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], dim=1)
    xyxy = xyxy * torch.tensor([W, H, W, H], dtype=xyxy.dtype, device=xyxy.device)

    score_np = score.detach().cpu().numpy()
    label_np = label.detach().cpu().numpy()
    xyxy_np = xyxy.detach().cpu().numpy()
    xyxy_np[:, [0, 2]] = np.clip(xyxy_np[:, [0, 2]], 0, W)
    xyxy_np[:, [1, 3]] = np.clip(xyxy_np[:, [1, 3]], 0, H)
    feats = hidden.detach().float().cpu().numpy()

    cand = np.flatnonzero(score_np > score_threshold)
    keep = cand[batched_nms_np(xyxy_np[cand], score_np[cand], label_np[cand], nms_iou)][: int(max_per_view)]
    return (
        xyxy_np[keep].astype(np.float32),
        label_np[keep].astype(np.int16),
        score_np[keep].astype(np.float32),
        feats[keep].astype(np.float32),
    )


class GroundingDinoDetector:
    """Grounding DINO from a local ``weights_dir`` (see module doc).

    ``batch_size`` views go through one forward (null: :data:`pipeline.batching.AUTO_BATCH`
    of the device); the same prompt is tokenized once and repeated for every view, and all
    views of an object have one size, so nothing is padded and a batched view gives what it
    gives alone (up to float summation order). ``precision`` (``auto``: bf16 on CUDA, fp32 on
    CPU) autocasts the forward; decoding is always float32. Thread-safe: the dask threads
    scheduler may run several objects through one instance. ``weights_dir`` may also be an
    already built ``(model, processor)`` pair (benchmarks of random models of the real sizes).
    """

    simulated = False

    def __init__(
        self,
        weights_dir: str | Path | tuple,
        device: str = "cpu",
        score_threshold: float = 0.3,
        nms_iou: float = 0.6,
        max_per_view: int = 100,
        batch_size: int | None = None,
        precision: str = "fp32",
    ):
        import torch

        from pipeline.batching import OnceLock, resolve_batch_size, resolve_precision

        self._torch = torch
        self.device = torch.device(device)
        self.batch_size = resolve_batch_size(batch_size, self.device)
        self.precision = resolve_precision(precision, self.device)
        if isinstance(weights_dir, tuple):  # an already built (model, processor): benchmarks, tests
            model, self.processor = weights_dir
            self.model = model.to(self.device).eval()
        else:
            self.model, self.processor = load_grounding_dino(weights_dir, self.device)
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        self.max_per_view = int(max_per_view)
        self.max_text_len = int(self.model.config.max_text_len)
        self._prompts = OnceLock()
        self.forward_calls = 0

    @property
    def feat_dim(self) -> int:
        return int(self.model.config.d_model)

    def _prompt(self, part_names: Sequence[str]) -> tuple[str, np.ndarray]:
        key = tuple(part_names)
        return self._prompts.get(("prompt", key), lambda: prompt_for(self.processor.tokenizer, key, self.max_text_len))

    def _text_inputs(self, part_names: Sequence[str]) -> tuple[dict, np.ndarray]:
        """The prompt's token tensors (batch of 1, what the processor makes) and its matrix A."""
        text, A = self._prompt(part_names)
        enc = self._prompts.get(
            ("tokens", tuple(part_names)), lambda: dict(self.processor.tokenizer(text, return_tensors="pt", return_token_type_ids=True))
        )
        return enc, A

    def _image_inputs(self, images: np.ndarray) -> dict:
        """pixel_values / pixel_mask of a batch (V,H,W,3) uint8, as the processor makes them."""
        from PIL import Image

        out = self.processor.image_processor(images=[Image.fromarray(im) for im in images], return_tensors="pt")
        return {k: out[k] for k in ("pixel_values", "pixel_mask")}

    def detect_views(self, images: np.ndarray, part_names: Sequence[str]) -> list[ViewDetections]:
        """images (V,H,W,3) uint8 RGB -> one (xyxy, labels, scores, feats) per view (see detect_view)."""
        from pipeline.batching import autocast, chunks, prefetched

        torch = self._torch
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
            raise ValueError(f"images must be (V,H,W,3) uint8, got {images.shape} {images.dtype}")
        V, H, W = images.shape[:3]
        text_enc, A = self._text_inputs(part_names)
        out: list[ViewDetections] = []
        batches = chunks(range(V), self.batch_size)
        for idx, pix in zip(batches, prefetched(lambda b: self._image_inputs(images[b.start : b.stop]), batches)):
            inputs = {k: t.to(self.device, non_blocking=True) for k, t in pix.items()}
            inputs.update({k: t.repeat(len(idx), 1).to(self.device) for k, t in text_enc.items()})
            with torch.inference_mode(), autocast(self.precision, self.device):
                res = self.model(**inputs)
            self.forward_calls += 1
            for i in range(len(idx)):
                out.append(
                    decode_queries(
                        res.logits[i],
                        res.pred_boxes[i],
                        res.last_hidden_state[i],
                        A,
                        H,
                        W,
                        self.score_threshold,
                        self.nms_iou,
                        self.max_per_view,
                    )
                )
        return out

    def detect_view(self, image: np.ndarray, part_names: Sequence[str], view: int = 0) -> ViewDetections:
        """image (H,W,3) uint8 RGB -> (xyxy (n,4) f32, labels (n,) i16, scores (n,) f32, feats (n,d_model) f32)."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be (H,W,3) uint8, got {image.shape} {image.dtype}")
        return self.detect_views(image[None], part_names)[0]

    def detect_object(self, images: np.ndarray, part_names: Sequence[str]) -> Detections:
        """All views of one object in batches (what :func:`pipeline.detect.types.detect_object` does view by view)."""
        per_view = self.detect_views(images, part_names)
        return Detections.concat(per_view, self.feat_dim, simulated=False)
