"""The streaming SAM 3 engine: detector + batched tracker + bounded memory bank + merge. No ROS here."""

from .engine import Engine, EngineCounters, load_engine
from .loading import LoadedModel, ModelLoadError, load_model
from .types import ConceptPrompt, Frame, Instances

__all__ = [
    "ConceptPrompt",
    "Engine",
    "EngineCounters",
    "Frame",
    "Instances",
    "LoadedModel",
    "ModelLoadError",
    "load_engine",
    "load_model",
]
