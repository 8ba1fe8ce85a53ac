"""Fuzz of the node's input side (hypothesis): random ``Image`` and ``CompressedImage`` messages through
``PerceptionNode`` and the real codec, each followed by a good frame that must be answered.

Every random message must be either answered (it was a valid image: decoded to the declared size) or
counted as a bad image (the codec's ValueError), never anything else; the camera never stops. The engine
is a stand-in that finds nothing (the subject is the input side; tests/test_node_survives.py and the engine
tests use the real one), so that well over 1,000 messages run in seconds. Examples are derandomized:
CI runs the same ones every time.
"""

import time

import numpy as np
from hypothesis import HealthCheck, given, settings

from sam3_ros.codec.image import rgb_to_image_fields
from sam3_ros.engine.types import Instances
from sam3_ros.pipeline.messages import header, image_message
from sam3_ros.pipeline.node import PerceptionNode
from sam3_ros.settings import Settings

from fuzz_images import camera_messages
from node_faults import Outputs

CAMERA = "/fuzz/image_raw"
MESSAGES = 1200
GOOD = rgb_to_image_fields(np.random.default_rng(1).integers(0, 256, (8, 8, 3), np.uint8))


class NoObjectsEngine:
    """Stand-in engine: finds nothing in any frame, and keeps the last image it was given."""

    def __init__(self):
        self.image = None

    def step(self, frame) -> Instances:
        self.image = frame.image
        return Instances.empty(frame)


def test_random_camera_messages_never_stop_the_camera():
    engine, outputs = NoObjectsEngine(), Outputs()
    node = PerceptionNode(
        Settings.default({"input.topics": [CAMERA], "input.max_image_pixels": 1 << 20}), lambda camera: engine, outputs
    )
    stats = node.diagnostics.cameras[CAMERA]
    outcomes = {"answered": 0, "bad_image": 0}
    stamps = iter(range(1, 10**9))

    def handled():
        return stats.published + sum(stats.rejected.values())

    def wait_handled(count):
        deadline = time.monotonic() + 10
        while handled() < count:
            assert time.monotonic() < deadline, f"the camera stopped; drops: {dict(stats.rejected)}"
            time.sleep(0.0002)

    @settings(
        max_examples=MESSAGES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(message=camera_messages())
    def random_then_good(message):
        before, answered_before = handled(), stats.published
        message.header = header(next(stamps), "fuzz")
        node.on_image(CAMERA, message)
        wait_handled(before + 1)
        assert set(stats.rejected) <= {"bad_image"}, f"not a bad image: {stats.last_error}"
        if stats.published > answered_before:
            outcomes["answered"] += 1
            if not hasattr(message, "format"):
                assert engine.image.shape == (message.height, message.width, 3)
            assert engine.image.dtype == np.uint8
        else:
            outcomes["bad_image"] += 1
        stamp = next(stamps)
        node.on_image(CAMERA, image_message(GOOD, stamp, "good"))
        outputs.wait_instances(stamp, timeout=10)
        # the node counts a frame as published just after publishing it: wait for that count too, or the next
        # message's "answered" could be this frame's
        wait_handled(before + 2)

    node.start()
    try:
        random_then_good()
    finally:
        node.stop()
    assert sum(outcomes.values()) >= MESSAGES >= 1000
    assert min(outcomes.values()) >= 100, outcomes  # both valid and broken messages were drawn
