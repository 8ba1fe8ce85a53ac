"""Built-in model definitions (tiny configurations of the SAM 3 architecture). No ROS, no downloads."""

from .tiny_random import TINY_IMAGE_SIZE, HashTokenizer, build_tiny_random, tiny_random_config

BUILTIN_MODELS = ("tiny-random",)

__all__ = ["BUILTIN_MODELS", "TINY_IMAGE_SIZE", "HashTokenizer", "build_tiny_random", "tiny_random_config"]
