"""No input and no single failure of a stage stops a camera (PerceptionNode in process, real tiny-random engine).

Faults are injected by ``node_faults``: a decoder, an engine and publishers that raise one exception of
each family once; after each, the next good frame must be answered and a service call must succeed. A
worker that ends (SystemExit) is restarted by the watchdog with its engine and tracks; one that keeps
ending is reported dead; a stalled camera is an ERROR in /diagnostics within the watchdog time.
"""

import sys
import time
import types
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from sam3_ros.codec.image import rgb_to_image_fields
from sam3_ros.interfaces import typestore
from sam3_ros.pipeline.messages import image_message, time_to_ns
from sam3_ros.pipeline.node import WORKER_RESTARTS, PerceptionNode, engine_factory
from sam3_ros.ros.decoding import decode_with_cv_bridge
from sam3_ros.settings import Settings

from node_faults import ERRORS, STAGES, STALL_S, FaultyEngine, Outputs, fault_id, faulty_decode, faulty_publish

CAMERA = "/cam/image_raw"
STALL_TIMEOUT_S = 0.5
ERROR = typestore().types["diagnostic_msgs/msg/DiagnosticStatus"].ERROR


def make_settings(**overrides):
    return Settings.default(
        {
            "model": "tiny-random",
            "devices": ["cpu"],
            "input.topics": [CAMERA],
            "prompt.text": "cat",
            "detection.score_threshold": 0.0,
            "detection.new_object_threshold": 0.0,
            "output.overlay": True,
            "output.label_image": True,
            "output.diagnostics_period_s": 0.05,
            "output.stall_timeout_s": STALL_TIMEOUT_S,
            **overrides,
        }
    )


@pytest.fixture(scope="module")
def engine():
    return FaultyEngine(engine_factory(make_settings())(CAMERA))


class Running:
    """A started PerceptionNode with fault injection, its outputs, and a stamp counter."""

    def __init__(self, engine, settings=None, decode=faulty_decode):
        self.outputs = Outputs()
        self.node = PerceptionNode(
            settings or make_settings(), lambda camera: engine, faulty_publish(self.outputs), decode=decode
        )
        self.stamp = 0
        self.node.start()

    def send(self, frame_id="cam", encoding="rgb8", rgb=None):
        """Put one image on the camera; returns its stamp."""
        self.stamp += 1
        rgb = np.random.default_rng(self.stamp).integers(0, 256, (40, 56, 3), np.uint8) if rgb is None else rgb
        fields = rgb_to_image_fields(rgb)
        fields["encoding"] = encoding
        self.node.on_image(CAMERA, image_message(fields, self.stamp, frame_id))
        return self.stamp

    def answer(self, **kwargs):
        """Send a good frame and return its InstanceArray."""
        return self.outputs.wait_instances(self.send(**kwargs), timeout=10)

    def dropped(self, reason):
        return self.node.diagnostics.cameras[CAMERA].rejected[reason]

    def wait_dropped(self, reason, count, timeout=10.0):
        deadline = time.monotonic() + timeout
        while self.dropped(reason) < count:
            assert time.monotonic() < deadline, f"{reason} never reached {count}: {self.status()}"
            time.sleep(0.005)

    def status(self, where=lambda status: True, timeout=5.0):
        """The camera's status in the first diagnostics message (new or seen) for which ``where`` holds."""

        def camera_status(message):
            return next(s for s in message.status if s.hardware_id == CAMERA)

        return camera_status(self.outputs.wait_diagnostics(timeout, lambda m: where(camera_status(m))))


@pytest.fixture
def running(engine):
    node = Running(engine)
    yield node
    node.node.stop()


def values(status):
    return {kv.key: kv.value for kv in status.values}


