"""A client of a running tracker node over DDS-direct: play a camera, read instances, call services.

Used by the tests, ``sam3-ros eval``/``demo`` (replay a bag through the node) and benchmarks::

    client = PerceptionClient(domain=17)
    client.wait_for_node()
    client.set_prompt(["person"])
    client.publish_image("/camera/image_raw", rgb, stamp_ns=1)
    result = client.wait_for_instances(stamp_ns=1)

Cameras publish best effort (sensor data QoS) by default, as real cameras do; a replay that must not
lose a frame (lockstep) runs the node with ``--set input.qos=reliable`` and passes ``qos="reliable"``
here (a best-effort camera does not match a reliable reader).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict, deque
from typing import Any, Sequence

import numpy as np

from ..codec.image import rgb_to_compressed, rgb_to_image_fields
from ..pipeline.messages import compressed_message, image_message, stamp_to_time, time_to_ns
from . import names
from .dds import Participant, Publisher, ServiceClient

RECENT_RESULTS = 256  # InstanceArray messages kept for lookup by stamp (bounded memory)


class PerceptionClient:
    """Cameras in, ``InstanceArray``/diagnostics out, and the node's services, on one DDS participant."""

    def __init__(
        self,
        domain: int | None = None,
        namespace: str = "",
        instances_topic: str = "/sam3/instances",
        participant: Participant | None = None,
    ):
        self.participant = participant or Participant(domain, namespace)
        self._cond = threading.Condition()
        self._results: OrderedDict[tuple[str, int], Any] = OrderedDict()  # (camera, stamp) -> InstanceArray
        self.received: deque[Any] = deque(maxlen=RECENT_RESULTS)  # latest InstanceArrays, in arrival order
        self._counts: Counter[str | None] = Counter()  # InstanceArrays received per camera (None: all)
        self.diagnostics: deque[Any] = deque(maxlen=16)
        self._diagnostics_count = 0
        self._cameras: dict[tuple[str, str, str], Publisher] = {}
        self._clients: dict[str, ServiceClient] = {}
        self.instances = self.participant.subscribe(instances_topic, names.INSTANCES_TYPE, self._on_instances)
        self._diagnostics = self.participant.subscribe(
            names.DIAGNOSTICS_TOPIC, names.DIAGNOSTICS_TYPE, self._on_diagnostics
        )
        self._prompt = self.participant.publisher(names.PROMPT_TOPIC, names.PROMPT_TYPE, "reliable")

    # -- outputs of the node -----------------------------------------------------------------------
    def _on_instances(self, message: Any) -> None:
        with self._cond:
            key = (message.camera, time_to_ns(message.header.stamp))
            self._results[key] = message
            while len(self._results) > RECENT_RESULTS:
                self._results.popitem(last=False)
            self.received.append(message)
            self._counts[message.camera] += 1
            self._counts[None] += 1
            self._cond.notify_all()

    def _on_diagnostics(self, message: Any) -> None:
        with self._cond:
            self.diagnostics.append(message)
            self._diagnostics_count += 1
            self._cond.notify_all()

    def clear(self) -> None:
        """Forget the instances and diagnostics received so far."""
        with self._cond:
            self.received.clear()
            self.diagnostics.clear()

    def wait_for_instances(self, stamp_ns: int | None = None, camera: str | None = None, timeout: float = 10.0):
        """The ``InstanceArray`` for the image with ``stamp_ns`` (any camera unless given), or the next one
        to arrive when ``stamp_ns`` is None. TimeoutError if it does not come."""
        with self._cond:
            start = self._counts[camera]

            def found():
                if stamp_ns is None:
                    if self._counts[camera] == start:
                        return None
                    return next(m for m in reversed(self.received) if camera in (None, m.camera))
                return next((m for (c, s), m in self._results.items() if s == stamp_ns and camera in (None, c)), None)

            if not self._cond.wait_for(lambda: found() is not None, timeout):
                raise TimeoutError(f"no InstanceArray for stamp {stamp_ns} within {timeout} s")
            return found()

    def wait_for_diagnostics(self, timeout: float = 5.0):
        """The next ``DiagnosticArray`` the node publishes."""
        with self._cond:
            count = self._diagnostics_count
            if not self._cond.wait_for(lambda: self._diagnostics_count > count, timeout):
                raise TimeoutError(f"no diagnostics within {timeout} s")
            return self.diagnostics[-1]

    # -- inputs of the node ------------------------------------------------------------------------
    def camera(self, topic: str, compressed: bool = False, qos: str = "sensor_data") -> Publisher:
        """The publisher of one camera topic (created once)."""
        key = (topic, names.COMPRESSED_TYPE if compressed else names.IMAGE_TYPE, qos)
        if key not in self._cameras:
            self._cameras[key] = self.participant.publisher(topic, key[1], qos)
        return self._cameras[key]

    def publish_image(
        self,
        topic: str,
        rgb: np.ndarray,
        stamp_ns: int,
        frame_id: str = "camera",
        encoding: str = "rgb8",
        qos: str = "sensor_data",
    ) -> None:
        """Publish an RGB array as ``sensor_msgs/Image`` (rgb8, bgr8 or mono8)."""
        self.camera(topic, False, qos).publish(image_message(rgb_to_image_fields(rgb, encoding), stamp_ns, frame_id))

    def publish_compressed(
        self,
        topic: str,
        rgb: np.ndarray,
        stamp_ns: int,
        frame_id: str = "camera",
        fmt: str = "jpeg",
        qos: str = "sensor_data",
    ) -> None:
        """Publish an RGB array as ``sensor_msgs/CompressedImage`` (jpeg or png)."""
        self.camera(topic, True, qos).publish(compressed_message(rgb_to_compressed(rgb, fmt), fmt, stamp_ns, frame_id))

    def wait_for_node(self, cameras: Sequence[str] = (), timeout: float = 30.0, qos: str = "sensor_data") -> bool:
        """True once the node's instances, services, and the given camera topics (published with ``qos``;
        a best-effort camera does not match a node reading with ``input.qos: reliable``) have matched."""
        deadline = time.monotonic() + timeout
        ok = self.instances.wait_for_publishers(1, timeout) and self._prompt.wait_for_subscribers(1, timeout)
        for name in names.SERVICES:
            ok = ok and self._client(name).wait_for_service(max(deadline - time.monotonic(), 0.1))
        for topic in cameras:
            ok = ok and self.camera(topic, qos=qos).wait_for_subscribers(1, max(deadline - time.monotonic(), 0.1))
        return bool(ok)

    # -- prompts -----------------------------------------------------------------------------------
    def _client(self, name: str) -> ServiceClient:
        if name not in self._clients:
            self._clients[name] = self.participant.client(name, names.SERVICES[name][0])
        return self._clients[name]

    def _call(self, name: str, timeout: float, **fields: Any):
        client = self._client(name)
        return client.call(client.request_class(**fields), timeout)

    def publish_prompt(self, text: str) -> None:
        """Send comma-separated noun phrases on ``/sam3/prompt`` (no reply: see the diagnostics)."""
        self._prompt.publish(self._prompt.wire.message_class(data=text))

    def set_prompt(
        self,
        phrases: Sequence[str] = (),
        boxes: Sequence[float] = (),
        box_labels: Sequence[bool] = (),
        camera: str = "",
        keep_tracks: bool = False,
        timeout: float = 30.0,
    ):
        """Call ``set_prompt``; returns the response (``success``, ``message``)."""
        return self._call(
            "sam3/set_prompt",
            timeout,
            phrases=list(phrases),
            boxes=np.asarray(boxes, np.float32).reshape(-1),
            box_labels=np.asarray(box_labels, bool).reshape(-1),
            camera=camera,
            keep_tracks=keep_tracks,
        )

    def add_points(
        self,
        points: Sequence[float],
        labels: Sequence[int],
        object_id: int = -1,
        box: Sequence[float] = (),
        stamp_ns: int = 0,
        camera: str = "",
        timeout: float = 30.0,
    ):
        """Call ``add_points``; returns the response (``success``, ``message``, ``object_id``)."""
        return self._call(
            "sam3/add_points",
            timeout,
            object_id=object_id,
            points=np.asarray(points, np.float32).reshape(-1),
            labels=np.asarray(labels, np.int8).reshape(-1),
            box=np.asarray(box, np.float32).reshape(-1),
            stamp=stamp_to_time(stamp_ns),
            camera=camera,
        )

    def remove_object(self, object_id: int, camera: str = "", timeout: float = 30.0):
        """Call ``remove_object``."""
        return self._call("sam3/remove_object", timeout, object_id=object_id, camera=camera)

    def reset(self, timeout: float = 30.0):
        """Call ``reset`` (std_srvs/Trigger)."""
        return self._call("sam3/reset", timeout, structure_needs_at_least_one_member=0)

    def close(self) -> None:
        """Stop the client's reader threads."""
        self.participant.close()
