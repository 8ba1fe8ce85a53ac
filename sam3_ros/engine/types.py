"""Data that crosses the engine boundary: what callers give the engine and what it returns.

The engine's surface (implemented in ``sam3_ros.engine``):
    set_prompt(prompt: ConceptPrompt, keep_tracks: bool = False) -> None
    add_points(obj_id: int | None, points (P,2) xy px, labels (P,) 1/0, box xyxy px | None) -> int
    remove(obj_id: int) -> None
    reset() -> None
    step(frame: Frame) -> Instances
Bad input raises ``ValueError`` with a message saying what was wrong; the engine stays usable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import torch

from ..codec.rle import RleMasks

# A per-instance array: a tensor on the engine's device, or a host array (``to_host`` gives the latter).
Array = Union[torch.Tensor, np.ndarray]


@dataclass
class Frame:
    """One camera image: RGB uint8, H x W x 3, on the host (numpy) or a device (torch)."""

    image: Array  # (H, W, 3) uint8
    stamp_ns: int = 0  # capture time copied from the source header, in nanoseconds
    frame_id: str = ""  # the source header's frame_id
    camera: str = ""  # stream key: the input topic


@dataclass
class ConceptPrompt:
    """What to find: noun phrases and/or exemplar boxes (xyxy pixels, positive or negative)."""

    phrases: list[str] = field(default_factory=list)
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    box_labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), bool))  # True = positive


@dataclass
class Instances:
    """Everything found in one processed frame.

    Tensors may live on the engine's device. The engine gives ``masks`` as their COCO run lengths
    (``codec.rle.RleMasks``, computed per object inside its box; ``np.asarray`` decodes them); elsewhere they
    may be an (N, H, W) bool array or tensor. ``concept_index[i]`` indexes ``phrases``; -1 marks an object
    created by clicks (concept "").
    Masks of one concept share no pixel: a pixel two objects claim goes to the one of higher tracker score
    (a new object's: its detection score); each box bounds the object's mask from before that step.
    """

    ids: Array  # (N,) int64, stable per object, never reused in a run
    scores: Array  # (N,) float32 in [0, 1]
    boxes: Array  # (N, 4) float32, xyxy in source-image pixels (x/y max exclusive)
    masks: Array | RleMasks  # (N, H, W) bool at source resolution, no pixel in two objects of one concept
    concept_index: Array  # (N,) int64
    detected: Array  # (N,) bool: matched by the detector this frame
    age: Array  # (N,) int64: frames since first seen
    frames_since_detected: Array  # (N,) int64
    phrases: list[str] = field(default_factory=list)
    stamp_ns: int = 0
    frame_id: str = ""
    camera: str = ""
    image_size: tuple[int, int] = (0, 0)  # (H, W) of the source image
    timings_ms: Mapping[str, float] = field(default_factory=dict)  # per-stage wall or CUDA-event times

    def __len__(self) -> int:
        return int(len(self.ids))

    @property
    def concepts(self) -> list[str]:
        """Noun phrase of each instance ("" for click-created objects)."""
        return [self.phrases[i] if i >= 0 else "" for i in np.asarray(to_host(self.concept_index)).tolist()]

    @classmethod
    def empty(cls, frame: Frame, phrases: list[str] | None = None) -> "Instances":
        """No instances, for a frame of the given size."""
        h, w = int(frame.image.shape[0]), int(frame.image.shape[1])
        return cls(
            ids=np.zeros((0,), np.int64),
            scores=np.zeros((0,), np.float32),
            boxes=np.zeros((0, 4), np.float32),
            masks=np.zeros((0, h, w), bool),
            concept_index=np.zeros((0,), np.int64),
            detected=np.zeros((0,), bool),
            age=np.zeros((0,), np.int64),
            frames_since_detected=np.zeros((0,), np.int64),
            phrases=list(phrases or []),
            stamp_ns=frame.stamp_ns,
            frame_id=frame.frame_id,
            camera=frame.camera,
            image_size=(h, w),
        )


def to_host(x: Any) -> Any:
    """``x`` on the host: a torch tensor as a numpy array (copied from its device, detached from autograd); a numpy
    array or anything else unchanged. For code after the engine that reads ``Instances`` fields, which may live on
    the engine's device."""
    return x.detach().cpu().numpy() if hasattr(x, "detach") else x
