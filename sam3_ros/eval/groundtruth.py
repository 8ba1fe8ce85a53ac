"""Ground truth in SA-Co/VEval (YTVIS-style) JSON: videos, noun phrases per video, masklets as COCO RLE.

Layout (what :class:`GroundTruthBuilder` writes and :class:`GroundTruth` reads)::

    {"info": {...},
     "videos": [{"id": 1, "name": "...", "width": W, "height": H, "length": T, "file_names": [...],
                 "stamps_ns": [...]}],                 # stamps_ns: optional, our addition (see below)
     "categories": [{"id": 1, "name": "red circle"}, ...],          # one per noun phrase
     "video_np_pairs": [{"video_id": 1, "category_id": 1, "noun_phrase": "red circle",
                         "num_masklets": 2}, ...],                  # num_masklets 0: a negative phrase
     "annotations": [{"id": 1, "video_id": 1, "category_id": 1, "segmentations": [RLE | null] * T,
                      "areas": [...], "bboxes": [...], "iscrowd": 0,
                      "centroids_3d": [[x, y, z] | null] * T, "extents_3d": [...]}]}   # with depth, ours

With depth (our addition), the video also lists ``camera_info`` (fx, fy, cx, cy, width, height) and the bag's
``depth_topic`` and ``camera_info_topic``; each annotation its visible part's 3D centroid and extent per frame, in
metres in the camera optical frame.

RLE counts may be compressed strings (pycocotools, what SA-Co/VEval and YTVIS ship) or lists.
Without ``video_np_pairs`` (plain YTVIS), every category with a masklet in the video is a phrase.

Frames of a bag and of the ground truth are paired by capture stamp when the video lists
``stamps_ns`` (header stamps of the camera messages), otherwise by order: the i-th camera message is
frame i. A converted real dataset therefore needs only its frames written to a bag in order.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from ..codec import rle
from .metrics import FrameObjects


def compress(counts: np.ndarray, height: int, width: int) -> dict:
    """Our uncompressed counts -> a COCO compressed RLE dict (JSON-ready)."""
    obj = mask_utils.frPyObjects({"size": [height, width], "counts": [int(c) for c in counts]}, height, width)
    return {"size": [height, width], "counts": obj["counts"].decode("ascii")}


def decode_segmentation(seg: dict) -> np.ndarray:
    """A COCO RLE (compressed string or list counts) -> (H, W) bool."""
    h, w = (int(v) for v in seg["size"])
    counts = seg["counts"]
    if isinstance(counts, list):
        return rle.decode(np.asarray(counts), h, w)
    return mask_utils.decode({"size": [h, w], "counts": counts.encode("ascii")}).astype(bool)


class GroundTruthBuilder:
    """Collects one video's ground truth frame by frame, then writes the JSON file."""

    def __init__(self, name: str, width: int, height: int, phrases: list[str], info: dict | None = None):
        self.name, self.width, self.height = name, width, height
        self.phrases = list(dict.fromkeys(phrases))
        self.info = dict(info or {})
        self._stamps: list[int] = []
        self._tracks: dict[int, dict] = {}  # object id -> {"concept", "segmentations": {frame: rle}, "3d": {...}}
        self.depth: dict = {}  # with depth: camera_info, depth_topic, camera_info_topic (the video's entry)

    def add_frame(
        self, stamp_ns: int, ids, concepts: list[str], masks: np.ndarray, centroids=None, extents=None
    ) -> None:
        """Add the next frame's objects (visible masks, (N, H, W) bool; with depth their (N, 3) 3D centroids and
        extents)."""
        t = len(self._stamps)
        self._stamps.append(int(stamp_ns))
        for i, (obj_id, concept, counts) in enumerate(
            zip(np.asarray(ids).tolist(), concepts, rle.encode(np.asarray(masks, bool)))
        ):
            if concept not in self.phrases:
                continue  # distractors are not annotated: no phrase of this video names them
            track = self._tracks.setdefault(int(obj_id), {"concept": concept, "segmentations": {}, "3d": {}})
            track["segmentations"][t] = counts
            if centroids is not None:
                track["3d"][t] = ([float(v) for v in centroids[i]], [float(v) for v in extents[i]])

    def to_dict(self) -> dict:
        length, h, w = len(self._stamps), self.height, self.width
        categories = [{"id": i + 1, "name": p} for i, p in enumerate(self.phrases)]
        category_id = {p: i + 1 for i, p in enumerate(self.phrases)}
        annotations = []
        for ann_id, (obj_id, track) in enumerate(sorted(self._tracks.items()), start=1):
            segs, areas, boxes = [None] * length, [None] * length, [None] * length
            for t, counts in track["segmentations"].items():
                segs[t] = compress(counts, h, w)
                areas[t] = int(counts[1::2].sum())
                x0, y0, x1, y1 = rle.bbox(counts, h, w).tolist()
                boxes[t] = [x0, y0, x1 - x0, y1 - y0]  # COCO xywh
            annotation = {
                "id": ann_id,
                "video_id": 1,
                "category_id": category_id[track["concept"]],
                "object_id": obj_id,
                "noun_phrase": track["concept"],
                "segmentations": segs,
                "areas": areas,
                "bboxes": boxes,
                "iscrowd": 0,
            }
            if self.depth:
                annotation["centroids_3d"] = [track["3d"][t][0] if t in track["3d"] else None for t in range(length)]
                annotation["extents_3d"] = [track["3d"][t][1] if t in track["3d"] else None for t in range(length)]
            annotations.append(annotation)
        masklets = {p: sum(t["concept"] == p for t in self._tracks.values()) for p in self.phrases}
        return {
            "info": self.info,
            "videos": [
                {
                    "id": 1,
                    "name": self.name,
                    "width": w,
                    "height": h,
                    "length": length,
                    "file_names": [f"{self.name}/{t:05d}.jpg" for t in range(length)],
                    "stamps_ns": self._stamps,
                    **self.depth,
                }
            ],
            "categories": categories,
            "video_np_pairs": [
                {"video_id": 1, "category_id": category_id[p], "noun_phrase": p, "num_masklets": masklets[p]}
                for p in self.phrases
            ],
            "annotations": annotations,
        }

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict()))
        return path


