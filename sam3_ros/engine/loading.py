"""Model loading: a built-in name (``toy``, ``tiny-random``, ``sam3-random``) or a local directory in
transformers format.

Never downloads. A missing or unreadable model gives one ``ModelLoadError`` naming the path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ..models import (
    BUILTIN_MODELS,
    SAM3_IMAGE_SIZE,
    TINY_IMAGE_SIZE,
    TOY_DIR,
    HashTokenizer,
    build_sam3_random,
    build_tiny_random,
)

_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
_TOKENIZER_FILES = ("tokenizer.json", "vocab.json")  # without them transformers builds an empty-vocabulary tokenizer
_MAX_TOKENS = 32  # phrases are padded (and cut) to SAM 3's text length


class ModelLoadError(ValueError):
    """The model named by ``Settings.model`` cannot be loaded (message names the path and what is wrong)."""


@dataclass
class LoadedModel:
    """A SAM 3 video model with the tokenizer for its text encoder."""

    name: str
    model: Any  # transformers Sam3VideoModel, eval mode, on its device
    tokenize: Callable[[list[str]], dict[str, torch.Tensor]]  # phrases -> input_ids, attention_mask (P, L)


def load_model(
    spec: str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, image_size: int = 0
) -> LoadedModel:
    """Load ``spec`` (built-in name or local directory) onto ``device`` in ``dtype``.

    ``image_size`` (0 = the model's own) picks another input side for built-in models.
    """
    if spec == "toy":  # trained by `sam3-ros train-toy`, shipped inside the package
        if not (TOY_DIR / "model.safetensors").is_file():
            raise ModelLoadError(f"built-in model 'toy' has no weights in {TOY_DIR} (run `sam3-ros train-toy`)")
        model, tokenize = _load_directory(TOY_DIR)
        if image_size and image_size != model.config.image_size:
            raise ModelLoadError(f"image_size={image_size}: the toy model is trained at {model.config.image_size} px")
    elif spec == "tiny-random":
        model, tokenize = build_tiny_random(image_size=image_size or TINY_IMAGE_SIZE), HashTokenizer()
    elif spec == "sam3-random":
        model = build_sam3_random(image_size=image_size or SAM3_IMAGE_SIZE)
        tokenize = HashTokenizer(vocab_size=model.config.detector_config.text_config.vocab_size)
    else:
        model, tokenize = _load_directory(Path(spec).expanduser())
        if image_size and image_size != model.config.image_size:
            raise ModelLoadError(
                f"image_size={image_size}: only built-in models can change their input size "
                f"(model {spec} uses {model.config.image_size})"
            )
    return LoadedModel(name=spec, model=model.to(device=device, dtype=dtype).eval(), tokenize=tokenize)


def _load_directory(path: Path):
    from transformers import AutoTokenizer, Sam3VideoModel

    if not path.is_dir():
        raise ModelLoadError(
            f"model {str(path)!r} is neither a built-in name ({', '.join(BUILTIN_MODELS)}) nor a directory"
        )
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"model directory {path} has no config.json (expected transformers format)")
    if not any((path / name).is_file() for name in _WEIGHT_FILES):
        raise ModelLoadError(f"model directory {path} has no weights ({' or '.join(_WEIGHT_FILES)})")
    if not any((path / name).is_file() for name in _TOKENIZER_FILES):
        raise ModelLoadError(f"model directory {path} has no tokenizer ({' or '.join(_TOKENIZER_FILES)})")
    try:
        model = Sam3VideoModel.from_pretrained(path, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as exc:  # corrupt json/safetensors, wrong architecture, missing tokenizer files
        raise ModelLoadError(f"cannot load model from {path}: {type(exc).__name__}: {exc}") from None

    return model, phrase_tokenizer(tokenizer)


def phrase_tokenizer(tokenizer) -> Callable[[list[str]], dict[str, torch.Tensor]]:
    """Phrases -> ``input_ids``/``attention_mask`` (P, 32) with a transformers tokenizer, as the detector reads them."""

    def tokenize(phrases: list[str]) -> dict[str, torch.Tensor]:
        out = tokenizer(phrases, padding="max_length", max_length=_MAX_TOKENS, truncation=True, return_tensors="pt")
        return {"input_ids": out["input_ids"], "attention_mask": out["attention_mask"]}

    return tokenize
