"""Replay through the real node: ``sam3-ros node --transport dds`` in a subprocess, driven over DDS-direct.

The node runs exactly the evaluation's settings (written to a parameter file beside the outputs) on a
DDS domain of its own, so runs on one machine never see each other's traffic.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator

import yaml

from ..pipeline.messages import time_to_ns
from ..ros.names import private_domain_id
from .bags import is_compressed
from .replay import Arrival, Published, median_period

STARTUP_TIMEOUT_S = 120.0  # importing torch and building the model, on a busy 2-core machine
REPLY_TIMEOUT_S = 30.0


class NodeProcess:
    """A context manager: starts the node, waits until it serves the camera topics, stops it on exit.

    ``client`` is a :class:`sam3_ros.ros.client.PerceptionClient` on the node's domain."""

    def __init__(self, settings, workdir: str | Path, domain: int | None = None):
        self.settings, self.workdir = settings, Path(workdir)
        self.domain = domain if domain is not None else private_domain_id()
        self.log_path = self.workdir / "node.log"
        self.process: subprocess.Popen | None = None
        self.client = None

    def __enter__(self) -> "NodeProcess":
        from ..ros.client import PerceptionClient

        self.workdir.mkdir(parents=True, exist_ok=True)
        params = self.workdir / "node_settings.yaml"
        params.write_text(yaml.safe_dump({"/**": {"ros__parameters": self.settings.to_dict()}}, sort_keys=False))
        env = {**os.environ, "ROS_DOMAIN_ID": str(self.domain)}
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sam3_ros.cli", "node", "--transport", "dds", "--params", str(params)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self.client = PerceptionClient(domain=self.domain)
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while not self.client.wait_for_node(self.settings.input.topics, timeout=2.0):
                self.check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the node did not come up within {STARTUP_TIMEOUT_S:.0f} s; see {self.log_path}"
                    )
        except BaseException:
            self.__exit__()
            raise
        return self

    def check_alive(self) -> None:
        """RuntimeError (with the end of the node's log) if the node process has exited."""
        if self.process is not None and self.process.poll() is not None:
            tail = self.log_path.read_text()[-2000:] if self.log_path.exists() else ""
            raise RuntimeError(f"the node exited with status {self.process.returncode}:\n{tail}")

    def __exit__(self, *exc) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def camera_publisher(node: NodeProcess, topic: str, image_msg):
    """The publisher for this kind of camera message, matched with the node (samples written before
    discovery completes are lost)."""
    compressed = is_compressed(image_msg)
    publisher = node.client.camera(topic, compressed)
    if not publisher.wait_for_subscribers(1, REPLY_TIMEOUT_S):
        raise RuntimeError(f"the node does not subscribe to {topic} ({'compressed' if compressed else 'raw'} images)")
    return publisher


def set_prompt(node: NodeProcess, phrases: list[str]) -> None:
    """Prompt the node through its set_prompt service; ValueError if it refuses."""
    reply = node.client.set_prompt(list(phrases))
    if not reply.success:
        raise ValueError(f"the node refused the prompt {phrases}: {reply.message}")


class NodeProcessor:
    """Lockstep replay through a running node: publish one camera message, wait for its InstanceArray.

    The node's answer is matched by the image's header stamp. A frame the node rejects (bad image: it
    counts the drop and publishes nothing) shows up here as a timeout and is raised as ValueError, which
    the replay counts."""

    def __init__(self, node: NodeProcess, topic: str, phrases: list[str], timeout: float = REPLY_TIMEOUT_S):
        self.node, self.topic, self.timeout = node, topic, timeout
        set_prompt(node, phrases)

    def process(self, image_msg):
        camera_publisher(self.node, self.topic, image_msg).publish(image_msg)
        try:
            return self.node.client.wait_for_instances(
                stamp_ns=time_to_ns(image_msg.header.stamp), timeout=self.timeout
            )
        except TimeoutError:
            self.node.check_alive()
            raise ValueError(f"no answer from the node within {self.timeout:.0f} s") from None


class NodeRealtimeReplay:
    """Realtime replay through a running node: camera messages are published at their recorded times
    (scaled by ``rate``); the node keeps only the newest frame and drops the rest; outputs are timed
    when they are received. Same interface as :class:`sam3_ros.eval.replay.Replay`."""

    pacing = "realtime"

    def __init__(
        self, node: NodeProcess, topic: str, phrases: list[str], rate: float = 1.0, timeout: float = REPLY_TIMEOUT_S
    ):
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.node, self.topic, self.rate, self.timeout = node, topic, rate, timeout
        set_prompt(node, phrases)
        self.arrivals: list[Arrival] = []
        self.failed = 0  # the node reports rejected images in its diagnostics; here they count as dropped
        self.wall_s = 0.0

    @property
    def period_ns(self) -> int:
        return median_period(self.arrivals)

    def run(self, messages: Iterable[tuple[int, object]]) -> Iterator[Published]:
        from ..ros import names

        received: queue.Queue = queue.Queue()
        subscription = self.node.client.participant.subscribe(
            self.node.settings.output.instances_topic,
            names.INSTANCES_TYPE,
            lambda msg: received.put((time.perf_counter(), msg)),
        )
        if not subscription.wait_for_publishers(1, self.timeout):
            raise RuntimeError("the node's instances topic did not match")
        sent: dict[int, tuple[Arrival, float]] = {}  # stamp -> (arrival, wall time published)
        start = time.perf_counter()
        bag_start = None
        last_stamp, answered = None, set()

        def drain(wait_s: float) -> Iterator[Published]:
            try:
                wall, msg = received.get(timeout=max(wait_s, 0.0))
            except queue.Empty:
                return
            stamp = time_to_ns(msg.header.stamp)
            if stamp in sent:
                arrival, published_wall = sent[stamp]
                answered.add(stamp)
                yield Published(
                    arrival.position,
                    stamp,
                    arrival.arrival_ns,
                    bag_start + int((wall - start) * 1e9 * self.rate),
                    (wall - published_wall) * 1e3,
                    msg,
                )

        try:
            for position, (log_ns, msg) in enumerate(messages):
                bag_start = log_ns if bag_start is None else bag_start
                due = start + (log_ns - bag_start) / 1e9 / self.rate
                while time.perf_counter() < due:
                    yield from drain(due - time.perf_counter())
                last_stamp = time_to_ns(msg.header.stamp)
                arrival = Arrival(position, last_stamp, int(log_ns))
                self.arrivals.append(arrival)
                camera_publisher(self.node, self.topic, msg).publish(msg)
                sent[last_stamp] = (arrival, time.perf_counter())
            # The newest frame always gets processed: wait for its answer.
            deadline = time.perf_counter() + self.timeout
            while last_stamp is not None and last_stamp not in answered and time.perf_counter() < deadline:
                yield from drain(min(0.2, deadline - time.perf_counter()))
                self.node.check_alive()
        finally:
            self.wall_s = time.perf_counter() - start