def prompt(*phrases):
    return SimpleNamespace(
        phrases=list(phrases), boxes=np.zeros(0, np.float32), box_labels=np.zeros(0, bool), camera="", keep_tracks=False
    )


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("error", ERRORS, ids=lambda e: e.__name__)
def test_a_stage_that_raises_drops_that_frame_only(running, stage, error):
    bad = running.send(frame_id=fault_id(stage, error.__name__))
    running.wait_dropped(f"{stage}_error", 1)
    assert running.answer().header.frame_id == "cam"
    assert running.node.reset().success and running.node.set_prompt(prompt("cat")).success
    assert not any(k == "instances" and time_to_ns(m.header.stamp) == bad for k, m in running.outputs.messages)
    status = running.status(lambda s: values(s)["published"] == "1")
    assert error.__name__ in values(status)["last_error"] and status.level != ERROR


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: e.__name__)
def test_a_command_that_raises_fails_that_call_only(running, error):
    running.answer()
    reply = running.node.set_prompt(prompt(fault_id("command", error.__name__)))
    assert not reply.success and f"set_prompt failed: {error.__name__}" in reply.message
    assert running.node.set_prompt(prompt("dog")).success
    assert running.answer().prompt == ["dog"]
    assert running.node.diagnostics.node["set_prompt.failed"] == 1


def test_a_stopped_worker_is_restarted_with_its_engine_and_tracks(running):
    tracked = {i.id for i in running.answer().instances}
    assert tracked
    with running.node._lifecycle:  # holds the watchdog's restart back while the camera has no worker
        running.send(frame_id=fault_id("decode", "SystemExit"))
        worker = running.node.cameras[CAMERA].worker
        worker.join(5)
        assert not worker.is_alive()
        start = time.monotonic()
        reply = running.node.reset()
        assert time.monotonic() - start < 0.5, "a service for a camera without a worker must not wait"
    assert not reply.success and "stopped (SystemExit: injected SystemExit in decode)" in reply.message
    assert running.dropped("worker_stopped") == 1
    after = running.answer()  # once the watchdog has restarted the worker
    assert tracked <= {i.id for i in after.instances}, "the restarted worker lost the tracks"
    assert running.node.reset().success
    assert running.status(lambda s: values(s)["worker_restarts"] == "1" and values(s)["published"] == "2")


def test_a_worker_that_keeps_stopping_is_reported_dead_until_the_node_restarts(running):
    running.answer()
    camera = running.node.cameras[CAMERA]
    for stops in range(1, WORKER_RESTARTS + 2):
        worker = camera.worker
        running.send(frame_id=fault_id("decode", "SystemExit"))
        worker.join(5)
        deadline = time.monotonic() + 5
        while camera.worker is worker and not camera.dead:  # restarted, or given up
            assert time.monotonic() < deadline, "the watchdog did not restart the worker"
            time.sleep(0.01)
    assert camera.dead
    status = running.status(lambda s: s.level == ERROR)
    assert status.message.startswith(f"dead: its worker stopped {WORKER_RESTARTS + 1} times without an output")
    assert values(status)["worker_restarts"] == str(WORKER_RESTARTS)
    reply = running.node.reset()
    assert not reply.success and f"camera {CAMERA} is dead" in reply.message
    running.node.stop()  # a lifecycle deactivate/activate brings it back
    running.node.start()
    running.answer()
    assert running.node.reset().success


def test_a_stalled_camera_is_an_error_in_diagnostics_within_the_watchdog_time(engine):
    # Periodic diagnostics only every 30 s: the ERROR must be published when the watchdog sees the stall.
    running = Running(engine, make_settings(**{"output.diagnostics_period_s": 30.0}))
    try:
        running.answer()
        sent = time.monotonic()
        stalled = running.send(frame_id=fault_id("engine", "stall"))
        status = running.status(lambda s: s.level == ERROR, timeout=STALL_S)
        reported = time.monotonic() - sent
        assert STALL_TIMEOUT_S <= reported < STALL_TIMEOUT_S + 2.0, f"the stall was reported after {reported} s"
        assert "busy in engine for" in status.message, status.message
        engine.stall_released.set()
        running.outputs.wait_instances(stalled, timeout=10)  # the slow frame is still answered
        # The all-clear goes out when the engine returns, which may be just before the publish is counted.
        assert running.status(lambda s: s.level != ERROR)
        deadline = time.monotonic() + 5  # counted right after the publish the outputs saw
        while running.node.diagnostics.cameras[CAMERA].published < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert running.node.diagnostics.cameras[CAMERA].published == 2
    finally:
        running.node.stop()


