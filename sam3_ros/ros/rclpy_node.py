"""rclpy transport: the tracker as a lifecycle (managed) node on a robot. Thin: all logic is in
``sam3_ros.pipeline.node.PerceptionNode``; this module adapts rclpy to it.

- configure: read the parameters into ``Settings`` and load one engine per camera (publishers created)
- activate: start the workers, subscribe to the cameras and ``sam3/prompt``, offer the services
- deactivate: drop subscriptions and services, stop the workers (engines and tracks stay)
- cleanup: free the engines and the GPU memory they held

It needs rclpy and the message packages of the types in ``names``, nothing more (no cyclonedds, no
rosidl_runtime_py). ``make test-ros`` runs it under a real ROS 2 (tests/ros).
"""

from __future__ import annotations

import array
import faulthandler
import importlib
import logging
import os
import sys
import threading
import time
from typing import Any

import numpy as np
import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..pipeline.node import Reply, PerceptionNode, engine_factory, is_compressed_topic
from ..settings import Settings, SettingsError, describe
from . import names
from .decoding import decode_with_cv_bridge

NODE_NAME = "sam3_tracker"
SHUTDOWN_GRACE_S = 5.0  # after its context shuts down (SIGINT, SIGTERM), the process ends within this, stuck or not
# Callbacks only store frames or wait on the workers: two threads let the cameras' group and the services' group
# run side by side. A fixed count, because rclpy's default (the CPUs the process may use) is one thread under a
# one-CPU affinity, where a service that waits would block the cameras; more threads only add GIL contention.
EXECUTOR_THREADS = 2
# numpy dtype -> array.array typecode, for rclpy's sequence fields
_TYPECODES = {
    np.dtype(k): v
    for k, v in (
        ("u1", "B"),
        ("i1", "b"),
        ("u2", "H"),
        ("i2", "h"),
        ("u4", "I"),
        ("i4", "i"),
        ("u8", "Q"),
        ("i8", "q"),
        ("f4", "f"),
        ("f8", "d"),
    )
}


def qos_profile(profile: str, depth: int | None = None) -> QoSProfile:
    """rclpy QoS for our profile names (the same mapping as the DDS-direct transport)."""
    reliable, default_depth = names.QOS_POLICIES[profile]
    return QoSProfile(
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        history=HistoryPolicy.KEEP_LAST,
        depth=depth or default_depth,
        durability=DurabilityPolicy.VOLATILE,
    )


def interface(type_name: str) -> Any:
    """The rclpy class of ``pkg/msg/Name`` or ``pkg/srv/Name``, imported from its package's Python module."""
    package, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


def to_rclpy(message: Any) -> Any:
    """A rosbags message dataclass (what the pipeline builds) as the rclpy message of the same type."""
    cls = interface(message.__msgtype__)
    out = cls()
    for name, kind in cls.get_fields_and_field_types().items():
        value = getattr(message, name)
        if hasattr(value, "__msgtype__"):
            value = to_rclpy(value)
        elif isinstance(value, list):
            value = [to_rclpy(v) if hasattr(v, "__msgtype__") else v for v in value]
        elif isinstance(value, np.ndarray) and kind.startswith("sequence<"):
            value = value.tolist() if value.dtype == bool else array.array(_TYPECODES[value.dtype], value.tobytes())
        elif kind == "octet":  # rosbags keeps `byte` as int, rclpy wants one byte
            value = bytes([int(value)])
        setattr(out, name, value)
    return out


