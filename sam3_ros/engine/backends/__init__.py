"""Vision encoder backends (eager, torch.compile, TensorRT) behind one call: pixels -> VisionFeatures."""

from .encoders import BACKENDS, BackendUnavailable, CompiledEncoder, EagerEncoder, TensorRTEncoder, make_encoder
from .vision import FeatureLayout, VisionEncoder, VisionFeatures

__all__ = [
    "BACKENDS",
    "BackendUnavailable",
    "CompiledEncoder",
    "EagerEncoder",
    "FeatureLayout",
    "TensorRTEncoder",
    "VisionEncoder",
    "VisionFeatures",
    "make_encoder",
]
