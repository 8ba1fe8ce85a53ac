"""rosbag2 files (mcap or sqlite3) read and written with ``rosbags``, typed by our one typestore."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..codec.image import rgb_to_image_fields
from ..interfaces import typestore
from ..pipeline.messages import image_message
from ..ros.names import COMPRESSED_TYPE, IMAGE_TYPE

STORAGES = ("mcap", "sqlite3")
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)


def is_compressed(msg) -> bool:
    """True for a ``sensor_msgs/CompressedImage``, False for a ``sensor_msgs/Image``."""
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


class BagWriter:
    """Writes messages of our typestore's types to a new rosbag2; a context manager."""

    def __init__(self, path: str | Path, storage: str = "mcap"):
        from rosbags.rosbag2 import StoragePlugin, Writer

        if storage not in STORAGES:
            raise ValueError(f"unknown bag storage {storage!r}; choose one of {STORAGES}")
        self.path = Path(path)
        if self.path.exists():
            raise ValueError(f"{self.path} already exists; rosbag2 writes a new directory")
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self.path, version=9, storage_plugin=plugin)
        self._connections: dict[str, object] = {}

    def __enter__(self) -> "BagWriter":
        self._writer.open()
        return self

    def __exit__(self, *exc) -> None:
        self._writer.close()

    def write(self, topic: str, msgtype: str, time_ns: int, msg) -> None:
        """Write one message; the topic's connection is created on first use."""
        store = typestore()
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=store)
        self._writer.write(self._connections[topic], int(time_ns), store.serialize_cdr(msg, msgtype))


def write_camera_bag(
    path: str | Path,
    frames: Iterable[tuple[int, np.ndarray]],
    *,
    topic: str = "/camera/image_raw",
    frame_id: str = "camera",
    storage: str = "mcap",
) -> int:
    """Write (stamp_ns, RGB image) frames as rgb8 ``sensor_msgs/Image``, logged at their stamps; returns the count."""
    count = 0
    with BagWriter(path, storage) as bag:
        for stamp_ns, rgb in frames:
            bag.write(topic, IMAGE_TYPE, stamp_ns, image_message(rgb_to_image_fields(rgb), stamp_ns, frame_id))
            count += 1
    return count


def topics(path: str | Path) -> dict[str, tuple[str, int]]:
    """topic -> (message type, message count) of a bag."""
    from rosbags.rosbag2 import Reader

    with Reader(Path(path)) as reader:
        return {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}


def read_messages(path: str | Path, topic: str) -> Iterator[tuple[int, object]]:
    """(log time ns, deserialized message) of one topic, in log-time order; one message in memory at a time."""
    from rosbags.rosbag2 import Reader

    store = typestore()
    with Reader(Path(path)) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        if not connections:
            raise ValueError(f"bag {path} has no topic {topic!r}; it has {sorted(c.topic for c in reader.connections)}")
        for connection, time_ns, raw in reader.messages(connections=connections):
            yield time_ns, store.deserialize_cdr(raw, connection.msgtype)


def camera_topic(path: str | Path, topic: str | None = None, depth_topic: str | None = None) -> str:
    """The bag's camera topic: ``topic`` if given (checked), else its only image topic other than
    ``depth_topic``."""
    found = {t: m for t, (m, _) in topics(path).items() if m in IMAGE_TYPES and t != depth_topic}
    if topic is not None:
        if topic not in found:
            raise ValueError(f"bag {path} has no image topic {topic!r}; image topics: {sorted(found)}")
        return topic
    if len(found) != 1:
        raise ValueError(f"bag {path} has {len(found)} image topics {sorted(found)}; choose one with --topic")
    return next(iter(found))
