"""The installed tracker_node under a real ROS 2, as its own process, driven by an ordinary rclpy client.

One node serves the module (two cameras, raw and compressed, overlay and labels on); tests run in file
order: lifecycle up, the streams, services, bad inputs, latest-wins, then lifecycle down and SIGTERM.
"""

from __future__ import annotations

import ros_required  # noqa: F401  (first: without ROS 2 this module skips, saying why)
import os
import signal
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from instance_checks import check_masks
from ros_harness import (
    NODE,
    RELIABLE,
    TEST_PARAMETERS,
    RosClient,
    compressed,
    image,
    stamp,
    stamp_ns,
    tracker_node,
    wait_until,
    write_params,
)
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from sam3_ros.codec.image import rgb_to_compressed
from sam3_ros.msg import InstanceArray
from sam3_ros.srv import AddPoints, RemoveObject, SetPrompt

RAW = "/front/image_raw"
COMPRESSED = "/rear/image_raw/compressed"  # image_transport naming: carries CompressedImage
H, W = 48, 64
MAX_PIXELS = 20000
PARAMETERS = {
    **TEST_PARAMETERS,
    "input.topics": [RAW, COMPRESSED],
    "input.max_image_pixels": MAX_PIXELS,
    "prompt.text": "cat",
    "output.overlay": True,
    "output.label_image": True,
}
SERVICES = {"/sam3/set_prompt", "/sam3/add_points", "/sam3/remove_object", "/sam3/reset"}
RNG = np.random.default_rng(5)


class Tracker:
    """The running node, the test's rclpy client and the node's outputs as they arrive."""

    def __init__(self, process, ros: RosClient):
        self.process, self.ros = process, ros
        self.instances = ros.subscribe("/sam3/instances", InstanceArray)
        self.overlay = ros.subscribe("/sam3/overlay", Image)
        self.labels = ros.subscribe("/sam3/labels", Image)
        self.diagnostics = ros.subscribe("/diagnostics", DiagnosticArray)
        self.stamp = 1_000_000_000

    def next_stamp(self) -> int:
        self.stamp += 1_000_000
        return self.stamp

    def send(self, topic: str, rgb: np.ndarray, stamp_ns_: int) -> None:
        message = (
            compressed(rgb, stamp_ns_, frame_id="rear")
            if topic == COMPRESSED
            else image(rgb, stamp_ns_, frame_id="front")
        )
        self.ros.publish(topic, message)

    def process_frame(self, topic: str = RAW, rgb: np.ndarray | None = None, attempts: int = 3) -> InstanceArray:
        """Publish one good frame and return its InstanceArray (retried: cameras are best effort)."""
        rgb = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8) if rgb is None else rgb
        for _ in range(attempts):
            sent = self.next_stamp()
            self.send(topic, rgb, sent)
            try:
                return self.instances.wait_for(lambda m: stamp_ns(m.header.stamp) == sent and m.camera == topic, 15)
            except TimeoutError:
                continue
        raise AssertionError(f"no InstanceArray for a good frame on {topic}; node log:\n{self.process.log()}")

    def call(self, srv_type, name: str, **fields):
        return self.ros.call(srv_type, name, srv_type.Request(**fields))

    def status(self, camera: str | None = None, timeout: float = 5.0) -> dict[str, str]:
        """Key-values of the next /diagnostics status of ``camera`` (None: the node's own)."""
        name = NODE + (f": {camera}" if camera else "")
        start = len(self.diagnostics.messages)
        message = self.diagnostics.wait_for(lambda m: any(s.name == name for s in m.status), timeout, start)
        return {kv.key: kv.value for kv in next(s for s in message.status if s.name == name).values}


