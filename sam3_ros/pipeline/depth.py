"""A camera's depth input: its aligned depth images and CameraInfo, paired with the colour frames by stamp.

The transport hands over every depth image and CameraInfo (cheap: only stored). The worker says which colour
frame it took (``want``, when it takes the frame), and after the engine step ``take``s the depth image whose
header stamp is closest to that frame's, within ``depth.max_stamp_diff_ms``: from the few most recent depth
images, or one that arrived while the engine ran (a camera often publishes depth a little after colour).
Older depth images are replaced by newer ones (latest wins, as for colour frames), so memory stays bounded.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from ..codec.depth import Intrinsics, depth_to_array
from ..settings import Settings
from .instances3d import Instances3D, locate_instances
from .messages import time_to_ns

RECENT_DEPTH = 4  # depth images kept for pairing: covers a depth stream running a few frames ahead of colour


def camera_info_topic(image_topic: str) -> str:
    """The CameraInfo topic beside an image topic, as image_transport names it: ``/cam/color/image_raw``
    (or ``.../image_raw/compressed``) -> ``/cam/color/camera_info``."""
    base = image_topic.rstrip("/")
    if base.endswith("/compressed"):
        base = base[: -len("/compressed")]
    if "/" not in base:
        return "camera_info"
    return f"{base.rsplit('/', 1)[0]}/camera_info"


def depth_inputs(settings: Settings) -> dict[str, tuple[str, str]]:
    """camera topic -> (depth topic, CameraInfo topic), for the cameras with depth (``input.depth_topics``);
    without ``input.camera_info_topics`` the CameraInfo topic is the one beside the camera topic."""
    cameras, depth, info = settings.input.topics, settings.input.depth_topics, settings.input.camera_info_topics
    return {
        camera: (depth[i], info[i] if info else camera_info_topic(camera))
        for i, camera in enumerate(cameras)
        if depth and depth[i]
    }


@dataclass
class Paired:
    """What the worker gets for a colour frame: the depth image paired with it (None: none within the
    tolerance) and the latest CameraInfo (None: none received yet)."""

    depth: Any
    camera_info: Any


class DepthInput:
    """Depth images and CameraInfo of one camera (thread-safe: the transport puts, the worker pairs)."""

    def __init__(self, max_stamp_diff_ns: int):
        self.max_stamp_diff_ns = max_stamp_diff_ns
        self._lock = threading.Lock()
        self._recent: deque[tuple[int, Any]] = deque(maxlen=RECENT_DEPTH)  # (stamp ns, depth image)
        self._wanted: int | None = None  # stamp of the colour frame the worker pairs now
        self._match: tuple[int, Any] | None = None  # the closest depth image to it so far
        self.camera_info: Any = None
        self.received = 0  # depth images received

    def put_depth(self, message: Any) -> None:
        """A depth image arrived (the transport's thread)."""
        stamp = time_to_ns(message.header.stamp)
        with self._lock:
            self.received += 1
            self._recent.append((stamp, message))
            if self._wanted is not None:
                self._consider(stamp, message)

    def put_camera_info(self, message: Any) -> None:
        """A CameraInfo arrived: the latest one is used (checked when used)."""
        self.camera_info = message

    def want(self, stamp_ns: int) -> None:
        """The worker took the colour frame with this stamp: pair it with the recent depth images, and with
        those that arrive until ``take``."""
        with self._lock:
            self._wanted, self._match = stamp_ns, None
            for stamp, message in self._recent:
                self._consider(stamp, message)

    def take(self) -> Paired:
        """The depth image paired with the wanted colour frame (or None) and the latest CameraInfo."""
        with self._lock:
            match, self._wanted, self._match = self._match, None, None
        return Paired(match[1] if match is not None else None, self.camera_info)

    def _consider(self, stamp: int, message: Any) -> None:
        gap = abs(stamp - self._wanted)
        if gap <= self.max_stamp_diff_ns and (self._match is None or gap < abs(self._match[0] - self._wanted)):
            self._match = (stamp, message)


class NoDepth3D(ValueError):
    """Why a frame gets no 3D: ``reason`` (its diagnostics key: ``no_depth``, ``no_camera_info``,
    ``bad_camera_info``, ``bad_depth``) and the message."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def locate_from_messages(
    depth_message: Any,
    camera_info: Any,
    image_size: tuple[int, int],
    instances: Any,
    settings: Settings,
    with_points: bool = False,
    topics: tuple[str, str] = ("depth", "CameraInfo"),
) -> Instances3D:
    """The 3D of a frame's ``Instances`` from its paired depth image and the camera's CameraInfo (``image_size``:
    the colour image's (H, W)); ``NoDepth3D`` naming the topic (``topics``: depth, CameraInfo) when either is
    unusable."""
    depth_topic, info_topic = topics
    try:
        intrinsics = Intrinsics.from_camera_info(camera_info)
        intrinsics.check_size(*image_size)
    except ValueError as exc:
        raise NoDepth3D("bad_camera_info", f"{info_topic}: {exc}") from None
    try:
        depth, scale = depth_to_array(depth_message, max_pixels=settings.input.max_image_pixels)
    except ValueError as exc:
        raise NoDepth3D("bad_depth", f"{depth_topic}: {exc}") from None
    if depth.shape != tuple(image_size):
        raise NoDepth3D(
            "bad_depth",
            f"{depth_topic}: depth image of {depth.shape[1]}x{depth.shape[0]}, the colour "
            f"image is {image_size[1]}x{image_size[0]}: not registered to it",
        )
    return locate_instances(instances.boxes, instances.masks, depth, scale, intrinsics, settings.depth, with_points)