class GroundTruth:
    """One video of a ground-truth file, ready to score frame by frame."""

    def __init__(self, data: dict, video: str | int | None = None):
        for key in ("videos", "annotations", "categories"):
            if key not in data:
                raise ValueError(f"ground truth has no {key!r} list (expected SA-Co/VEval or YTVIS JSON)")
        self.video = self._select(data["videos"], video)
        vid = self.video["id"]
        names = {c["id"]: c["name"] for c in data["categories"]}
        self.annotations = [a for a in data["annotations"] if a["video_id"] == vid]
        pairs = [p for p in data.get("video_np_pairs", []) if p["video_id"] == vid]
        if pairs:
            self.phrases = [p.get("noun_phrase") or names[p["category_id"]] for p in pairs]
        else:
            self.phrases = sorted({names[a["category_id"]] for a in self.annotations})
        self._concept = [a.get("noun_phrase") or names[a["category_id"]] for a in self.annotations]
        self.length = int(self.video.get("length") or len(self.annotations[0]["segmentations"]))
        self.height, self.width = int(self.video["height"]), int(self.video["width"])
        stamps = self.video.get("stamps_ns")
        self._frame_of_stamp = {int(s): t for t, s in enumerate(stamps)} if stamps else None

    @classmethod
    def load(cls, path: str | Path, video: str | int | None = None) -> "GroundTruth":
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read ground truth {path}: {exc}") from None
        return cls(data, video)

    @staticmethod
    def _select(videos: list[dict], video: str | int | None) -> dict:
        if video is None:
            if len(videos) != 1:
                raise ValueError(
                    f"ground truth has {len(videos)} videos; choose one with --video "
                    f"({', '.join(str(v.get('name', v['id'])) for v in videos[:10])})"
                )
            return videos[0]
        for v in videos:
            if str(v["id"]) == str(video) or v.get("name") == video:
                return v
        raise ValueError(f"no video {video!r} in the ground truth")

    @property
    def positive_phrases(self) -> list[str]:
        """Phrases with at least one masklet in this video."""
        return [p for p in self.phrases if p in set(self._concept)]

    def frame_index(self, position: int, stamp_ns: int) -> int | None:
        """GT frame of the ``position``-th camera message with header stamp ``stamp_ns`` (None: not annotated)."""
        if self._frame_of_stamp is not None:
            return self._frame_of_stamp.get(int(stamp_ns))
        return position if position < self.length else None

    @property
    def has_3d(self) -> bool:
        """Whether the video has depth ground truth (camera_info, and 3D per annotation)."""
        return "camera_info" in self.video and all("centroids_3d" in a for a in self.annotations)

    @property
    def depth_topic(self) -> str | None:
        """The bag's depth image topic, for ground truth with depth."""
        return self.video.get("depth_topic")

    def frame_3d(self, t: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """object id -> (centroid, extent) of the objects annotated on frame ``t`` (needs ``has_3d``)."""
        out = {}
        for a in self.annotations:
            if a["centroids_3d"][t] is not None:
                out[a.get("object_id", a["id"])] = (np.asarray(a["centroids_3d"][t]), np.asarray(a["extents_3d"][t]))
        return out

    def frame(self, t: int) -> FrameObjects:
        """Objects annotated on frame ``t``."""
        ids, concepts, masks = [], [], []
        for a, concept in zip(self.annotations, self._concept):
            seg = a["segmentations"][t]
            if seg is not None:
                ids.append(a.get("object_id", a["id"]))
                concepts.append(concept)
                masks.append(decode_segmentation(seg))
        return FrameObjects(ids, concepts, np.stack(masks) if masks else np.zeros((0, self.height, self.width), bool))
