"""A camera and a reader of the node's outputs on rclpy, as a robot's camera driver and consumer talk to the rclpy
node: ``sam3-ros bench e2e --transport rclpy`` drives the node with it. The same methods as ``PerceptionClient``
for the parts a benchmark uses (cameras, instances, diagnostics). Needs a sourced ROS 2 and this package's colcon
build (``sam3_ros.msg``)."""

from __future__ import annotations

import array
import threading
import time
from collections import deque
from typing import Any, Callable, Sequence

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rclpy.executors import MultiThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from sam3_ros.msg import InstanceArray

from ..codec.image import rgb_to_image_fields
from ..pipeline.messages import time_to_ns
from . import names
from .client import RECENT_RESULTS

RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


class RclpyCamera:
    """Cameras in, ``InstanceArray`` and ``/diagnostics`` out, on an rclpy node of its own (own context, spun on a
    thread of its own)."""

    def __init__(self, domain: int, instances_topic: str = "/sam3/instances"):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("sam3_bench_camera", context=self.context)
        self._cond = threading.Condition()
        self.received: deque[Any] = deque(maxlen=RECENT_RESULTS)
        self.diagnostics: deque[Any] = deque(maxlen=16)
        self._counts = {"received": 0, "diagnostics": 0}
        self._instances_topic = instances_topic
        self._publishers: dict[str, Any] = {}
        self.node.create_subscription(InstanceArray, instances_topic, self._on("received"), RELIABLE)
        self.node.create_subscription(DiagnosticArray, names.DIAGNOSTICS_TOPIC, self._on("diagnostics"), RELIABLE)
        self._executor = MultiThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    def _on(self, inbox: str):
        def append(message: Any) -> None:
            with self._cond:
                getattr(self, inbox).append(message)
                self._counts[inbox] += 1
                self._cond.notify_all()

        return append

    def _publisher(self, topic: str, qos: str) -> Any:
        if topic not in self._publishers:
            profile = RELIABLE if qos == "reliable" else qos_profile_sensor_data
            self._publishers[topic] = self.node.create_publisher(Image, topic, profile)
        return self._publishers[topic]

    def activate(self, node: str, timeout: float = 600.0, alive: Callable[[], bool] = lambda: True) -> bool:
        """Configure and activate the lifecycle node ``node`` (e.g. ``/sam3_tracker``), as a lifecycle manager or
        ``ros2 launch`` does; False if it does not answer within ``timeout`` (or ``alive`` turns False: its
        process ended) or refuses a transition."""
        client = self.node.create_client(ChangeState, f"{node}/change_state")
        deadline = time.monotonic() + timeout
        while not client.wait_for_service(timeout_sec=1.0):
            if not alive() or time.monotonic() > deadline:
                return False
        for transition in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
            future = client.call_async(ChangeState.Request(transition=Transition(id=transition)))
            while not future.done():
                if not alive() or time.monotonic() > deadline:
                    return False
                time.sleep(0.05)
            if not future.result().success:
                return False
        return True

    def wait_for_node(self, cameras: Sequence[str] = (), timeout: float = 30.0, qos: str = "sensor_data") -> bool:
        """True once the node publishes instances and subscribes to every camera in ``cameras``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.node.count_publishers(self._instances_topic) and all(
                self._publisher(topic, qos).get_subscription_count() for topic in cameras
            ):
                return True
            time.sleep(0.1)
        return False

    def publish_image(
        self, topic: str, rgb: np.ndarray, stamp_ns: int, frame_id: str = "camera", qos: str = "sensor_data"
    ) -> None:
        """Publish an RGB array as ``sensor_msgs/Image`` (rgb8)."""
        fields = rgb_to_image_fields(rgb)
        # an array.array is taken as it is; bytes would be converted element by element (about 6 ms at 720p)
        fields["data"] = array.array("B", np.ascontiguousarray(fields["data"], np.uint8).tobytes())
        stamp = Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
        self._publisher(topic, qos).publish(Image(header=Header(stamp=stamp, frame_id=frame_id), **fields))

    def wait_for_instances(self, stamp_ns: int, timeout: float = 10.0) -> Any:
        """The ``InstanceArray`` of the image stamped ``stamp_ns``; ``TimeoutError`` if it does not come."""

        def found():
            return next((m for m in self.received if time_to_ns(m.header.stamp) == stamp_ns), None)

        with self._cond:
            if not self._cond.wait_for(lambda: found() is not None, timeout):
                raise TimeoutError(f"no InstanceArray for stamp {stamp_ns} within {timeout} s")
            return found()

    def wait_for_diagnostics(self, timeout: float = 10.0) -> Any:
        """The next ``DiagnosticArray`` the node publishes."""
        with self._cond:
            count = self._counts["diagnostics"]
            if not self._cond.wait_for(lambda: self._counts["diagnostics"] > count, timeout):
                raise TimeoutError(f"no diagnostics within {timeout} s")
            return self.diagnostics[-1]

    def clear(self) -> None:
        """Forget the instances and diagnostics received so far."""
        with self._cond:
            self.received.clear()
            self.diagnostics.clear()

    def close(self) -> None:
        self._executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
