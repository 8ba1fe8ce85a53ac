"""No single failure stops a camera, end to end over real Cyclone DDS on loopback: the DDS-direct node with
fault injection (``tests/node_faults.py``: a decoder, an engine and an instances publisher that raise when a
frame asks) runs in its own process with the tiny-random engine; this process is camera and client.

After each injected exception the next good frame must be answered and a service call succeed; a stopped
worker comes back with its tracks; a stall shows in /diagnostics within the watchdog time; random camera
messages (hypothesis) never stop a camera. Cameras are reliable here so that no message is lost on the way.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from sam3_ros.codec.image import rgb_to_compressed, rgb_to_image_fields
from sam3_ros.interfaces import typestore
from sam3_ros.pipeline.messages import compressed_message, header, image_message
from sam3_ros.ros.client import PerceptionClient
from sam3_ros.ros.names import private_domain_id

from fuzz_images import camera_messages
from node_faults import ERRORS, STAGES, STALL_S, fault_id

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = private_domain_id()  # isolates this module from other DDS tests on the machine
RAW, COMPRESSED = "/front/image_raw", "/rear/image_raw/compressed"
H, W = 48, 64
STALL_TIMEOUT_S = 1.0
FUZZ_MESSAGES = 60
NODE_SETTINGS = {
    "model": "tiny-random",
    "devices": "[cpu]",
    "detection.score_threshold": "0.0",
    "detection.new_object_threshold": "0.0",
    "input.topics": f"[{RAW}, {COMPRESSED}]",
    "input.qos": "reliable",
    "input.max_image_pixels": "20000",
    "prompt.text": "cat",
    "output.diagnostics_period_s": "0.05",
    "output.stall_timeout_s": str(STALL_TIMEOUT_S),
}
ERROR = typestore().types["diagnostic_msgs/msg/DiagnosticStatus"].ERROR
RNG = np.random.default_rng(7)


class FaultyNode:
    """The node process, a client, and helpers to send frames and read the camera's diagnostics."""

    def __init__(self, process, client, log_path):
        self.process, self.client, self.log_path = process, client, log_path
        self.stamp = 1_000_000_000

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def send(self, message, topic=RAW) -> int:
        """Publish ``message`` (its header replaced) on ``topic``; returns its stamp."""
        self.stamp += 1
        message.header = header(self.stamp, message.header.frame_id)
        self.client.camera(topic, compressed=topic == COMPRESSED, qos="reliable").publish(message)
        return self.stamp

    def answer(self, topic=RAW):
        """Send a good frame on ``topic`` and return its InstanceArray."""
        rgb = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
        good = (
            compressed_message(rgb_to_compressed(rgb, "png"), "png", 0, "good")
            if topic == COMPRESSED
            else image_message(rgb_to_image_fields(rgb), 0, "good")
        )
        stamp = self.send(good, topic)
        try:
            return self.client.wait_for_instances(stamp, camera=topic, timeout=20)
        except TimeoutError:
            raise AssertionError(f"no answer to a good frame on {topic}; node log:\n{self.log()}") from None

    def status(self, topic=RAW, where=lambda status, values: True, timeout=10.0):
        """The camera's next diagnostics status for which ``where(status, values)`` holds, and its values."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.client.wait_for_diagnostics(5)
            status = next(s for s in message.status if s.hardware_id == topic)
            values = {kv.key: kv.value for kv in status.values}
            if where(status, values):
                return status, values
            assert time.monotonic() < deadline, f"no such diagnostics: {status.message} {values}"

    def settled(self, topic=RAW, received=None) -> dict:
        """The camera's values once it has received ``received`` images (when given) and every image it
        received was answered, dropped or replaced (counters are only read when all are up to date)."""

        def done(_, v):
            handled = int(v["published"]) + int(v["rejected"]) + int(v["dropped_stale"])
            return handled == int(v["received"]) and received in (None, int(v["received"]))

        return self.status(topic, done)[1]


def good_image(frame_id):
    return image_message(rgb_to_image_fields(RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)), 0, frame_id)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("faulty_node") / "node.log"
    env = {
        **os.environ,
        "ROS_DOMAIN_ID": str(DOMAIN),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
    }
    sets = [arg for key, value in NODE_SETTINGS.items() for arg in ("--set", f"{key}={value}")]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "node_faults.py"), *sets],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    client = PerceptionClient(domain=DOMAIN)
    running = FaultyNode(process, client, log_path)
    try:
        assert client.wait_for_node([RAW], timeout=90, qos="reliable"), f"node did not come up:\n{running.log()}"
        assert client.camera(COMPRESSED, compressed=True, qos="reliable").wait_for_subscribers(1, 10)
        yield running
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0, running.log()
    finally:
        client.close()
        if process.poll() is None:
            process.kill()
            process.wait(5)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("error", ERRORS, ids=lambda e: e.__name__)
def test_a_stage_that_raises_drops_that_frame_only(node, stage, error):
    key = f"rejected.{stage}_error"
    _, before = node.status()
    node.send(good_image(fault_id(stage, error.__name__)))
    _, after = node.status(where=lambda _, v: int(v.get(key, 0)) > int(before.get(key, 0)))
    assert int(after[key]) == int(before.get(key, 0)) + 1 and error.__name__ in after["last_error"]
    assert node.answer().header.frame_id == "good"
    assert node.client.reset().success


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: e.__name__)
def test_a_command_that_raises_fails_that_call_only(node, error):
    reply = node.client.set_prompt([fault_id("command", error.__name__)])
    assert not reply.success and f"set_prompt failed: {error.__name__}" in reply.message
    assert node.client.set_prompt(["cat"]).success
    assert node.answer().prompt == ["cat"] and node.answer(COMPRESSED).prompt == ["cat"]


def test_a_stopped_worker_is_restarted_with_its_tracks(node):
    tracked = {i.id for i in node.answer().instances}
    assert tracked
    _, before = node.status()
    node.send(good_image(fault_id("decode", "SystemExit")))
    node.status(where=lambda _, v: int(v["worker_restarts"]) == int(before["worker_restarts"]) + 1)
    assert tracked <= {i.id for i in node.answer().instances}, "the restarted worker lost the tracks"
    assert node.client.reset().success


def test_a_stall_shows_in_diagnostics_within_the_watchdog_time(node):
    node.answer()
    sent = time.monotonic()
    stalled = node.send(good_image(fault_id("engine", "stall")))
    status, _ = node.status(where=lambda s, _: s.level == ERROR, timeout=STALL_S)
    reported = time.monotonic() - sent
    assert STALL_TIMEOUT_S <= reported < STALL_TIMEOUT_S + 2.0, f"the stall was reported after {reported} s"
    assert "busy in engine for" in status.message, status.message
    assert node.client.wait_for_instances(stalled, camera=RAW, timeout=10)  # the slow frame is answered too
    node.status(where=lambda s, _: s.level != ERROR)


def test_random_camera_messages_never_stop_a_camera(node):
    drawn = []

    @settings(
        max_examples=FUZZ_MESSAGES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    )
    @given(message=camera_messages())
    def random_then_good(message):
        topic = COMPRESSED if hasattr(message, "format") else RAW
        before = node.settled(topic)
        node.send(message, topic)
        after = node.settled(topic, int(before["received"]) + 1)
        assert after["dropped_stale"] == before["dropped_stale"]
        changed = {k for k, v in after.items() if k.startswith("rejected.") and v != before.get(k, "0")}
        assert changed <= {"rejected.bad_image"}, after["last_error"]
        node.answer(topic)
        drawn.append(topic)

    random_then_good()
    assert len(drawn) == FUZZ_MESSAGES and set(drawn) == {RAW, COMPRESSED}
