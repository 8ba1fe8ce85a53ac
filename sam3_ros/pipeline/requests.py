"""Prompt requests (services and the ``/sam3/prompt`` topic) -> engine arguments, before they reach the engine.

Each function takes the request's fields (any object with them: rosbags or rclpy messages), the limits from
``Settings.prompt`` and the size of the camera's latest processed image, and returns engine-ready arguments
or raises ``ValueError`` with a message for the caller's ``success=false`` reply. What is accepted is decided
by ``sam3_ros.prompts`` (the rules the engine applies too); here only the message's form is read: flat arrays,
``object_id`` -1 for a new object, an empty box for none. Nothing here touches the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engine.types import ConceptPrompt
from ..prompts import check_clicks, check_phrases, check_prompt, split_phrases
from ..settings import PromptSettings


@dataclass
class PointsRequest:
    """A validated ``add_points``: ``object_id`` None creates a new object."""

    object_id: int | None
    points: np.ndarray  # (P, 2) float32, x y pixels
    labels: np.ndarray  # (P,) int64, 1 positive / 0 negative
    box: np.ndarray | None  # (4,) float32 xyxy, clipped to the image


def parse_prompt_text(text: str, limits: PromptSettings) -> list[str]:
    """Phrases from the comma-separated ``/sam3/prompt`` text; an empty prompt is an error."""
    phrases = check_phrases(split_phrases(text), limits)
    if not phrases:
        raise ValueError("empty prompt: give at least one noun phrase")
    return phrases


def parse_set_prompt(request, limits: PromptSettings, image_size: tuple[int, int] | None) -> ConceptPrompt:
    """A ``SetPrompt`` request -> ``ConceptPrompt``. ``image_size`` (H, W) of the latest processed
    image is needed only when exemplar boxes are given: they are drawn on that image."""
    if len(request.boxes) and image_size is None:
        raise ValueError("exemplar boxes need a processed image, and none has arrived yet")
    phrases, boxes, labels = check_prompt(list(request.phrases), request.boxes, request.box_labels, image_size, limits)
    return ConceptPrompt(phrases=phrases, boxes=boxes, box_labels=labels)


def parse_add_points(request, image_size: tuple[int, int] | None) -> PointsRequest:
    """An ``AddPoints`` request -> engine arguments (``sam3_ros.prompts.check_clicks``)."""
    object_id = int(request.object_id)
    if object_id < -1:
        raise ValueError(f"object_id {object_id} is invalid; use -1 for a new object or a published id")
    box = request.box if len(request.box) else None
    if image_size is None:
        raise ValueError("no image has been processed yet on this camera")
    points, labels, box = check_clicks(request.points, request.labels, box, image_size)
    return PointsRequest(object_id=None if object_id == -1 else object_id, points=points, labels=labels, box=box)
