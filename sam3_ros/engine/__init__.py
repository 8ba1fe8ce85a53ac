"""The streaming SAM 3 engine: detector + batched tracker + bounded memory bank + merge. No ROS here."""

from .types import ConceptPrompt, Frame, Instances

__all__ = ["ConceptPrompt", "Frame", "Instances"]
