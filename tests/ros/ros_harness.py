"""What tests/ros drive a real ROS 2 with: the installed ``tracker_node`` (or ``ros2 launch``) as its own
process, and an ordinary rclpy node in the test process (cameras, subscriptions, service calls, lifecycle).

Everything here talks ROS through rclpy and the ROS tools themselves; nothing of the node's own
transport code is used to check it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import ros_required  # noqa: F401  (first: without ROS 2 it skips the importing test module)
import numpy as np
import rclpy
import yaml
from ament_index_python.packages import get_package_prefix, get_package_share_directory
from builtin_interfaces.msg import Time
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import NodeNameNonExistentError
from rclpy.parameter import Parameter, parameter_value_to_python
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from sam3_ros.codec.image import rgb_to_compressed, rgb_to_image_fields

NODE = "sam3_tracker"
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
TRANSITIONS = {
    "configure": Transition.TRANSITION_CONFIGURE,
    "activate": Transition.TRANSITION_ACTIVATE,
    "deactivate": Transition.TRANSITION_DEACTIVATE,
    "cleanup": Transition.TRANSITION_CLEANUP,
    "shutdown": Transition.TRANSITION_UNCONFIGURED_SHUTDOWN,
}
# Test settings: the built-in tiny model (fast, whatever the packaged default is) on the CPU. Its weights are
# random: thresholds at 0 make its detections objects, so there are masks to check.
TEST_PARAMETERS = {
    "model": "tiny-random",
    "devices": ["cpu"],
    "detection.score_threshold": 0.0,
    "detection.new_object_threshold": 0.0,
    "output.diagnostics_period_s": 0.3,
}


def restore_sigint() -> None:
    """A process started from a non-interactive shell inherits SIGINT ignored; tests send it SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def write_params(path: Path, parameters: dict[str, Any], node: str = "/**") -> Path:
    """A ROS 2 parameter file setting ``parameters`` (dotted names) on ``node``."""
    path.write_text(yaml.safe_dump({node: {"ros__parameters": parameters}}))
    return path


def stamp(stamp_ns: int) -> Time:
    return Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)


def stamp_ns(time_msg: Time) -> int:
    return int(time_msg.sec) * 1_000_000_000 + int(time_msg.nanosec)


def image(rgb: np.ndarray, stamp_ns_: int, frame_id: str = "camera", **overrides: Any) -> Image:
    """sensor_msgs/Image (rgb8) of ``rgb``; ``overrides`` replace fields (to make bad images)."""
    fields = rgb_to_image_fields(rgb)
    fields["data"] = np.asarray(fields["data"], np.uint8).tobytes()
    fields.update(overrides)
    return Image(header=Header(stamp=stamp(stamp_ns_), frame_id=frame_id), **fields)


def compressed(
    rgb: np.ndarray | None, stamp_ns_: int, fmt: str = "png", data: bytes | None = None, frame_id: str = "camera"
) -> CompressedImage:
    """sensor_msgs/CompressedImage of ``rgb`` encoded as ``fmt`` (or carrying ``data`` as it is)."""
    payload = rgb_to_compressed(rgb, fmt) if data is None else data
    return CompressedImage(header=Header(stamp=stamp(stamp_ns_), frame_id=frame_id), format=fmt, data=payload)


class Inbox:
    """Messages of one subscription, in arrival order, with a wait for the one a test expects."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self._cond = threading.Condition()

    def __call__(self, message: Any) -> None:
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[Any], bool] = lambda m: True, timeout: float = 10.0, start: int = 0) -> Any:
        """The first message from index ``start`` on that satisfies ``predicate``; TimeoutError if none comes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = next((m for m in self.messages[start:] if predicate(m)), None)
                if found is not None:
                    return found
                if not self._cond.wait(max(deadline - time.monotonic(), 0)) and time.monotonic() > deadline:
                    raise TimeoutError("no matching message within %.1f s" % timeout)


