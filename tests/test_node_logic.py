"""PerceptionNode in process with the real tiny-random engine: what the rclpy lifecycle relies on
(stop/start again), and requests that arrive before any image. Outputs are collected from ``publish``."""

import time
from types import SimpleNamespace

import numpy as np
import pytest

from sam3_ros.codec.image import rgb_to_image_fields
from sam3_ros.pipeline.messages import image_message, stamp_to_time, time_to_ns
from sam3_ros.pipeline.node import PerceptionNode, engine_factory
from sam3_ros.settings import Settings

from node_faults import Outputs

CAMERAS = ["/a/image_raw", "/b/image_raw"]


@pytest.fixture(scope="module")
def settings():
    return Settings.default(
        {
            "model": "tiny-random",
            "devices": ["cpu"],
            "input.topics": CAMERAS,
            "prompt.text": "cat",
            "detection.score_threshold": 0.0,
            "detection.new_object_threshold": 0.0,
            "output.diagnostics_period_s": 0.05,
        }
    )


@pytest.fixture(scope="module")
def engines(settings):
    make = engine_factory(settings)
    return {camera: make(camera) for camera in CAMERAS}


def frame(stamp_ns):
    rgb = np.random.default_rng(stamp_ns).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    return image_message(rgb_to_image_fields(rgb), stamp_ns, "cam")


def prompt_request(phrases=(), boxes=(), labels=(), camera=""):
    return SimpleNamespace(
        phrases=list(phrases),
        boxes=np.asarray(boxes, np.float32),
        box_labels=np.asarray(labels, bool),
        camera=camera,
        keep_tracks=False,
    )


def test_requests_before_any_image_fail_without_changing_anything(settings, engines):
    outputs = Outputs()
    node = PerceptionNode(settings, engines.__getitem__, outputs)
    node.start()
    try:
        assert node.reset().success
        reply = node.add_points(
            SimpleNamespace(
                object_id=-1,
                points=np.array([5, 5], np.float32),
                labels=np.array([1], np.int8),
                box=np.zeros(0, np.float32),
                stamp=stamp_to_time(0),
                camera=CAMERAS[0],
            )
        )
        assert not reply.success and "no image has been processed" in reply.message
        node.on_image(CAMERAS[0], frame(1))
        outputs.wait_instances(1)
        # Boxes need each target camera's image: camera b has none, so neither camera changes.
        reply = node.set_prompt(prompt_request(["dog"], [1, 1, 20, 20], [True]))
        assert not reply.success and "none has arrived yet" in reply.message
        assert [e.phrases for e in engines.values()] == [["cat"], ["cat"]]
        assert node.set_prompt(prompt_request(["dog"], [1, 1, 20, 20], [True], camera=CAMERAS[0])).success
        node.on_image(CAMERAS[0], frame(2))
        out = outputs.wait_instances(2)
        assert out.prompt == ["dog"] and (out.num_positive_exemplars, out.num_negative_exemplars) == (1, 0)
    finally:
        node.stop()


def test_node_restarts_after_stop_as_a_lifecycle_deactivate_activate(settings, engines):
    outputs = Outputs()
    node = PerceptionNode(settings, engines.__getitem__, outputs)
    node.start()
    node.on_image(CAMERAS[1], frame(10))
    assert outputs.wait_instances(10).camera == CAMERAS[1]
    node.stop()
    reply = node.reset()
    assert not reply.success and "shutting down" in reply.message  # answered at once, not after a timeout
    node.on_image(CAMERAS[1], frame(11))
    time.sleep(0.2)
    assert not any(k == "instances" and time_to_ns(m.header.stamp) == 11 for k, m in outputs.messages)
    node.start()
    with outputs.cond:
        outputs.messages.clear()
    node.on_image(CAMERAS[1], frame(12))
    assert outputs.wait_instances(12).header.frame_id == "cam"
    assert node.reset().success
    outputs.wait_diagnostics()  # the diagnostics thread runs again too
    node.stop()
    diagnostics = [m for k, m in outputs.messages if k == "diagnostics"][-1]
    status = next(s for s in diagnostics.status if s.hardware_id == CAMERAS[1])
    values = {kv.key: kv.value for kv in status.values}
    assert int(values["engine.frames"]) >= 1 and "engine.objects_evicted" in values  # the engine's own counters


def test_cameras_on_one_device_share_the_weights_not_the_tracks(engines):
    a, b = (engines[c] for c in CAMERAS)
    assert a is not b and a.model is b.model
