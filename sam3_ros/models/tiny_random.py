"""``tiny-random``: the SAM 3 video architecture at toy size with seeded random weights.

For tests and CPU demos: same modules as ``facebook/sam3`` (detector with presence token, tracker with
memory attention), 112 px input, 16 detector queries, one layer per block. The text tokenizer is a
seeded word hash (no vocabulary file exists for random weights).
"""

from __future__ import annotations

import zlib
from dataclasses import replace

import torch

from .small import MAX_TOKENS, SmallSizes, small_config

TINY_IMAGE_SIZE = 112
_VOCAB = 1000
TINY_SIZES = SmallSizes(
    image_size=TINY_IMAGE_SIZE,
    vit_width=32,
    vit_layers=2,
    vit_heads=2,
    global_attention=(1,),
    vocab_size=_VOCAB,
    bos_token_id=_VOCAB - 2,
    eos_token_id=_VOCAB - 1,
    text_width=32,
    text_layers=1,
    heads=2,
    mlp=64,
    detr_layers=1,
    queries=16,
    iou_head=32,
)


def tiny_random_config(image_size: int = TINY_IMAGE_SIZE):
    """The ``Sam3VideoConfig`` of the tiny model (``image_size`` a multiple of 14)."""
    try:
        return small_config(replace(TINY_SIZES, image_size=image_size))
    except ValueError as exc:
        raise ValueError(f"tiny-random {exc}") from None


def build_tiny_random(seed: int = 0, image_size: int = TINY_IMAGE_SIZE):
    """A ``Sam3VideoModel`` with the tiny configuration and weights drawn from ``seed`` (CPU, fp32, eval)."""
    from transformers import Sam3VideoModel
    from transformers.utils import logging as hf_logging

    config = tiny_random_config(image_size)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the tiny vocabulary triggers a harmless bos/eos range warning
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = Sam3VideoModel(config)
    finally:
        hf_logging.set_verbosity(verbosity)
    return model.eval()


class HashTokenizer:
    """Deterministic word-hash tokenizer for the random-weight model: ``<bos> words... <eos> <pad>...``."""

    def __init__(self, vocab_size: int = _VOCAB, max_length: int = MAX_TOKENS):
        self.vocab_size = vocab_size
        self.max_length = max_length
        self.bos, self.eos, self.pad = vocab_size - 2, vocab_size - 1, 0

    def __call__(self, phrases: list[str]) -> dict[str, torch.Tensor]:
        """Token ids and attention mask, (P, L) each, padded to the longest phrase."""
        rows = []
        for phrase in phrases:
            words = [1 + zlib.crc32(w.encode()) % (self.vocab_size - 3) for w in phrase.lower().split()]
            rows.append([self.bos, *words[: self.max_length - 2], self.eos])
        length = max(len(r) for r in rows)
        ids = torch.full((len(rows), length), self.pad, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        return {"input_ids": ids, "attention_mask": mask}