@pytest.fixture(scope="module")
def tracker(ros, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tracker")
    process = tracker_node(write_params(folder / "params.yaml", PARAMETERS), folder / "node.log")
    running = Tracker(process, ros)
    yield running
    process.kill()


def test_lifecycle_up_through_change_state(tracker):
    ros = tracker.ros
    assert ros.wait_for_state("unconfigured"), tracker.process.log()
    assert ros.count_publishers("/sam3/instances") == 0
    assert ros.change_state("configure"), tracker.process.log()
    assert ros.state() == "inactive"
    assert wait_until(lambda: ros.count_publishers("/sam3/instances") == 1, 10)
    assert not SERVICES & ros.services(), "services are offered before activation"
    assert ros.change_state("activate")
    assert ros.state() == "active"
    assert wait_until(lambda: SERVICES <= ros.services(), 10), ros.services()
    assert tracker.process_frame().prompt == ["cat"]

    assert ros.change_state("deactivate") and ros.state() == "inactive"
    assert wait_until(lambda: not SERVICES & ros.services(), 10), "services survive deactivation"
    assert ros.change_state("activate") and ros.state() == "active"
    assert tracker.process_frame().header.frame_id == "front"


def test_parameters_come_from_the_params_file(tracker):
    values = tracker.ros.get_parameters(
        [
            "model",
            "devices",
            "input.topics",
            "input.max_image_pixels",
            "prompt.text",
            "output.overlay",
            "detection.score_threshold",
        ]
    )
    assert values == {
        "model": "tiny-random",
        "devices": ["cpu"],
        "input.topics": [RAW, COMPRESSED],
        "input.max_image_pixels": MAX_PIXELS,
        "prompt.text": "cat",
        "output.overlay": True,
        "detection.score_threshold": 0.0,
    }


def test_raw_and_compressed_cameras_give_instances_that_pycocotools_decodes(tracker):
    frames = [RNG.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(4)]
    start = len(tracker.instances.messages)
    for i in range(20):  # 30 Hz on both cameras
        sent = tracker.next_stamp()
        tracker.send(RAW, frames[i % 4], sent)
        tracker.send(COMPRESSED, frames[i % 4], sent + 1)
        time.sleep(1 / 30)
    front = tracker.process_frame(RAW, frames[0])
    rear = tracker.process_frame(COMPRESSED, frames[0])
    outputs = tracker.instances.messages[start:]
    assert {(m.camera, m.header.frame_id) for m in outputs} == {(RAW, "front"), (COMPRESSED, "rear")}
    for message in (front, rear):
        assert message.prompt == ["cat"] and message.instances
        check_masks(message, H, W, "cat")


def test_overlay_and_label_images_carry_the_source_header(tracker):
    result = tracker.process_frame()
    same = lambda m: m.header.stamp == result.header.stamp  # noqa: E731
    overlay = tracker.overlay.wait_for(same, 5)
    labels = tracker.labels.wait_for(same, 5)
    assert (overlay.encoding, overlay.height, overlay.width, overlay.header.frame_id) == ("bgr8", H, W, "front")
    assert (labels.encoding, labels.height, labels.width) == ("mono16", H, W)
    ids = set(np.unique(np.frombuffer(bytes(labels.data), "<u2")).tolist()) - {0}
    assert ids and ids <= {item.id for item in result.instances}


def test_services_change_prompt_and_objects(tracker):
    reply = tracker.call(SetPrompt, "/sam3/set_prompt", phrases=["dog", "red circle"])
    assert reply.success, reply.message
    result = tracker.process_frame()
    assert result.prompt == ["dog", "red circle"] and {i.concept for i in result.instances} <= {"dog", "red circle"}

    reply = tracker.call(
        AddPoints, "/sam3/add_points", object_id=-1, points=[10.0, 12.0, 30.0, 20.0], labels=[1, 0], camera=RAW
    )
    assert reply.success and reply.object_id > 0, reply.message
    created = reply.object_id
    assert created in [i.id for i in tracker.process_frame().instances]

    reply = tracker.call(RemoveObject, "/sam3/remove_object", object_id=created)
    assert reply.success, reply.message
    assert created not in [i.id for i in tracker.process_frame().instances]

    before = {i.id for i in tracker.process_frame().instances}
    assert tracker.call(Trigger, "/sam3/reset").success
    after = {i.id for i in tracker.process_frame().instances}
    assert not before & after  # ids are never reused


def test_prompt_topic_sets_every_camera_and_counts_bad_text(tracker):
    tracker.ros.publish("/sam3/prompt", String(data="bird, fish"), RELIABLE)
    assert wait_until(lambda: tracker.process_frame().prompt == ["bird", "fish"], 15)
    assert tracker.process_frame(COMPRESSED).prompt == ["bird", "fish"]
    rejected = int(tracker.status().get("prompt_topic.rejected", 0))
    tracker.ros.publish("/sam3/prompt", String(data=" , "), RELIABLE)
    assert wait_until(lambda: int(tracker.status().get("prompt_topic.rejected", 0)) == rejected + 1, 10)
    assert tracker.process_frame().prompt == ["bird", "fish"]  # the bad text changed nothing


def _bad_image(**fields) -> Image:
    return image(RNG.integers(0, 256, (H, W, 3), dtype=np.uint8), 0, frame_id="front", **fields)


def _truncated_jpeg() -> bytes:
    whole = rgb_to_compressed(RNG.integers(0, 256, (H, W, 3), dtype=np.uint8), "jpeg")
    return whole[: len(whole) // 2]


BAD_IMAGES = [
    (RAW, lambda: _bad_image(encoding="bayer_rggb8"), "unsupported image encoding 'bayer_rggb8'"),
    (RAW, lambda: _bad_image(height=0, width=0, step=0, data=b""), "zero size"),
    (RAW, lambda: _bad_image(step=W * 3 + 5), f"expected step {W * 3 + 5} x height {H}"),
    (RAW, lambda: _bad_image(data=bytes(10)), "data has 10 bytes"),
    (RAW, lambda: image(np.zeros((200, 200, 3), np.uint8), 0), f"exceeds the limit of {MAX_PIXELS}"),
    (COMPRESSED, lambda: compressed(None, 0, "jpeg", data=_truncated_jpeg()), "cannot decode jpeg"),
    (COMPRESSED, lambda: compressed(None, 0, "tiff", data=b"II*\x00"), "unsupported compressed format 'tiff'"),
    (COMPRESSED, lambda: compressed(None, 0, "png", data=b""), "no data"),
]


@pytest.mark.parametrize("camera,make,reason", BAD_IMAGES, ids=[r for _, _, r in BAD_IMAGES])
def test_bad_images_are_counted_in_diagnostics_and_the_node_keeps_going(tracker, camera, make, reason):
    count = int(tracker.status(camera).get("rejected.bad_image", 0)) + 1
    message = make()
    message.header.stamp = stamp(tracker.next_stamp())
    tracker.ros.publish(camera, message)
    # wait for the rejection: a good frame sent now could replace the bad one in the latest-wins slot
    assert wait_until(lambda: int(tracker.status(camera).get("rejected.bad_image", 0)) >= count, 10)
    values = tracker.status(camera)
    assert int(values["rejected.bad_image"]) == count and reason in values["last_error"], values
    assert tracker.process_frame(camera).camera == camera


BAD_REQUESTS = [
    (SetPrompt, "/sam3/set_prompt", {"phrases": []}, "empty prompt"),
    (SetPrompt, "/sam3/set_prompt", {"phrases": ["x" * 10000]}, "10000 characters"),
    (SetPrompt, "/sam3/set_prompt", {"phrases": ["cat"], "camera": "/nope"}, "unknown camera '/nope'"),
    (
        AddPoints,
        "/sam3/add_points",
        {"object_id": 987654, "points": [1.0, 2.0], "labels": [1], "camera": RAW},
        "unknown object id 987654",
    ),
    (
        AddPoints,
        "/sam3/add_points",
        {"object_id": -1, "points": [float("nan"), 2.0], "labels": [1], "camera": RAW},
        "NaN",
    ),
    (AddPoints, "/sam3/add_points", {"object_id": -1, "points": [1.0, 2.0], "labels": [1]}, "several cameras"),
    (RemoveObject, "/sam3/remove_object", {"object_id": 987654}, "unknown object id 987654"),
]


@pytest.mark.parametrize("srv_type,name,fields,expected", BAD_REQUESTS, ids=[e for *_, e in BAD_REQUESTS])
def test_bad_requests_get_a_reason_and_the_node_keeps_going(tracker, srv_type, name, fields, expected):
    tracker.process_frame()  # an image exists, so the failure is about the request itself
    reply = tracker.call(srv_type, name, **fields)
    assert not reply.success and expected in reply.message, reply.message
    assert tracker.process_frame().header.frame_id == "front"


def test_latest_wins_under_a_fast_camera(tracker):
    """A 60 Hz camera and an engine slower than that: outputs stay recent (no backlog) and the frames never
    processed are counted as dropped, in the message and in /diagnostics. Four seconds of camera, so that a
    stall of two loaded cores (once only 2 outputs in two seconds) does not decide it."""
    big = [RNG.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(4)]
    dropped_before = tracker.process_frame().dropped_frames
    start = len(tracker.instances.messages)
    sent = []
    for i in range(240):  # four seconds at 60 Hz
        sent.append(tracker.next_stamp())
        tracker.send(RAW, big[i % 4], sent[-1])
        time.sleep(1 / 60)
    last = tracker.instances.wait_for(lambda m: stamp_ns(m.header.stamp) == sent[-1], 15)
    outputs = [m for m in tracker.instances.messages[start:] if m.camera == RAW]
    assert 3 <= len(outputs) < len(sent), len(outputs)
    assert last.dropped_frames > dropped_before
    assert int(tracker.status(RAW)["dropped_stale"]) >= last.dropped_frames


def test_lifecycle_down_then_sigterm_exits_within_2s(tracker):
    ros = tracker.ros
    assert ros.change_state("deactivate") and ros.change_state("cleanup"), tracker.process.log()
    assert ros.state() == "unconfigured"
    assert wait_until(lambda: ros.count_publishers("/sam3/instances") == 0, 10), "cleanup left the publishers"
    assert ros.change_state("shutdown") and ros.state() == "finalized"
    code, seconds = tracker.process.stop(signal.SIGTERM)
    assert code == 0 and seconds < 2.0, (code, seconds, tracker.process.log())


def test_failed_configure_keeps_nothing_and_sigint_exits_within_2s(ros, tmp_path):
    """A model that cannot load: configure fails and leaves no publisher; fixed, it configures; SIGINT ends it."""
    params = write_params(
        tmp_path / "params.yaml",
        {**TEST_PARAMETERS, "model": str(tmp_path / "no-such-model"), "input.topics": ["/other/image_raw"]},
    )
    process = tracker_node(params, tmp_path / "node.log")
    try:
        assert ros.wait_for_state("unconfigured"), process.log()
        assert not ros.change_state("configure")
        assert ros.state() == "unconfigured" and "no-such-model" in process.log()
        time.sleep(1.0)  # a leaked publisher would show in the graph by now
        assert ros.count_publishers("/sam3/instances") == 0 and ros.count_publishers("/diagnostics") == 0
        assert ros.set_parameters({"model": "tiny-random"}) == [True]
        assert ros.change_state("configure") and ros.change_state("activate"), process.log()
        inbox = ros.subscribe("/sam3/instances", InstanceArray)
        assert ros.wait_for_subscriber("/other/image_raw", Image)
        assert wait_until(
            lambda: (
                ros.publish("/other/image_raw", image(np.zeros((H, W, 3), np.uint8), 77))
                or any(stamp_ns(m.header.stamp) == 77 for m in inbox.messages)
            ),
            20,
            period=0.5,
        )
        code, seconds = process.stop(signal.SIGINT)
        assert code == 0 and seconds < 2.0, (code, seconds, process.log())
    finally:
        process.kill()


def test_two_nodes_in_their_own_namespaces(ros, tmp_path):
    """Two nodes, each in its own namespace with a relative instances topic, on one graph."""
    processes = []
    try:
        for name in ("left", "right"):
            params = write_params(
                tmp_path / f"{name}.yaml",
                {**TEST_PARAMETERS, "input.topics": [f"/{name}/image_raw"], "output.instances_topic": "sam3/instances"},
            )
            processes.append(tracker_node(params, tmp_path / f"{name}.log", name))
        for name, process in zip(("left", "right"), processes):
            assert ros.wait_for_state("unconfigured", f"/{name}/{NODE}"), process.log()
            assert ros.change_state("configure", f"/{name}/{NODE}") and ros.change_state("activate", f"/{name}/{NODE}")
        for name in ("left", "right"):
            inbox = ros.subscribe(f"/{name}/sam3/instances", InstanceArray)
            assert ros.wait_for_subscriber(f"/{name}/image_raw", Image)
            reply = ros.call(SetPrompt, f"/{name}/sam3/set_prompt", SetPrompt.Request(phrases=[name]))
            assert reply.success, reply.message
            assert wait_until(
                lambda: (
                    ros.publish(f"/{name}/image_raw", image(np.zeros((H, W, 3), np.uint8), 5))
                    or any(m.prompt == [name] for m in inbox.messages)
                ),
                20,
                period=0.5,
            )
            assert all(m.camera == f"/{name}/image_raw" for m in inbox.messages)
    finally:
        for process in processes:
            process.kill()


def test_one_cpu_affinity_keeps_services_and_cameras_answering(ros, tmp_path):
    """Pinned to one CPU (taskset, a container's cpuset), the node keeps several executor threads, so a service
    waiting on a worker does not hold up the camera callbacks (rclpy's default would be one thread, with a
    warning on the console), and it serves prompts and frames as usual."""
    params = write_params(tmp_path / "params.yaml", {**TEST_PARAMETERS, "input.topics": ["/pinned/image_raw"]})
    process = tracker_node(params, tmp_path / "node.log", cpus={min(os.sched_getaffinity(0))})
    try:
        assert ros.wait_for_state("unconfigured"), process.log()
        assert ros.change_state("configure") and ros.change_state("activate"), process.log()
        inbox = ros.subscribe("/sam3/instances", InstanceArray)
        assert ros.wait_for_subscriber("/pinned/image_raw", Image)
        reply = ros.call(SetPrompt, "/sam3/set_prompt", SetPrompt.Request(phrases=["pinned"]))
        assert reply.success, reply.message
        assert wait_until(
            lambda: (
                ros.publish("/pinned/image_raw", image(np.zeros((H, W, 3), np.uint8), 9))
                or any(m.prompt == ["pinned"] for m in inbox.messages)
            ),
            20,
            period=0.5,
        ), process.log()
        assert "MultiThreadedExecutor is used with a single thread" not in process.log()
    finally:
        process.kill()
