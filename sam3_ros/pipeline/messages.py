"""Engine ``Instances`` -> ``sam3_ros/msg/InstanceArray`` (a rosbags dataclass, transport-neutral).

The DDS-direct transport serializes these dataclasses directly; the rclpy layer converts them field
by field; evaluation writes them to bags. RLE encoding happens here, once per published frame.
"""

from __future__ import annotations

import numpy as np

from ..codec import rle
from ..engine.types import Instances, to_host
from ..interfaces import typestore


def stamp_to_time(stamp_ns: int):
    """builtin_interfaces/Time from nanoseconds."""
    Time = typestore().types["builtin_interfaces/msg/Time"]
    return Time(sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000))


def time_to_ns(time) -> int:
    """Nanoseconds from builtin_interfaces/Time."""
    return int(time.sec) * 1_000_000_000 + int(time.nanosec)


def header(stamp_ns: int, frame_id: str = ""):
    """std_msgs/Header with a stamp in nanoseconds."""
    return typestore().types["std_msgs/msg/Header"](stamp=stamp_to_time(stamp_ns), frame_id=frame_id)


def image_message(fields: dict, stamp_ns: int, frame_id: str = ""):
    """sensor_msgs/Image from ``sam3_ros.codec.image.rgb_to_image_fields`` output and a stamp."""
    return typestore().types["sensor_msgs/msg/Image"](header=header(stamp_ns, frame_id), **fields)


def compressed_message(data: bytes, fmt: str, stamp_ns: int, frame_id: str = ""):
    """sensor_msgs/CompressedImage holding ``data`` (jpeg or png bytes)."""
    return typestore().types["sensor_msgs/msg/CompressedImage"](
        header=header(stamp_ns, frame_id), format=fmt, data=np.frombuffer(data, np.uint8)
    )


def instances_to_message(
    instances: Instances,
    *,
    latency_ms: float = 0.0,
    dropped_frames: int = 0,
    num_positive_exemplars: int = 0,
    num_negative_exemplars: int = 0,
    missed_frames: int = 0,
):
    """Build the ``InstanceArray`` for one processed frame (header copied from the source image).

    Tracked objects whose mask is empty in this frame (hidden, or out of view) are not listed, as the
    reference's output does; ``num_hidden_objects`` counts them."""
    types = typestore().types
    Instance, InstanceArray = types["sam3_ros/msg/Instance"], types["sam3_ros/msg/InstanceArray"]
    h, w = instances.image_size
    order = np.argsort(np.asarray(to_host(instances.ids)), kind="stable")
    ids, scores = np.asarray(to_host(instances.ids))[order], np.asarray(to_host(instances.scores))[order]
    boxes = np.asarray(to_host(instances.boxes), np.float32)[order]
    detected = np.asarray(to_host(instances.detected))[order]
    age = np.asarray(to_host(instances.age))[order]
    lost = np.asarray(to_host(instances.frames_since_detected))[order]
    concepts = [instances.concepts[i] for i in order]
    counts = _encode_masks(instances.masks, order) if len(order) else []
    visible = [i for i in range(len(order)) if len(counts[i]) > 1]  # an empty mask is one background run
    items = [
        Instance(
            id=int(ids[i]),
            concept=concepts[i],
            score=float(scores[i]),
            box=boxes[i].copy(),
            mask_height=h,
            mask_width=w,
            mask_rle=counts[i],
            age=int(age[i]),
            detected=bool(detected[i]),
            frames_since_detected=int(lost[i]),
            has_3d=False,  # the 3D step fills these in on cameras with depth (messages_3d.add_3d_to_instances)
            depth_pixels_read=0,
            depth_pixels_used=0,
        )
        for i in visible
    ]
    return InstanceArray(
        header=header(instances.stamp_ns, instances.frame_id),
        camera=instances.camera,
        instances=items,
        num_hidden_objects=len(order) - len(visible),
        prompt=list(instances.phrases),
        num_positive_exemplars=num_positive_exemplars,
        num_negative_exemplars=num_negative_exemplars,
        latency_ms=float(latency_ms),
        dropped_frames=int(dropped_frames),
        missed_frames=int(missed_frames),
    )


def _encode_masks(masks, order: np.ndarray) -> list[np.ndarray]:
    """COCO RLE counts of ``masks[order]``: the engine's ``RleMasks`` carry them already; torch masks go
    through the kernels' dispatch, so masks on a GPU are encoded there and only the counts are copied to
    the host."""
    if isinstance(masks, rle.RleMasks):
        return [masks.counts[i] for i in order]
    if hasattr(masks, "detach"):
        import torch  # loaded already when the masks are tensors

        from ..kernels.ops import rle_encode

        index = torch.as_tensor(order, dtype=torch.long, device=masks.device)
        return rle_encode(masks.index_select(0, index).bool())
    return rle.encode(np.asarray(masks, bool)[order])