class PerceptionLifecycleNode(LifecycleNode):
    """The lifecycle node. Parameters are declared from ``settings.describe()`` with ``defaults``' values."""

    def __init__(self, defaults: Settings):
        super().__init__(NODE_NAME)
        values = defaults.flat()
        for name, doc, _ in describe():
            # dynamic typing: launch arguments arrive as strings ("a,b" for lists); Settings converts them
            self.declare_parameter(name, values[name], ParameterDescriptor(description=doc, dynamic_typing=True))
        self.tracker: PerceptionNode | None = None
        self.settings: Settings | None = None
        self._outputs: dict[str, Any] = {}
        self._inputs: list[Any] = []  # subscriptions and services, alive while active
        self._camera_group = MutuallyExclusiveCallbackGroup()  # callbacks only store the image: cheap
        self._service_group = ReentrantCallbackGroup()  # services wait for the worker: never block cameras

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            # an empty list (e.g. input.depth_topics: []) is a parameter without a value in ROS 2: the default holds
            values = {name: self.get_parameter(name).value for name, _, _ in describe()}
            self.settings = Settings.from_dict({name: value for name, value in values.items() if value is not None})
        except SettingsError as exc:
            self.get_logger().error(f"invalid parameters: {exc}")
            return TransitionCallbackReturn.FAILURE
        out = self.settings.output
        topics = {
            "instances": (out.instances_topic, names.INSTANCES_TYPE),
            "diagnostics": (names.DIAGNOSTICS_TOPIC, names.DIAGNOSTICS_TYPE),
        }
        if out.overlay:
            topics["overlay"] = (names.OVERLAY_TOPIC, names.IMAGE_TYPE)
        if out.label_image:
            topics["labels"] = (names.LABELS_TOPIC, names.IMAGE_TYPE)
        topics.update(names.output_topics(self.settings))
        self._outputs = {
            kind: self.create_lifecycle_publisher(interface(kind_type), topic, qos_profile("reliable"))
            for kind, (topic, kind_type) in topics.items()
        }
        try:
            self.tracker = PerceptionNode(
                self.settings, engine_factory(self.settings), self._publish, decode=decode_with_cv_bridge
            )
        except Exception as exc:  # e.g. a model directory with missing files: back to unconfigured, nothing kept
            self.get_logger().error(f"cannot load the model {self.settings.model}: {exc}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(f"configured: model {self.settings.model}, cameras {self.settings.input.topics}")
        return TransitionCallbackReturn.SUCCESS

    def _publish(self, kind: str, message: Any) -> None:
        self._outputs[kind].publish(to_rclpy(message))

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        settings, tracker = self.settings, self.tracker
        tracker.start()
        camera_qos = qos_profile(settings.input.qos, settings.input.qos_depth)
        for topic in settings.input.topics:
            kind = names.COMPRESSED_TYPE if is_compressed_topic(settings, topic) else names.IMAGE_TYPE
            self._inputs.append(
                self.create_subscription(
                    interface(kind),
                    topic,
                    lambda message, t=topic: tracker.on_image(t, message),
                    camera_qos,
                    callback_group=self._camera_group,
                )
            )
        for camera, (depth_topic, info_topic) in tracker.depth_topics.items():
            self._inputs.append(
                self.create_subscription(
                    interface(names.IMAGE_TYPE),
                    depth_topic,
                    lambda message, c=camera: tracker.on_depth(c, message),
                    camera_qos,
                    callback_group=self._camera_group,
                )
            )
            self._inputs.append(
                self.create_subscription(
                    interface(names.CAMERA_INFO_TYPE),
                    info_topic,
                    lambda message, c=camera: tracker.on_camera_info(c, message),
                    qos_profile(settings.input.qos),
                    callback_group=self._camera_group,
                )
            )
        self._inputs.append(
            self.create_subscription(
                interface(names.PROMPT_TYPE),
                names.PROMPT_TOPIC,
                tracker.on_prompt_text,
                qos_profile("reliable"),
                callback_group=self._service_group,
            )
        )
        for name, (srv_type, method) in names.SERVICES.items():
            self._inputs.append(
                self.create_service(
                    interface(srv_type), name, self._serve(getattr(tracker, method)), callback_group=self._service_group
                )
            )
        return super().on_activate(state)

    @staticmethod
    def _serve(handler):
        def callback(request, response):
            reply: Reply = handler(request)
            for field in response.get_fields_and_field_types():
                setattr(response, field, getattr(reply, field))
            return response

        return callback

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_inputs()
        return super().on_deactivate(state)

    def _stop_inputs(self) -> None:
        for entity in self._inputs:
            if hasattr(entity, "srv_type"):
                self.destroy_service(entity)
            else:
                self.destroy_subscription(entity)
        self._inputs.clear()
        if self.tracker is not None:
            self.tracker.stop()

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        for publisher in self._outputs.values():
            self.destroy_lifecycle_publisher(publisher)
        self._outputs.clear()
        self.tracker = None  # drops the engines and their tensors
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_inputs()
        self._release()
        return TransitionCallbackReturn.SUCCESS


def main(ros_args: list[str] | None, defaults: Settings) -> int:
    """Run the lifecycle node until shutdown (``ros2 launch`` drives its transitions)."""
    rclpy.init(args=["tracker_node", "--ros-args", *ros_args] if ros_args else None)  # argv[0]: program name
    _exit_if_shutdown_stalls(rclpy.get_default_context())
    node = PerceptionLifecycleNode(defaults)
    executor = MultiThreadedExecutor(num_threads=EXECUTOR_THREADS)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
        # SIGINT/SIGTERM shut the context down (rclpy's handlers); the executor may notice it as an error
    finally:
        node._stop_inputs()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        rclpy.get_default_context().destroy()  # leave the graph now: peers forget this node at once
    return 0


def _exit_if_stalled_after(context: rclpy.Context) -> None:
    while context.ok():
        time.sleep(0.2)
    time.sleep(SHUTDOWN_GRACE_S)  # the main thread normally exits the process long before this
    logging.getLogger(__name__).error(
        "the node did not stop within %.0f s of its shutdown; every thread's stack follows, then it exits",
        SHUTDOWN_GRACE_S,
    )
    faulthandler.dump_traceback(all_threads=True)
    logging.shutdown()
    os._exit(1)


def _exit_if_shutdown_stalls(context: rclpy.Context) -> None:
    """End the process ``SHUTDOWN_GRACE_S`` after ``context`` shuts down if it is still running then (a thread
    stuck in a callback or the middleware): a launch file or a robot's supervisor expects SIGINT and SIGTERM to
    stop the node. The threads' stacks go to stderr first, to say where it was stuck."""
    threading.Thread(target=_exit_if_stalled_after, args=(context,), name="shutdown watchdog", daemon=True).start()
