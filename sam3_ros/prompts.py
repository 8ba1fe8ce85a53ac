"""The rules for prompt input: noun phrases, exemplar boxes, clicks (points with labels, and a box).

One function per kind of input decides what is accepted; the start-up settings check, the node's service
requests and the engine all call these, so a prompt is judged the same wherever it enters. Each returns the
input in engine form or raises ``ValueError`` with a message that says what was wrong.

Coordinates are source-image pixels, x right and y down. Bounds, chosen once:
- a point names a pixel: 0 <= x < W and 0 <= y < H, else it is rejected;
- a box (xyxy, x/y max exclusive) is clipped to the image, as a box drawn past the image's edge is meant;
  one that does not overlap the image, or is empty or inverted, is rejected.
Before the image size is known, a box is checked against the image's top and left edges only.

No dependency beyond numpy: ``sam3_ros.settings`` uses it too.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class PromptLimits(Protocol):
    """The prompt limits (``Settings.prompt``)."""

    max_phrases: int
    max_phrase_chars: int
    max_exemplar_boxes: int


def split_phrases(text: str) -> list[str]:
    """Comma-separated noun phrases -> their list, stripped, empty entries left out."""
    return [p.strip() for p in str(text).split(",") if p.strip()]


def check_phrases(phrases, limits: PromptLimits) -> list[str]:
    """Stripped phrases; ValueError for more than ``max_phrases``, or a phrase that is not a string, is empty,
    is longer than ``max_phrase_chars`` or is listed twice."""
    phrases = list(phrases)
    if len(phrases) > limits.max_phrases:
        raise ValueError(f"{len(phrases)} phrases, more than the limit of {limits.max_phrases} (prompt.max_phrases)")
    out: list[str] = []
    for i, phrase in enumerate(phrases):
        if not isinstance(phrase, str):
            raise ValueError(f"phrase {i} is not a string: {phrase!r}")
        text = phrase.strip()
        if not text:
            raise ValueError(f"phrase {i} is empty")
        if len(text) > limits.max_phrase_chars:
            raise ValueError(
                f"phrase {i} has {len(text)} characters, more than the limit of "
                f"{limits.max_phrase_chars} (prompt.max_phrase_chars)"
            )
        if text in out:
            raise ValueError(f"phrase {i} {text!r} is listed twice")
        out.append(text)
    return out


def check_box(box, image_size: tuple[int, int] | None, what: str = "box") -> np.ndarray:
    """One xyxy box -> (4,) float32 clipped to the image of ``image_size`` (H, W; None: not known yet)."""
    values = np.array(box, np.float32).reshape(-1)
    if values.size != 4:
        raise ValueError(f"{what} has {values.size} values; expected 4 [x_min, y_min, x_max, y_max]")
    if not np.isfinite(values).all():
        raise ValueError(f"{what} contains NaN or infinite values: {values.tolist()}")
    x0, y0, x1, y1 = (float(v) for v in values)
    shown = f"[{x0:g}, {y0:g}, {x1:g}, {y1:g}]"
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"{what} {shown} needs x_max > x_min and y_max > y_min")
    h, w = (float(image_size[0]), float(image_size[1])) if image_size is not None else (np.inf, np.inf)
    if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
        where = f"the {image_size[1]}x{image_size[0]} image" if image_size is not None else "the image"
        raise ValueError(f"{what} {shown} is outside {where}")
    return np.array([max(x0, 0.0), max(y0, 0.0), min(x1, w), min(y1, h)], np.float32)


def check_exemplar_boxes(
    boxes, labels, image_size: tuple[int, int] | None, limits: PromptLimits
) -> tuple[np.ndarray, np.ndarray]:
    """Exemplar boxes (N x 4 values, flat or (N, 4)) and their labels (True = positive) -> ((N, 4) float32
    clipped boxes, (N,) bool); at most ``max_exemplar_boxes``, one label per box."""
    flat = np.array(boxes, np.float32).reshape(-1)
    if flat.size % 4:
        raise ValueError(f"boxes has {flat.size} values; expected 4 per box [x_min, y_min, x_max, y_max]")
    count = flat.size // 4
    labels = np.array(labels, bool).reshape(-1)
    if count > limits.max_exemplar_boxes:
        raise ValueError(
            f"{count} exemplar boxes, more than the limit of {limits.max_exemplar_boxes} (prompt.max_exemplar_boxes)"
        )
    if labels.size != count:
        raise ValueError(f"{labels.size} box_labels for {count} boxes; give one label per box")
    checked = [check_box(b, image_size, f"box {i}") for i, b in enumerate(flat.reshape(count, 4))]
    return (np.stack(checked) if checked else np.zeros((0, 4), np.float32)), labels


def check_prompt(
    phrases, boxes, box_labels, image_size: tuple[int, int] | None, limits: PromptLimits
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """A concept prompt -> (phrases, boxes, box labels) as ``check_phrases`` and ``check_exemplar_boxes``
    return them; it needs at least one phrase or box."""
    phrases = check_phrases(phrases, limits)
    boxes, box_labels = check_exemplar_boxes(boxes, box_labels, image_size, limits)
    if not phrases and not len(boxes):
        raise ValueError("empty prompt: give at least one noun phrase or exemplar box")
    return phrases, boxes, box_labels


def check_clicks(points, labels, box, image_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Clicks on an image of ``image_size`` (H, W): points (P x 2 values, x y), labels (P,) 1 = on the object /
    0 = background, and an optional box (None) -> ((P, 2) float32, (P,) int64, clipped (4,) box or None).
    At least one point or a box."""
    flat = np.array(points if points is not None else [], np.float32).reshape(-1)
    if flat.size % 2:
        raise ValueError(f"points has {flat.size} values; expected 2 per point [x, y]")
    points = flat.reshape(-1, 2)
    labels = np.array(labels if labels is not None else [], np.int64).reshape(-1)
    if labels.size != len(points):
        raise ValueError(f"{labels.size} labels for {len(points)} points; give one label per point")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 1 (positive) or 0 (negative), got {sorted(set(labels.tolist()))}")
    if not np.isfinite(points).all():
        raise ValueError("points contain NaN or infinite values")
    if not len(points) and box is None:
        raise ValueError("no points and no box: give at least one click or a box")
    h, w = image_size
    outside = (points[:, 0] < 0) | (points[:, 1] < 0) | (points[:, 0] >= w) | (points[:, 1] >= h)
    if outside.any():
        x, y = points[int(np.argmax(outside))]
        raise ValueError(f"point ({x:g}, {y:g}) is outside the {w}x{h} image")
    return points, labels, (check_box(box, image_size) if box is not None else None)