class RosClient:
    """An ordinary rclpy node in the test process, spun by a multi-threaded executor on a thread of its own."""

    def __init__(self, name: str = "sam3_test_client"):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = MultiThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()
        self._clients: dict[str, Any] = {}
        self._publishers: dict[tuple[str, Any], Any] = {}

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    # -- topics ------------------------------------------------------------------------------------
    def subscribe(self, topic: str, msg_type: Any, qos: QoSProfile = RELIABLE) -> Inbox:
        inbox = Inbox()
        self.node.create_subscription(msg_type, topic, inbox, qos)
        return inbox

    def publish(self, topic: str, message: Any, qos: QoSProfile = qos_profile_sensor_data) -> None:
        """Publish on ``topic`` (one publisher per topic and type, kept)."""
        key = (topic, type(message))
        if key not in self._publishers:
            self._publishers[key] = self.node.create_publisher(type(message), topic, qos)
        self._publishers[key].publish(message)

    def wait_for_subscriber(
        self, topic: str, msg_type: Any, qos: QoSProfile = qos_profile_sensor_data, timeout: float = 30.0
    ) -> bool:
        """Create the publisher of ``topic`` and wait until a subscription has matched it."""
        key = (topic, msg_type)
        if key not in self._publishers:
            self._publishers[key] = self.node.create_publisher(msg_type, topic, qos)
        return wait_until(lambda: self._publishers[key].get_subscription_count() > 0, timeout)

    def count_publishers(self, topic: str) -> int:
        return self.node.count_publishers(topic)

    def services(self, node: str = NODE, namespace: str = "/") -> set[str]:
        """The services that node ``namespace``/``node`` offers (clients in the graph name services too)."""
        try:
            return {name for name, _ in self.node.get_service_names_and_types_by_node(node, namespace)}
        except NodeNameNonExistentError:  # not (yet, or any more) in the graph
            return set()

    # -- services ----------------------------------------------------------------------------------
    def call(
        self, srv_type: Any, name: str, request: Any = None, timeout: float = 60.0, resend_every: float | None = None
    ) -> Any:
        """Call service ``name`` and return its response; TimeoutError if it is not there or does not answer.
        ``resend_every``: for a request that may be repeated, send it again after that many seconds without
        an answer (a server that has just started may have missed it: it was "available" before its reply
        writer matched this client)."""
        key = f"{name}:{srv_type.__name__}"
        if key not in self._clients:
            self._clients[key] = self.node.create_client(srv_type, name)
        client = self._clients[key]
        deadline = time.monotonic() + timeout
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"service {name} is not available")
        done = threading.Event()
        while True:
            future = client.call_async(request if request is not None else srv_type.Request())
            future.add_done_callback(lambda _: done.set())
            left = deadline - time.monotonic()
            if done.wait(max(min(left, resend_every or left), 0)):
                return future.result()
            client.remove_pending_request(future)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no answer from {name} within {timeout} s")

    def change_state(self, transition: str, node: str = f"/{NODE}", timeout: float = 120.0) -> bool:
        """Ask the lifecycle node for a transition through ``<node>/change_state``; its success."""
        request = ChangeState.Request()
        request.transition.id = TRANSITIONS[transition]
        return bool(self.call(ChangeState, f"{node}/change_state", request, timeout).success)

    def state(self, node: str = f"/{NODE}") -> str:
        return self.call(GetState, f"{node}/get_state", resend_every=5.0).current_state.label

    def wait_for_state(self, label: str, node: str = f"/{NODE}", timeout: float = 180.0) -> bool:
        """Whether the node reaches state ``label`` within ``timeout`` (it may still be starting)."""
        deadline = time.monotonic() + timeout
        return wait_until(
            lambda: (
                self.call(
                    GetState, f"{node}/get_state", timeout=max(deadline - time.monotonic(), 1), resend_every=5.0
                ).current_state.label
                == label
            ),
            timeout,
            period=0.2,
        )

    def get_parameters(self, names: list[str], node: str = f"/{NODE}") -> dict[str, Any]:
        response = self.call(
            GetParameters, f"{node}/get_parameters", GetParameters.Request(names=names), resend_every=5.0
        )
        return {name: parameter_value_to_python(value) for name, value in zip(names, response.values)}

    def set_parameters(self, values: dict[str, Any], node: str = f"/{NODE}") -> list[bool]:
        request = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
        )
        return [result.successful for result in self.call(SetParameters, f"{node}/set_parameters", request).results]


def wait_until(predicate: Callable[[], bool], timeout: float, period: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(period)
    return True


def ros_env(**extra: str) -> dict[str, str]:
    """The environment for ROS processes started by a test: this one's (domain, discovery range) plus ``extra``."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **extra}


class RosProcess:
    """A ROS program (the tracker node, ``ros2 launch``) in its own process group, its output in a log file."""

    def __init__(
        self, command: list[str], log_path: Path, env: dict[str, str] | None = None, cpus: set[int] | None = None
    ):
        """``cpus``: the CPUs the process may run on (its affinity, as ``taskset`` or a container's cpuset sets it)."""

        def prepare() -> None:
            restore_sigint()
            if cpus is not None:
                os.sched_setaffinity(0, cpus)

        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                command,
                env=env or ros_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=prepare,
                start_new_session=True,
            )

    def log(self, tail: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:]

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, signum: int = signal.SIGINT, timeout: float = 10.0) -> tuple[int | None, float]:
        """Send ``signum``; the exit code (None if it had to be killed) and the seconds it took."""
        start = time.monotonic()
        if self.alive():
            self.process.send_signal(signum)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
            code = None
        return code, time.monotonic() - start

    def kill(self) -> None:
        """End the process and everything it started (launch's children), if still there."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(5)


def tracker_node(
    params_file: Path, log_path: Path, namespace: str = "", *ros_args: str, cpus: set[int] | None = None
) -> RosProcess:
    """The installed ``tracker_node`` (``lib/sam3_ros/tracker_node`` of the colcon install), run directly."""
    executable = Path(get_package_prefix("sam3_ros")) / "lib" / "sam3_ros" / "tracker_node"
    remap = ["-r", f"__ns:=/{namespace}"] if namespace else []
    return RosProcess(
        [sys.executable, str(executable), "--ros-args", "--params-file", str(params_file), *remap, *ros_args],
        log_path,
        cpus=cpus,
    )


def ros2_launch(launch_file: str, arguments: dict[str, str], log_path: Path) -> RosProcess:
    """``ros2 launch sam3_ros <launch_file> name:=value ...``, as a user types it."""
    return RosProcess(
        ["ros2", "launch", "sam3_ros", launch_file, *(f"{k}:={v}" for k, v in arguments.items())], log_path
    )


def packaged_params() -> Path:
    """The installed config/tracker.yaml."""
    return Path(get_package_share_directory("sam3_ros")) / "config" / "tracker.yaml"