def test_a_camera_whose_every_image_fails_is_an_error_until_one_is_answered(running):
    running.answer()
    deadline = time.monotonic() + STALL_TIMEOUT_S + 2
    while running.node.diagnostics.cameras[CAMERA].problem == "":
        assert time.monotonic() < deadline, "images that all fail were never reported"
        running.send(encoding="yuv999")
        time.sleep(0.02)
    status = running.status(lambda s: s.level == ERROR)
    assert "every image failed; last: bad_image: unsupported image encoding 'yuv999'" in status.message
    running.answer()
    assert running.status(lambda s: s.level != ERROR).message.endswith("missed in transport")


# -- cv_bridge, the rclpy transport's fallback decoder --------------------------------------------------
def standin_cv_bridge():
    """A stand-in for the ``cv_bridge`` module (not installable without ROS): ``CvBridgeError`` is a
    ``TypeError`` and ``imgmsg_to_cv2`` fails as the real one does (an unknown encoding: getCvType's error
    wrapped in CvBridgeError; data shorter than the shape: numpy's TypeError); it converts ``bayer_rggb8``."""
    module = types.ModuleType("cv_bridge")

    class CvBridgeError(TypeError):
        pass

    class CvBridge:
        def imgmsg_to_cv2(self, img_msg, desired_encoding="passthrough"):
            if img_msg.encoding != "bayer_rggb8":
                raise CvBridgeError(RuntimeError(f"Unrecognized image encoding [{img_msg.encoding}]"))
            im = np.ndarray(shape=(img_msg.height, img_msg.width), dtype=np.uint8, buffer=bytes(img_msg.data))
            assert desired_encoding == "rgb8"
            return cv2.cvtColor(im, cv2.COLOR_BayerRG2RGB)

    module.CvBridge, module.CvBridgeError = CvBridge, CvBridgeError
    return module


def test_cv_bridge_errors_count_as_bad_images_and_the_camera_goes_on(engine, monkeypatch):
    monkeypatch.setitem(sys.modules, "cv_bridge", standin_cv_bridge())
    running = Running(engine, decode=decode_with_cv_bridge)
    try:
        running.send(encoding="yuv999")
        running.wait_dropped("bad_image", 1)
        assert "Unrecognized image encoding [yuv999]" in running.node.diagnostics.last_error(CAMERA)
        running.answer()
        bayer = np.random.default_rng(0).integers(0, 256, (40, 56), np.uint8)
        stamp = running.stamp + 1
        running.node.on_image(
            CAMERA,
            image_message(
                {
                    "height": 40,
                    "width": 56,
                    "encoding": "bayer_rggb8",
                    "is_bigendian": 0,
                    "step": 56,
                    "data": bayer.reshape(-1),
                },
                stamp,
                "cam",
            ),
        )
        running.stamp = stamp
        assert running.outputs.wait_instances(stamp, timeout=10).header.frame_id == "cam"  # cv_bridge decoded it
        short = image_message(
            {
                "height": 40,
                "width": 56,
                "encoding": "bayer_rggb8",
                "is_bigendian": 0,
                "step": 56,
                "data": bayer.reshape(-1)[:100],
            },
            0,
            "cam",
        )
        with pytest.raises(ValueError, match="cv_bridge cannot convert the 'bayer_rggb8' image: buffer is too small"):
            decode_with_cv_bridge(short, 10**6)
        assert running.node.reset().success
    finally:
        running.node.stop()
