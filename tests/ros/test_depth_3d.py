"""3D from aligned depth under a real ROS 2, on both transports: an rclpy camera publishes colour, a 16UC1 depth
image of a wall 2 m away and the colour camera's CameraInfo; the node (``ros2 launch`` with ``depth_topic:=``, or
the DDS-direct node) publishes vision_msgs detections whose centroids lie on that wall, exactly where each
instance's mask (from ``/sam3/instances``) back-projects, and each ``Instance`` carries the number of depth pixels
behind its 3D. ``ros2 topic echo /sam3/detections_3d`` prints them."""

from __future__ import annotations

import ros_required  # noqa: F401  (first: without ROS 2 this module skips, saying why)
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml
from builtin_interfaces.msg import Time
from ros_harness import TEST_PARAMETERS, RosProcess, image, ros2_launch, ros_env, stamp, stamp_ns, write_params
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray, Detection3DArray

from instance_checks import check_depth_pixels
from sam3_ros.codec import rle
from sam3_ros.msg import InstanceArray

CAMERA, DEPTH, INFO = "/rgbd/color/image_raw", "/rgbd/aligned_depth_to_color/image_raw", "/rgbd/color/camera_info"
H, W = 48, 64
FX, FY, CX, CY = 60.0, 60.0, 31.5, 23.5
WALL_MM = 2000
CYCLONE_LOOPBACK = (
    "<General><Interfaces><NetworkInterface address='127.0.0.1'/></Interfaces>"
    "<AllowMulticast>false</AllowMulticast></General><Discovery><Peers><Peer address='127.0.0.1'/>"
    "</Peers><ParticipantIndex>auto</ParticipantIndex></Discovery>"
)


def depth_image(stamp_ns_: int) -> Image:
    data = np.full((H, W), WALL_MM, "<u2").view(np.uint8).tobytes()
    return Image(
        header=Header(stamp=stamp(stamp_ns_), frame_id="rgbd_optical"),
        height=H,
        width=W,
        encoding="16UC1",
        is_bigendian=0,
        step=2 * W,
        data=data,
    )


def camera_info(stamp_ns_: int) -> CameraInfo:
    return CameraInfo(
        header=Header(stamp=stamp(stamp_ns_), frame_id="rgbd_optical"),
        height=H,
        width=W,
        distortion_model="plumb_bob",
        d=[0.0] * 5,
        k=[FX, 0.0, CX, 0.0, FY, CY, 0.0, 0.0, 1.0],
        p=[FX, 0.0, CX, 0.0, 0.0, FY, CY, 0.0, 0.0, 0.0, 1.0, 0.0],
    )


def expected_centroid(instance) -> tuple[float, float, float]:
    """Where the instance's mask back-projects on the wall: its mean pixel at the wall's depth."""
    mask = rle.decode(np.asarray(instance.mask_rle), H, W).astype(bool)
    rows, cols = np.nonzero(mask)
    z = WALL_MM / 1000
    return (cols.mean() - CX) * z / FX, (rows.mean() - CY) * z / FY, z


