"""The tracker node end to end over real Cyclone DDS on loopback: the node runs in its own process
(``sam3-ros node --transport dds``, tiny-random engine), this test process is camera and client.

One node serves the module (started by a fixture, stopped after the last test); before each test the ``node``
fixture brings it back to its start-up state (prompt "cat", no objects), so the tests run in any order. Tests
of stopping start nodes of their own. The tiny-random model has random weights: thresholds are set to 0 so
that its detections become objects.
"""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from instance_checks import check_masks

from sam3_ros.codec.image import rgb_to_compressed, rgb_to_image_fields
from sam3_ros.pipeline.messages import compressed_message, header, image_message, time_to_ns
from sam3_ros.ros.client import PerceptionClient

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = random.SystemRandom().randint(1, 200)  # isolates this module from other DDS tests on the machine
RAW = "/front/image_raw"
COMPRESSED = "/rear/image_raw/compressed"  # image_transport naming: carries CompressedImage
H, W = 48, 64
MAX_PIXELS = 20000
NODE_SETTINGS = {
    "devices": "[cpu]",
    "detection.score_threshold": "0.0",
    "detection.new_object_threshold": "0.0",
    "input.topics": f"[{RAW}, {COMPRESSED}]",
    "input.max_image_pixels": str(MAX_PIXELS),
    "prompt.text": "cat",
    "output.diagnostics_period_s": "0.3",
    "output.overlay": "true",
    "output.label_image": "true",
}
RNG = np.random.default_rng(3)
START_S = 180  # a node's start (imports, model) on a loaded 2-core machine; this module starts three


def node_env() -> dict:
    return {
        **os.environ,
        "ROS_DOMAIN_ID": str(DOMAIN),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }


def start_node(settings: dict, log_path: Path, *extra: str) -> subprocess.Popen:
    sets = [arg for key, value in {"model": "tiny-random", **settings}.items() for arg in ("--set", f"{key}={value}")]
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "sam3_ros.cli", "node", "--transport", "dds", *sets, *extra],
            env=node_env(),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop_within(process: subprocess.Popen, signum: int, limit_s: float) -> float:
    """Send ``signum``, return how long the process took to exit (kill it if it exceeds the limit)."""
    start = time.monotonic()
    process.send_signal(signum)
    try:
        assert process.wait(limit_s) == 0
    finally:
        if process.poll() is None:
            process.kill()
    return time.monotonic() - start


