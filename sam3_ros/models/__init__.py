"""Built-in model definitions (tiny configurations of the SAM 3 architecture). No ROS, no downloads."""

from .sam3_random import SAM3_IMAGE_SIZE, build_sam3_random, sam3_random_config
from .tiny_random import TINY_IMAGE_SIZE, HashTokenizer, build_tiny_random, tiny_random_config

BUILTIN_MODELS = ("tiny-random", "sam3-random")

__all__ = ["BUILTIN_MODELS", "SAM3_IMAGE_SIZE", "TINY_IMAGE_SIZE", "HashTokenizer", "build_sam3_random",
           "build_tiny_random", "sam3_random_config", "tiny_random_config"]