@pytest.fixture(scope="module", params=["rclpy", "dds"])
def node(request, ros, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    if request.param == "rclpy":
        params = write_params(
            folder / "params.yaml", {**TEST_PARAMETERS, "prompt.text": "cat", "depth.max_samples": 100000}
        )
        process = ros2_launch(
            "tracker.launch.py",
            {"params_file": str(params), "camera_topic": CAMERA, "depth_topic": DEPTH, "point_cloud": "true"},
            folder / "node.log",
        )
    else:  # the CameraInfo topic named, as input.camera_info_topics
        settings = {
            **TEST_PARAMETERS,
            "devices": "[cpu]",
            "input.topics": f"[{CAMERA}]",
            "input.depth_topics": f"[{DEPTH}]",
            "input.camera_info_topics": f"[{INFO}]",
            "output.point_cloud": "true",
            "prompt.text": "cat",
            "depth.max_samples": "100000",
        }
        sets = [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]
        process = RosProcess(
            [sys.executable, "-m", "sam3_ros.cli", "node", "--transport", "dds", *sets],
            folder / "node.log",
            ros_env(CYCLONEDDS_URI=CYCLONE_LOOPBACK),
        )
    yield process
    process.kill()


def send_until_output(ros, node, inbox, stamp0: int, timeout: float = 180.0):
    """Publish CameraInfo, depth and colour frames (stamps 1 ms apart, as a camera's) until ``inbox`` has an
    output for one of them; that output."""
    deadline, sent = time.monotonic() + timeout, stamp0
    rgb = np.random.default_rng(3).integers(0, 256, (H, W, 3), dtype=np.uint8)
    while time.monotonic() < deadline:
        sent += 100_000_000
        ros.publish(INFO, camera_info(sent))
        ros.publish(DEPTH, depth_image(sent + 1_000_000))
        ros.publish(CAMERA, image(rgb, sent, frame_id="rgbd_optical"))
        try:
            return inbox.wait_for(lambda m: stamp_ns(m.header.stamp) >= stamp0, 0.5)
        except TimeoutError:
            continue
    raise AssertionError(f"no output; node log:\n{node.log()}")


def test_detections_3d_lie_where_the_masks_back_project(ros, node):
    instances = ros.subscribe("/sam3/instances", InstanceArray)
    detections = ros.subscribe("/sam3/detections", Detection2DArray)
    detections_3d = ros.subscribe("/sam3/detections_3d", Detection3DArray)
    points = ros.subscribe("/sam3/points", PointCloud2)
    first = send_until_output(ros, node, detections_3d, 1_000_000_000)
    at = first.header.stamp
    same = lambda m: m.header.stamp == at  # noqa: E731
    found = instances.wait_for(same)
    assert first.header.frame_id == "rgbd_optical" and found.instances, node.log()
    by_id = {str(i.id): i for i in found.instances}
    assert [d.id for d in detections.wait_for(same).detections] == [str(i.id) for i in found.instances]
    assert first.detections and {d.id for d in first.detections} <= set(by_id)
    for detection in first.detections:
        position = detection.results[0].pose.pose.position
        assert (position.x, position.y, position.z) == pytest.approx(expected_centroid(by_id[detection.id]), abs=1e-6)
        assert detection.results[0].hypothesis.class_id == "cat"
    # the 3D fields of the instances, as the transport delivers them: the depth pixels behind each estimate
    check_depth_pixels(found, first, erode_px=2, min_points=20)  # the defaults
    assert any(item.has_3d for item in found.instances)
    cloud = points.wait_for(same)
    assert cloud.width > 0 and [f.name for f in cloud.fields] == ["x", "y", "z", "id"]


def test_ros2_topic_echo_shows_the_centroids(ros, node):
    echo = subprocess.Popen(
        ["ros2", "topic", "echo", "--once", "/sam3/detections_3d", "vision_msgs/msg/Detection3DArray"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=ros_env(),
        text=True,
    )
    try:
        instances = ros.subscribe("/sam3/instances", InstanceArray)
        stamp0, deadline = 100_000_000_000, time.monotonic() + 120
        # Frames until echo has printed one message: on a loaded machine its start and discovery take many seconds.
        while echo.poll() is None and time.monotonic() < deadline:
            send_until_output(ros, node, instances, stamp0, 10)
            stamp0 += 1_000_000_000
        try:
            out, _ = echo.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            echo.kill()
            raise AssertionError(f"ros2 topic echo printed nothing in 120 s: {echo.communicate()[0]}\n{node.log()}")
    finally:
        echo.kill()
    printed = yaml.safe_load(out.split("---")[0])
    at = Time(sec=printed["header"]["stamp"]["sec"], nanosec=printed["header"]["stamp"]["nanosec"])
    by_id = {str(i.id): i for i in instances.wait_for(lambda m: m.header.stamp == at).instances}
    assert printed["detections"], out
    for detection in printed["detections"]:
        position = detection["results"][0]["pose"]["pose"]["position"]
        assert (position["x"], position["y"], position["z"]) == pytest.approx(
            expected_centroid(by_id[detection["id"]]), abs=1e-6
        )