class Node:
    """The running node and a client to it, with a frame counter for unique stamps."""

    def __init__(self, process, client, log_path):
        self.process, self.client, self.log_path = process, client, log_path
        self.stamp = 1_000_000_000

    def next_stamp(self) -> int:
        self.stamp += 1_000_000
        return self.stamp

    def process_frame(self, rgb=None, topic=RAW, attempts=3):
        """Publish one good frame and return its InstanceArray (retried: images are best effort)."""
        rgb = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8) if rgb is None else rgb
        for _ in range(attempts):
            stamp = self.next_stamp()
            if topic == COMPRESSED:
                self.client.publish_compressed(topic, rgb, stamp, frame_id="rear", fmt="png")
            else:
                self.client.publish_image(topic, rgb, stamp, frame_id="front")
            try:
                return self.client.wait_for_instances(stamp, camera=topic, timeout=10)
            except TimeoutError:
                continue
        raise AssertionError(f"no InstanceArray for a good frame on {topic}; node log:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@pytest.fixture(scope="module")
def module_node(tmp_path_factory):
    """The node shared by the module's tests, and a client subscribed to its outputs."""
    log_path = tmp_path_factory.mktemp("node") / "node.log"
    process = start_node(NODE_SETTINGS, log_path)
    client = PerceptionClient(domain=DOMAIN)
    try:  # the node is stopped also when it never came up
        overlay, labels = [], []
        client.participant.subscribe("/sam3/overlay", "sensor_msgs/msg/Image", overlay.append)
        client.participant.subscribe("/sam3/labels", "sensor_msgs/msg/Image", labels.append)
        running = Node(process, client, log_path)
        running.overlay, running.labels = overlay, labels
        assert client.wait_for_node([RAW], timeout=START_S), f"node did not come up; log:\n{running.log()}"
        assert client.camera(COMPRESSED, compressed=True).wait_for_subscribers(1, 10)
        yield running
    finally:
        client.close()
        if process.poll() is None:
            process.kill()
            process.wait(5)


@pytest.fixture
def node(module_node):
    """The module's node, back in its start-up state: prompt "cat" on every camera, no objects."""
    assert module_node.process.poll() is None, f"the node died; log:\n{module_node.log()}"
    for reply in (module_node.client.set_prompt(["cat"]), module_node.client.reset()):
        assert reply.success, reply.message
    return module_node


def diagnostics_of(client, camera=None) -> dict:
    """Key-value pairs of the next diagnostics status for ``camera`` (None = the node's own status)."""
    message = client.wait_for_diagnostics(5)
    name = "sam3_tracker" + (f": {camera}" if camera else "")
    status = next(s for s in message.status if s.name == name)
    return {kv.key: kv.value for kv in status.values}


def test_image_and_compressed_streams_give_instances_with_the_source_header(node):
    frames = [RNG.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(4)]
    sent = {}
    for i in range(30):  # one second of 30 Hz on both topics
        stamp = node.next_stamp()
        sent[stamp] = i
        node.client.publish_image(RAW, frames[i % 4], stamp, frame_id="front")
        node.client.publish_compressed(COMPRESSED, frames[i % 4], stamp + 1, frame_id="rear")
        time.sleep(1 / 30)
    last = node.client.wait_for_instances(stamp, camera=RAW, timeout=10)
    last_rear = node.client.wait_for_instances(stamp + 1, camera=COMPRESSED, timeout=10)
    assert (last.header.frame_id, last_rear.header.frame_id) == ("front", "rear")
    results = [m for m in node.client.received if time_to_ns(m.header.stamp) in sent]
    rear = [m for m in node.client.received if time_to_ns(m.header.stamp) - 1 in sent]
    assert results and rear
    assert all(m.camera == RAW and m.header.frame_id == "front" for m in results)
    assert all(m.camera == COMPRESSED and m.header.frame_id == "rear" for m in rear)
    assert last.prompt == ["cat"] and len(last.instances) > 0
    for message in (last, last_rear):
        check_masks(message, H, W, "cat")


def test_overlay_and_label_images_carry_the_source_header(node):
    result = node.process_frame()
    stamp = result.header.stamp
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (
        any(m.header.stamp == stamp for m in node.overlay) and any(m.header.stamp == stamp for m in node.labels)
    ):
        time.sleep(0.02)
    overlay = next(m for m in node.overlay if m.header.stamp == stamp)
    labels = next(m for m in node.labels if m.header.stamp == stamp)
    assert (overlay.encoding, overlay.height, overlay.width, overlay.header.frame_id) == ("bgr8", H, W, "front")
    assert (labels.encoding, labels.height, labels.width) == ("mono16", H, W)
    ids = set(np.unique(labels.data.view("<u2")).tolist()) - {0}
    assert ids and ids <= {item.id for item in result.instances}


def test_services_change_prompt_and_objects(node):
    client = node.client
    reply = client.set_prompt(["dog", "red circle"])
    assert reply.success, reply.message
    result = node.process_frame()
    assert result.prompt == ["dog", "red circle"]
    assert result.instances and {i.concept for i in result.instances} <= {"dog", "red circle"}

    reply = client.add_points([10, 12, 30, 20], [1, 0], camera=RAW)
    assert reply.success and reply.object_id > 0, reply.message
    created = reply.object_id
    result = node.process_frame()
    assert created in [i.id for i in result.instances]
    assert next(i for i in result.instances if i.id == created).concept == ""

    refine = client.add_points([20, 20], [1], object_id=created, box=[5, 5, 40, 40], camera=RAW)
    assert refine.success and refine.object_id == created, refine.message

    reply = client.remove_object(created)
    assert reply.success, reply.message
    assert created not in [i.id for i in node.process_frame().instances]

    before = {i.id for i in node.process_frame().instances}
    assert client.reset().success
    after = {i.id for i in node.process_frame().instances}
    assert not before & after and min(after, default=max(before) + 1) > max(before)  # ids are never reused


def test_prompt_topic_sets_every_camera_and_counts_bad_text(node):
    node.client.publish_prompt("bird, fish")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if node.process_frame().prompt == ["bird", "fish"] and node.process_frame(topic=COMPRESSED).prompt == [
            "bird",
            "fish",
        ]:
            break
    else:
        raise AssertionError("the /sam3/prompt text never became the prompt")
    rejected = int(diagnostics_of(node.client).get("prompt_topic.rejected", 0))
    node.client.publish_prompt(" , ")
    deadline = time.monotonic() + 5
    while int(diagnostics_of(node.client).get("prompt_topic.rejected", 0)) != rejected + 1:
        assert time.monotonic() < deadline, "an empty /sam3/prompt was not counted"
    assert node.process_frame().prompt == ["bird", "fish"]  # the bad text changed nothing


def _image(encoding="rgb8", height=H, width=W, step=None, data=None, stamp=0):
    rgb = RNG.integers(0, 256, (height, width, 3), dtype=np.uint8)
    fields = (
        rgb_to_image_fields(rgb)
        if height and width
        else {
            "height": height,
            "width": width,
            "encoding": "rgb8",
            "is_bigendian": 0,
            "step": width * 3,
            "data": np.zeros(0, np.uint8),
        }
    )
    fields["encoding"] = encoding
    if step is not None:
        fields["step"] = step
    if data is not None:
        fields["data"] = data
    return image_message(fields, stamp, "front")


def _wait_for_rejection(client, camera, count, timeout=5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        values = diagnostics_of(client, camera)
        if int(values.get("rejected.bad_image", 0)) >= count or time.monotonic() > deadline:
            return values


def test_bad_images_are_counted_and_the_node_keeps_going(node):
    raw = node.client.camera(RAW)
    rear = node.client.camera(COMPRESSED, compressed=True)
    jpeg = rgb_to_compressed(RNG.integers(0, 256, (H, W, 3), dtype=np.uint8), "jpeg")
    bad = [
        (RAW, _image(encoding="bayer_rggb8"), "unsupported image encoding 'bayer_rggb8'"),
        (RAW, _image(height=0, width=0), "zero size"),
        (RAW, _image(step=W * 3 + 5), f"expected step {W * 3 + 5} x height {H}"),
        (RAW, _image(data=np.zeros(10, np.uint8)), "data has 10 bytes"),
        (RAW, _image(height=200, width=200), f"exceeds the limit of {MAX_PIXELS}"),
        (COMPRESSED, compressed_message(jpeg[: len(jpeg) // 2], "jpeg", 0), "cannot decode jpeg"),
        (COMPRESSED, compressed_message(jpeg, "tiff", 0), "unsupported compressed format 'tiff'"),
        (COMPRESSED, compressed_message(b"", "png", 0), "no data"),
    ]
    for camera, message, reason in bad:
        count = int(diagnostics_of(node.client, camera).get("rejected.bad_image", 0)) + 1
        message.header = header(node.next_stamp(), "front")
        (raw if camera == RAW else rear).publish(message)
        # Wait until it was rejected: a good frame sent earlier would replace it in the latest-wins slot.
        values = _wait_for_rejection(node.client, camera, count)
        assert int(values.get("rejected.bad_image", 0)) == count and reason in values["last_error"], values
        assert node.process_frame(topic=camera).header.stamp == header(node.stamp).stamp


@pytest.mark.parametrize(
    "call,expected",
    [
        (lambda c: c.set_prompt([]), "empty prompt"),
        (lambda c: c.set_prompt(["x" * 10000]), "10000 characters"),
        (lambda c: c.set_prompt(["cat"], boxes=[500, 500, 600, 600], box_labels=[True], camera=RAW), "outside"),
        (lambda c: c.set_prompt(["cat"], camera="/nope"), "unknown camera '/nope'"),
        (lambda c: c.add_points([1, 2], [1], object_id=987654, camera=RAW), "unknown object id 987654"),
        (lambda c: c.add_points([float("nan"), 2], [1], camera=RAW), "NaN"),
        (lambda c: c.add_points([1, 2], [1], box=[float("nan"), 0, 1, 1], camera=RAW), "NaN"),
        (lambda c: c.add_points([1, 2], [1], stamp_ns=5, camera=RAW), "not the latest processed image"),
        (lambda c: c.add_points([1, 2], [1]), "several cameras"),
        (lambda c: c.remove_object(987654), "unknown object id 987654"),
        (lambda c: c.remove_object(987654, camera=RAW), "unknown object id 987654"),
    ],
)
def test_bad_requests_get_a_reason_and_the_node_keeps_going(node, call, expected):
    node.process_frame()  # an image exists, so the failure is about the request itself
    reply = call(node.client)
    assert not reply.success and expected in reply.message, reply.message
    assert node.process_frame().header.frame_id == "front"


def test_latest_wins_keeps_published_stamps_recent_and_counts_drops(node):
    """A 60 Hz camera with an engine slower than 60 Hz: outputs lag by at most about one processing time
    (no backlog), and the frames never processed are counted as dropped."""
    node.client.set_prompt(["cat"])
    big = (96, 128)  # a little more work per frame, so the tiny engine is surely slower than 60 Hz
    frames = [RNG.integers(0, 256, (*big, 3), dtype=np.uint8) for _ in range(4)]
    dropped_before = node.process_frame().dropped_frames
    lags = {}
    arrivals = {}

    start = len(node.client.received)
    for i in range(120):  # two seconds at 60 Hz; stamps are wall-clock send times
        stamp = time.time_ns()
        node.client.publish_image(RAW, frames[i % 4], stamp, frame_id="front")
        for message in list(node.client.received)[start:]:
            arrivals.setdefault(time_to_ns(message.header.stamp), (time.time_ns(), message))
        time.sleep(1 / 60)
    last = node.client.wait_for_instances(stamp, camera=RAW, timeout=10)
    arrivals.setdefault(stamp, (time.time_ns(), last))
    for sent, (arrived, message) in arrivals.items():
        if message.camera == RAW and sent >= stamp - 2_000_000_000:
            lags[sent] = ((arrived - sent) / 1e6, message.latency_ms)
    assert len(lags) >= 10
    processing_ms = float(np.median([latency for _, latency in lags.values()]))
    worst_lag = max(lag for lag, _ in lags.values())
    # lag = wait in the slot (< one processing time) + own processing + delivery, polled every 1/60 s
    assert worst_lag < 1000 / 60 + 3 * processing_ms + 250, (worst_lag, processing_ms)
    assert len(lags) < 120 and last.dropped_frames > dropped_before
    assert int(diagnostics_of(node.client, RAW)["dropped_stale"]) >= last.dropped_frames


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_a_namespaced_node_within_2s(tmp_path, signum):
    """A node of its own in a namespace (one node per camera): relative names land under it; SIGTERM or
    SIGINT stops it."""
    log_path = tmp_path / "node.log"
    process = start_node(
        {"devices": "[cpu]", "input.topics": "[/ns_cam/image_raw]", "output.instances_topic": "sam3/instances"},
        log_path,
        "--namespace",
        "robot7",
    )
    client = PerceptionClient(domain=DOMAIN, namespace="robot7", instances_topic="sam3/instances")
    try:
        assert client.wait_for_node(["/ns_cam/image_raw"], timeout=START_S), log_path.read_text()
        assert client.instances.name == "/robot7/sam3/instances"
        assert client.reset().success
        client.publish_image("/ns_cam/image_raw", np.zeros((H, W, 3), np.uint8), 77)
        assert client.wait_for_instances(77, timeout=10).camera == "/ns_cam/image_raw"
        assert stop_within(process, signum, 2.0) < 2.0
        assert "stopped" in log_path.read_text()
    finally:
        client.close()
        if process.poll() is None:
            process.kill()


@pytest.mark.parametrize(
    "env,args,expected",
    [
        ({"ROS_DOMAIN_ID": "999"}, [], "ROS_DOMAIN_ID='999' is not an integer in [0, 232]"),
        ({}, ["--set", "model=/nonexistent/sam3"], "/nonexistent/sam3"),
        ({}, ["--set", "detection.score_threshold=2"], "detection.score_threshold: 2.0 is outside [0.0, 1.0]"),
    ],
)
def test_bad_configuration_exits_2_with_a_reason(env, args, expected):
    out = subprocess.run(
        [sys.executable, "-m", "sam3_ros.cli", "node", "--transport", "dds", *args],
        env={**node_env(), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and expected in out.stderr, out.stderr[-2000:]
