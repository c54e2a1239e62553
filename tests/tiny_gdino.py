"""A tiny random-weight Grounding DINO saved as a local model directory (STACK §11.1).

Unlike the 11-word vocabulary of STACK §11, the tokenizer puts [PAD], [UNK], [CLS], [SEP],
[MASK], "." and "?" at BERT-base's ids (0, 100-103, 1012, 1029): transformers' Grounding
DINO finds prompt phrases (text masks, and the label maps of its training loss) by those
ids, so a model that is to be *trained* needs them. Part words sit after 1040.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

SPECIAL = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]", 1012: ".", 1029: "?"}


def bert_like_vocab(words: Sequence[str], size: int = 1100) -> list[str]:
    vocab = [f"[unused{i}]" for i in range(size)]
    for i, w in SPECIAL.items():
        vocab[i] = w
    for k, w in enumerate(sorted(set(words))):
        vocab[1040 + k] = w
    return vocab


def tiny_gdino_config(vocab_size: int, *, d_model: int = 32, num_queries: int = 20):  # -> GroundingDinoConfig
    """The tiny architecture (ResNet backbone, one-layer BERT, d_model 32) of the tests and benchmarks."""
    from transformers import BertConfig, GroundingDinoConfig, ResNetConfig

    backbone = ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1], layer_type="basic", out_features=["stage2", "stage3", "stage4"]
    )
    text = BertConfig(
        vocab_size=vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, max_position_embeddings=64
    )
    return GroundingDinoConfig(
        backbone_config=backbone,
        text_config=text,
        d_model=d_model,
        num_queries=num_queries,
        encoder_layers=1,
        decoder_layers=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        num_feature_levels=4,
        encoder_n_points=2,
        decoder_n_points=2,
        max_text_len=32,
    )


def save_tiny_gdino(
    directory: Path, words: Sequence[str], *, image_size: int = 96, d_model: int = 32, num_queries: int = 20, seed: int = 0
) -> Path:
    """Build, save (save_pretrained: safetensors + processor) and return ``directory``."""
    import torch
    import transformers  # noqa: F401
    from transformers import BertTokenizer, GroundingDinoForObjectDetection, GroundingDinoProcessor
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import GroundingDinoImageProcessorPil

    vocab = bert_like_vocab([t for w in words for t in w.split()])
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)})
    torch.manual_seed(seed)
    cfg = tiny_gdino_config(len(vocab), d_model=d_model, num_queries=num_queries)
    model = GroundingDinoForObjectDetection(cfg).eval()
    proc = GroundingDinoProcessor(GroundingDinoImageProcessorPil(size={"shortest_edge": image_size, "longest_edge": image_size}), tok)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    proc.save_pretrained(directory)
    return directory
