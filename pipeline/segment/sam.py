"""Box-prompted SAM masks (SPEC §4): one image encoding per view, all boxes in one batch.

The per-view image embedding is returned (float16) so the stage can cache it; given back
later, it replaces the encoder run. The decoder always consumes the float16-rounded
embedding, so fresh and cached runs give identical masks.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

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
    """Masks for the boxes of one object with segment-anything's ``SamPredictor``.

    ``model`` is a registry name (``"vit_b"``, ``"vit_l"``, ``"vit_h"``) with ``checkpoint_path``,
    or an already built ``segment_anything.modeling.Sam`` module (checkpoint_path ignored).
    """

    simulated = False

    def __init__(self, model, checkpoint_path: str | Path | None = None, device: str = "cpu"):
        sa = _import_segment_anything()
        self.device = torch.device(device)
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
        self.predictor = sa.SamPredictor(self.sam)
        self.encode_calls = 0
        self.decode_calls = 0

    @property
    def embedding_shape(self) -> tuple[int, int, int, int]:
        enc = self.sam.image_encoder
        g = enc.img_size // enc.patch_embed.proj.kernel_size[0]
        return (1, int(self.sam.prompt_encoder.embed_dim), int(g), int(g))

    def _set_embedding(self, emb: np.ndarray, height: int, width: int) -> None:
        p = self.predictor
        if tuple(emb.shape) != self.embedding_shape:
            raise ValueError(f"cached SAM embedding has shape {tuple(emb.shape)}, model expects {self.embedding_shape}")
        p.reset_image()
        p.features = torch.as_tensor(np.asarray(emb, dtype=np.float16)).to(self.device, torch.float32)
        p.original_size = (height, width)
        p.input_size = tuple(p.transform.get_preprocess_shape(height, width, self.sam.image_encoder.img_size))
        p.is_image_set = True

    @torch.inference_mode()
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
        out_emb: dict[int, np.ndarray] = {}
        p = self.predictor
        for v in range(V):
            s, e = int(offs[v]), int(offs[v + 1])
            if s == e:
                continue
            if embeddings is not None and v in embeddings:
                emb16 = np.asarray(embeddings[v], dtype=np.float16)
            else:
                p.set_image(images[v], image_format="RGB")
                self.encode_calls += 1
                emb16 = p.features.detach().to(torch.float16).cpu().numpy()
            self._set_embedding(emb16, H, W)
            out_emb[v] = emb16
            boxes = torch.as_tensor(det.xyxy[s:e], dtype=torch.float32, device=self.device)
            tb = p.transform.apply_boxes_torch(boxes, (H, W))
            m, _, _ = p.predict_torch(point_coords=None, point_labels=None, boxes=tb, multimask_output=False)
            self.decode_calls += 1
            masks[s:e] = m[:, 0].cpu().numpy()
        p.reset_image()
        return masks, out_emb


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
                img_size=img_size, patch_size=patch_size, embed_dim=dim, depth=1, num_heads=2, mlp_ratio=2.0,
                out_chans=dim, qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                use_rel_pos=False, window_size=0, global_attn_indexes=(),
            ),
            prompt_encoder=PromptEncoder(
                embed_dim=dim, image_embedding_size=(g, g), input_image_size=(img_size, img_size), mask_in_chans=4
            ),
            mask_decoder=MaskDecoder(
                transformer_dim=dim,
                transformer=TwoWayTransformer(depth=1, embedding_dim=dim, num_heads=2, mlp_dim=32),
                num_multimask_outputs=3, iou_head_depth=1, iou_head_hidden_dim=16,
            ),
            pixel_mean=[123.675, 116.28, 103.53],
            pixel_std=[58.395, 57.12, 57.375],
        )
    return sam.eval()
