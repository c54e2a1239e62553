"""Box-prompted SAM masks (SPEC §4): one image encoding per view, all boxes in one batch.

The per-view image embedding is returned (float16) so the stage can cache it; given back
later, it replaces the encoder run. The decoder always consumes the float16-rounded
embedding, so fresh and cached runs give identical masks.

The views to encode go through the image encoder ``batch_size`` at a time (the encoder is
nearly all of SAM's cost), under autocast when ``precision`` is bf16/fp16; the decoder runs
in float32. The CPU resize of the next batch overlaps the current forward. The steps are
those of ``SamPredictor.set_image``/``predict_torch`` but keep no state between calls, so one
masker may serve several threads.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from pipeline.detect.types import Detections


class SamCheckpointNotFoundError(FileNotFoundError):
    """The SAM checkpoint file named in params does not exist."""


class SamCheckpointError(ValueError):
    """The SAM checkpoint exists but is not a plain state dict matching the model type."""


def _import_segment_anything():
    from .torchvision_shim import install

    install()
    import segment_anything

    return segment_anything


class SamMasker:
    """Masks for the boxes of one object with segment-anything's modules (``SamPredictor``'s steps).

    ``model`` is a registry name (``"vit_b"``, ``"vit_l"``, ``"vit_h"``) with ``checkpoint_path``,
    or an already built ``segment_anything.modeling.Sam`` module (checkpoint_path ignored).
    ``batch_size`` null: :data:`pipeline.batching.AUTO_BATCH` of the device; ``precision``:
    see :func:`pipeline.batching.resolve_precision` (the encoder only).
    """

    simulated = False

    def __init__(
        self, model, checkpoint_path: str | Path | None = None, device: str = "cpu", batch_size: int | None = None, precision: str = "fp32"
    ):
        from pipeline.batching import resolve_batch_size, resolve_precision

        sa = _import_segment_anything()
        self.device = torch.device(device)
        self.batch_size = resolve_batch_size(batch_size, self.device)
        self.precision = resolve_precision(precision, self.device)
        if isinstance(model, str):
            if model not in sa.sam_model_registry:
                raise ValueError(f"unknown SAM model type {model!r}; one of {sorted(sa.sam_model_registry)}")
            if checkpoint_path is None:
                raise ValueError(f"SAM model type {model!r} needs a checkpoint_path")
            path = Path(checkpoint_path)
            if not path.is_file():
                raise SamCheckpointNotFoundError(f"SAM checkpoint not found: {path}")
            sam = sa.sam_model_registry[model](checkpoint=None)
            try:  # weights_only: tensors and containers only, no code runs from the file
                state = torch.load(path, map_location=self.device, weights_only=True)
                sam.load_state_dict(state, strict=True)
            except Exception as e:  # noqa: BLE001 - unpickling/shape errors all mean a bad file
                raise SamCheckpointError(f"cannot load SAM {model} checkpoint {path}: {e}") from e
        elif isinstance(model, torch.nn.Module):
            sam = model
        else:
            raise TypeError(f"model must be a SAM type name or a Sam module, got {type(model).__name__}")
        self.sam = sam.to(self.device).eval()
        self.transform = sa.utils.transforms.ResizeLongestSide(self.sam.image_encoder.img_size)
        self.encode_calls = 0  # views encoded
        self.encoder_forwards = 0  # image-encoder forwards (batches)
        self.decode_calls = 0  # decoder forwards (one per view with boxes)

    @property
    def embedding_shape(self) -> tuple[int, int, int, int]:
        enc = self.sam.image_encoder
        g = enc.img_size // enc.patch_embed.proj.kernel_size[0]
        return (1, int(self.sam.prompt_encoder.embed_dim), int(g), int(g))

    def _input_batch(self, images: np.ndarray) -> torch.Tensor:
        """(b,H,W,3) uint8 -> (b,3,S,S) float, resized, normalised and padded (``set_image``'s steps)."""
        x = np.stack([self.transform.apply_image(im) for im in images])
        t = torch.as_tensor(x).permute(0, 3, 1, 2).contiguous()
        return self.sam.preprocess(t.float())

    def encode(self, images: np.ndarray) -> np.ndarray:
        """(b,H,W,3) uint8 RGB -> (b,C,h,w) float16 image embeddings, ``batch_size`` views per forward."""
        from pipeline.batching import autocast, chunks, prefetched

        images = np.asarray(images)
        out = []
        batches = chunks(range(len(images)), self.batch_size)
        for x in prefetched(lambda b: self._input_batch(images[b.start : b.stop]), batches):
            with torch.inference_mode(), autocast(self.precision, self.device):
                emb = self.sam.image_encoder(x.to(self.device, non_blocking=True))
            self.encoder_forwards += 1
            self.encode_calls += len(x)
            out.append(emb.to(torch.float16).cpu().numpy())
        C, h, w = self.embedding_shape[1:]
        return np.concatenate(out) if out else np.zeros((0, C, h, w), np.float16)

    def _check_embedding(self, emb: np.ndarray) -> np.ndarray:
        if tuple(np.shape(emb)) != self.embedding_shape:
            raise ValueError(f"cached SAM embedding has shape {tuple(np.shape(emb))}, model expects {self.embedding_shape}")
        return np.asarray(emb, dtype=np.float16)

    def decode(self, emb16: np.ndarray, xyxy: np.ndarray, height: int, width: int) -> np.ndarray:
        """One view's (1,C,h,w) float16 embedding and (n,4) boxes -> (n,H,W) bool masks (``predict_torch``)."""
        sam = self.sam
        feats = torch.as_tensor(emb16).to(self.device, torch.float32)
        boxes = torch.as_tensor(np.asarray(xyxy, np.float32), device=self.device)
        tb = self.transform.apply_boxes_torch(boxes, (height, width))
        input_size = tuple(self.transform.get_preprocess_shape(height, width, sam.image_encoder.img_size))
        with torch.inference_mode():
            sparse, dense = sam.prompt_encoder(points=None, boxes=tb, masks=None)
            low_res, _ = sam.mask_decoder(
                image_embeddings=feats,
                image_pe=sam.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=False,
            )
            m = sam.postprocess_masks(low_res, input_size, (height, width)) > sam.mask_threshold
        self.decode_calls += 1
        return m[:, 0].cpu().numpy()

    def masks_for_object(
        self,
        images: np.ndarray,
        det: Detections,
        embeddings: Mapping[int, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """images (V,H,W,3) uint8 RGB -> (masks (B,H,W) bool, {view: (1,C,h,w) float16}).

        Only views with boxes are encoded (or taken from ``embeddings``) and returned.
        """
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"images must be (V,H,W,3) uint8, got {images.shape} {images.dtype}")
        V, H, W = images.shape[:3]
        offs = det.offsets(V)
        masks = np.zeros((len(det), H, W), dtype=bool)
        with_boxes = [v for v in range(V) if offs[v + 1] > offs[v]]
        embeddings = embeddings or {}
        out_emb = {v: self._check_embedding(embeddings[v]) for v in with_boxes if v in embeddings}
        todo = [v for v in with_boxes if v not in out_emb]
        for v, e in zip(todo, self.encode(images[todo])):
            out_emb[v] = e[None]
        for v in with_boxes:
            s, e = int(offs[v]), int(offs[v + 1])
            masks[s:e] = self.decode(out_emb[v], det.xyxy[s:e], H, W)
        return masks, dict(sorted(out_emb.items()))


def build_tiny_sam(img_size: int = 128, patch_size: int = 16, dim: int = 32, seed: int = 0):
    """A random-weight SAM (~70k parameters) built from segment_anything's own modules.

    For tests and benchmarks of the real SamPredictor code path only: its masks are
    meaningless. ``img_size=1024`` gives the real input geometry (64x64 embeddings).
    """
    from functools import partial

    _import_segment_anything()
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    g = img_size // patch_size
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sam = Sam(
            image_encoder=ImageEncoderViT(
                img_size=img_size,
                patch_size=patch_size,
                embed_dim=dim,
                depth=1,
                num_heads=2,
                mlp_ratio=2.0,
                out_chans=dim,
                qkv_bias=True,
                norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                use_rel_pos=False,
                window_size=0,
                global_attn_indexes=(),
            ),
            prompt_encoder=PromptEncoder(
                embed_dim=dim, image_embedding_size=(g, g), input_image_size=(img_size, img_size), mask_in_chans=4
            ),
            mask_decoder=MaskDecoder(
                transformer_dim=dim,
                transformer=TwoWayTransformer(depth=1, embedding_dim=dim, num_heads=2, mlp_dim=32),
                num_multimask_outputs=3,
                iou_head_depth=1,
                iou_head_hidden_dim=16,
            ),
            pixel_mean=[123.675, 116.28, 103.53],
            pixel_std=[58.395, 57.12, 57.375],
        )
    return sam.eval()
