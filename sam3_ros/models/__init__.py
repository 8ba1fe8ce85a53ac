"""Built-in model definitions (tiny configurations of the SAM 3 architecture). No ROS, no downloads."""

from .sam3_random import SAM3_IMAGE_SIZE, build_sam3_random, sam3_random_config
from .tiny_random import TINY_IMAGE_SIZE, HashTokenizer, build_tiny_random, tiny_random_config
from .toy import TOY_DIR, TOY_IMAGE_SIZE, build_toy, build_toy_tokenizer, toy_config

BUILTIN_MODELS = ("toy", "tiny-random", "sam3-random")

__all__ = [
    "BUILTIN_MODELS",
    "SAM3_IMAGE_SIZE",
    "TINY_IMAGE_SIZE",
    "TOY_DIR",
    "TOY_IMAGE_SIZE",
    "HashTokenizer",
    "build_sam3_random",
    "build_tiny_random",
    "build_toy",
    "build_toy_tokenizer",
    "sam3_random_config",
    "tiny_random_config",
    "toy_config",
]
