"""Validation of prompt requests (services and the ``/sam3/prompt`` topic) before they reach the engine.

Each function takes the request's fields (any object with them: rosbags or rclpy messages) and the
limits from ``Settings.prompt``, and returns engine-ready arguments or raises ``ValueError`` with a
message for the caller's ``success=false`` reply. Nothing here touches the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engine.types import ConceptPrompt
from ..settings import PromptSettings


@dataclass
class PointsRequest:
    """A validated ``add_points``: ``object_id`` None creates a new object."""

    object_id: int | None
    points: np.ndarray  # (P, 2) float32, x y pixels
    labels: np.ndarray  # (P,) int64, 1 positive / 0 negative
    box: np.ndarray | None  # (4,) float32 xyxy, clipped to the image


def parse_phrases(phrases: list[str], limits: PromptSettings) -> list[str]:
    """Stripped phrases, checked against the count and length limits (empty entries are an error)."""
    phrases = [str(p) for p in phrases]
    if len(phrases) > limits.max_phrases:
        raise ValueError(f"{len(phrases)} phrases, more than the limit of {limits.max_phrases}")
    out = []
    for i, phrase in enumerate(phrases):
        text = phrase.strip()
        if not text:
            raise ValueError(f"phrase {i} is empty")
        if len(text) > limits.max_phrase_chars:
            raise ValueError(f"phrase {i} has {len(text)} characters, more than the limit of {limits.max_phrase_chars}")
        out.append(text)
    return out


def parse_prompt_text(text: str, limits: PromptSettings) -> list[str]:
    """Phrases from the comma-separated ``/sam3/prompt`` text; an empty prompt is an error."""
    phrases = parse_phrases([p for p in str(text).split(",") if p.strip()], limits)
    if not phrases:
        raise ValueError("empty prompt: give at least one noun phrase")
    return phrases


def _finite(values: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{what} contain NaN or infinite values")
    return values


def clip_box(box: np.ndarray, image_size: tuple[int, int], what: str) -> np.ndarray:
    """Clip an xyxy box to the image; ValueError if it is empty, inverted or fully outside."""
    h, w = image_size
    x0, y0, x1, y1 = (float(v) for v in box)
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"{what} [{x0:g}, {y0:g}, {x1:g}, {y1:g}] needs x_max > x_min and y_max > y_min")
    if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
        raise ValueError(f"{what} [{x0:g}, {y0:g}, {x1:g}, {y1:g}] is outside the {w}x{h} image")
    return np.array([max(x0, 0.0), max(y0, 0.0), min(x1, float(w)), min(y1, float(h))], np.float32)


def parse_set_prompt(request, limits: PromptSettings, image_size: tuple[int, int] | None) -> ConceptPrompt:
    """A ``SetPrompt`` request -> ``ConceptPrompt``. ``image_size`` (H, W) of the latest processed
    image is needed only when exemplar boxes are given."""
    phrases = parse_phrases(list(request.phrases), limits)
    # np.array copies: message arrays can be read-only views of the received buffer
    flat = _finite(np.array(request.boxes, np.float32).reshape(-1), "boxes")
    labels = np.array(request.box_labels, bool).reshape(-1)
    if flat.size % 4:
        raise ValueError(f"boxes has {flat.size} values; expected 4 per box [x_min, y_min, x_max, y_max]")
    count = flat.size // 4
    if count > limits.max_exemplar_boxes:
        raise ValueError(f"{count} exemplar boxes, more than the limit of {limits.max_exemplar_boxes}")
    if labels.size != count:
        raise ValueError(f"{labels.size} box_labels for {count} boxes; give one label per box")
    if not phrases and not count:
        raise ValueError("empty prompt: give at least one noun phrase or exemplar box")
    boxes = np.zeros((0, 4), np.float32)
    if count:
        if image_size is None:
            raise ValueError("exemplar boxes need a processed image, and none has arrived yet")
        boxes = np.stack([clip_box(b, image_size, f"box {i}") for i, b in enumerate(flat.reshape(count, 4))])
    return ConceptPrompt(phrases=phrases, boxes=boxes, box_labels=labels)


def parse_add_points(request, image_size: tuple[int, int] | None) -> PointsRequest:
    """An ``AddPoints`` request -> engine arguments (points must lie inside the image)."""
    object_id = int(request.object_id)
    if object_id < -1:
        raise ValueError(f"object_id {object_id} is invalid; use -1 for a new object or a published id")
    points = _finite(np.array(request.points, np.float32).reshape(-1), "points")
    labels = np.array(request.labels).reshape(-1)
    box = _finite(np.array(request.box, np.float32).reshape(-1), "box")
    if points.size % 2:
        raise ValueError(f"points has {points.size} values; expected 2 per point [x, y]")
    points = points.reshape(-1, 2)
    if labels.size != len(points):
        raise ValueError(f"{labels.size} labels for {len(points)} points; give one label per point")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 1 (positive) or 0 (negative), got {sorted(set(labels.tolist()))}")
    if box.size not in (0, 4):
        raise ValueError(f"box has {box.size} values; expected none or 4 [x_min, y_min, x_max, y_max]")
    if not len(points) and not box.size:
        raise ValueError("no points and no box: give at least one click or a box")
    if image_size is None:
        raise ValueError("no image has been processed yet on this camera")
    h, w = image_size
    outside = (points[:, 0] < 0) | (points[:, 1] < 0) | (points[:, 0] >= w) | (points[:, 1] >= h)
    if outside.any():
        x, y = points[int(np.argmax(outside))]
        raise ValueError(f"point ({x:g}, {y:g}) is outside the {w}x{h} image")
    return PointsRequest(object_id=None if object_id == -1 else object_id, points=points,
                         labels=labels.astype(np.int64), box=clip_box(box, image_size, "box") if box.size else None)
