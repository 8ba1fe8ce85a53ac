"""The 3D error of an evaluation with depth ground truth (``make-bag --depth``).

For every frame that has an output, the node's 3D step (``pipeline.depth.locate_from_messages``, the same code
the node runs) is applied to the bag's depth image of that frame twice: once to the ground-truth masks (the 3D
step's own error) and once to the output's masks (what a robot gets: the model's masks and the 3D step), each
model mask paired with the ground-truth object of the same concept it overlaps most (IoU >= ``MATCH_IOU``).
Errors are against the truth in the ground truth: the centroid's distance, and the largest per-axis difference
of the extent, in metres.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import numpy as np

from ..codec import rle
from ..pipeline.depth import NoDepth3D, locate_from_messages
from ..pipeline.messages import time_to_ns
from .bags import read_messages
from .groundtruth import GroundTruth
from .metrics import FrameObjects, mask_iou

MATCH_IOU = 0.5
MIN_SCORE = 0.5  # the predictions scored, as for the accuracy metrics


class _Errors:
    def __init__(self):
        self.centroid: list[float] = []
        self.extent: list[float] = []
        self.without_3d = 0

    def add(self, located, row: int, truth: tuple[np.ndarray, np.ndarray]) -> None:
        if not located.valid[row]:
            self.without_3d += 1
            return
        self.centroid.append(float(np.linalg.norm(located.centroid[row] - truth[0])))
        self.extent.append(float(np.abs(located.size[row] - truth[1]).max()))

    def summary(self) -> dict:
        def stats(values):
            return {"median": float(np.median(values)), "p90": float(np.percentile(values, 90))} if values else None

        return {
            "objects": len(self.centroid),
            "without_3d": self.without_3d,
            "centroid_error_m": stats(self.centroid),
            "extent_error_m": stats(self.extent),
        }


def _boxes(masks: np.ndarray) -> np.ndarray:
    return np.array([rle.bbox(counts, *masks.shape[1:]) for counts in rle.encode(masks)], np.float64).reshape(-1, 4)


def depth_errors(bag: str | Path, gt: GroundTruth, outputs: Iterator[tuple[int, object]], settings) -> dict:
    """3D errors from ground-truth masks and from the outputs' masks (InstanceArrays, any order) over the frames
    with an output; ``settings`` the node's (its ``depth`` section)."""
    if not gt.has_3d:
        raise ValueError("the ground truth has no 3D (write the bag with make-bag --depth)")
    by_stamp = {time_to_ns(msg.header.stamp): msg for _, msg in outputs}
    camera_info = next(read_messages(bag, gt.video["camera_info_topic"]))[1]
    size = (gt.height, gt.width)
    from_gt, from_model = _Errors(), _Errors()
    for _, depth in read_messages(bag, gt.video["depth_topic"]):
        stamp = time_to_ns(depth.header.stamp)
        t = gt.frame_index(0, stamp)
        if t is None or stamp not in by_stamp:
            continue
        truth, objects = gt.frame_3d(t), gt.frame(t)
        try:
            located = locate_from_messages(
                depth, camera_info, size, SimpleNamespace(boxes=_boxes(objects.masks), masks=objects.masks), settings
            )
            for row, object_id in enumerate(objects.ids.tolist()):
                from_gt.add(located, row, truth[object_id])
            predicted = FrameObjects.from_message(by_stamp[stamp])
            predicted = predicted.subset(predicted.scores >= MIN_SCORE)
            pairs = _match(predicted, objects)
            if pairs:
                rows = [p for p, _ in pairs]
                located = locate_from_messages(
                    depth,
                    camera_info,
                    size,
                    SimpleNamespace(boxes=_boxes(predicted.masks[rows]), masks=predicted.masks[rows]),
                    settings,
                )
                for row, (_, g) in enumerate(pairs):
                    from_model.add(located, row, truth[int(objects.ids[g])])
        except NoDepth3D as exc:
            raise ValueError(f"frame {t}: {exc}") from None
    return {"from_gt_masks": from_gt.summary(), "from_model_masks": from_model.summary()}


def _match(predicted: FrameObjects, objects: FrameObjects) -> list[tuple[int, int]]:
    """(prediction row, ground-truth row) pairs: each ground-truth object with the same-concept prediction it
    overlaps most, if their IoU reaches MATCH_IOU (greedy by IoU, each prediction used once)."""
    if not len(predicted.ids) or not len(objects.ids):
        return []
    iou = mask_iou(predicted.masks, objects.masks)
    same = np.array([[p == g for g in objects.concepts] for p in predicted.concepts])
    iou = np.where(same, iou, 0.0)
    pairs = []
    for flat in np.argsort(iou, axis=None)[::-1]:
        p, g = np.unravel_index(flat, iou.shape)
        if iou[p, g] < MATCH_IOU:
            break
        if all(p != q and g != h for q, h in pairs):
            pairs.append((int(p), int(g)))
    return pairs
