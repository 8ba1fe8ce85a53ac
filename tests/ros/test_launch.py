"""The launch files under real ``ros2 launch`` (a subprocess, as a user runs it; SIGINT ends it)."""

from __future__ import annotations

import ros_required  # noqa: F401  (first: without ROS 2 this module skips, saying why)
import signal
import subprocess
import sys

import numpy as np
import pytest
from ros_harness import NODE, TEST_PARAMETERS, image, packaged_params, ros2_launch, stamp_ns, write_params
from sensor_msgs.msg import Image

from sam3_ros.msg import InstanceArray
from sam3_ros.srv import SetPrompt

H, W = 48, 64


def first_output(ros, camera: str, instances: str, frames: int = 40, stamp0: int = 1000) -> InstanceArray:
    """Publish frames on ``camera`` until one comes back on ``instances``; that InstanceArray."""
    inbox = ros.subscribe(instances, InstanceArray)
    assert ros.wait_for_subscriber(camera, Image, timeout=60), f"nothing subscribes to {camera}"
    for i in range(frames):
        ros.publish(camera, image(np.zeros((H, W, 3), np.uint8), stamp0 + i))
        try:
            return inbox.wait_for(lambda m: stamp_ns(m.header.stamp) >= stamp0, 0.5)
        except TimeoutError:
            continue
    raise AssertionError(f"no InstanceArray on {instances} for images on {camera}")


def stop_launch(launch) -> None:
    code, seconds = launch.stop(signal.SIGINT, timeout=15)
    assert code == 0, (code, seconds, launch.log())


def test_tracker_launch_takes_every_setting_from_the_params_file(ros, tmp_path):
    """Launch arguments left out are not passed: the file's model, devices, prompt and overlay hold."""
    settings = {
        "model": str(tmp_path / "my-sam3"),
        "devices": ["cpu"],
        "prompt.text": "zebra, giraffe",
        "output.overlay": True,
        "input.topics": ["/params/image_raw"],
    }
    params = write_params(tmp_path / "my.yaml", settings)
    launch = ros2_launch("tracker.launch.py", {"params_file": str(params), "autostart": "false"}, tmp_path / "log")
    try:
        assert ros.wait_for_state("unconfigured"), launch.log()
        assert ros.get_parameters(list(settings)) == settings
    finally:
        stop_launch(launch)
        launch.kill()


def test_tracker_launch_arguments_given_win_over_the_params_file(ros, tmp_path):
    params = write_params(
        tmp_path / "my.yaml",
        {**TEST_PARAMETERS, "model": str(tmp_path / "my-sam3"), "prompt.text": "zebra", "output.overlay": True},
    )
    launch = ros2_launch(
        "tracker.launch.py",
        {
            "params_file": str(params),
            "model": "tiny-random",
            "prompt": "cat",
            "overlay": "false",
            "camera_topic": "/given/image_raw",
        },
        tmp_path / "log",
    )
    try:
        assert ros.wait_for_state("active"), launch.log()  # autostart: configured and activated by the launch
        assert ros.get_parameters(["model", "prompt.text", "output.overlay", "input.topics", "devices"]) == {
            "model": "tiny-random",
            "prompt.text": "cat",
            "output.overlay": False,
            "input.topics": "/given/image_raw",
            "devices": ["cpu"],
        }
        output = first_output(ros, "/given/image_raw", "/sam3/instances")
        assert output.camera == "/given/image_raw" and output.prompt == ["cat"]
        assert ros.count_publishers("/sam3/overlay") == 0
    finally:
        stop_launch(launch)
        launch.kill()


def test_multi_camera_launch_one_node_per_camera(ros, tmp_path):
    params = write_params(tmp_path / "test.yaml", TEST_PARAMETERS)
    launch = ros2_launch(
        "multi_camera.launch.py",
        {"cameras": "front,rear", "params_file": str(params), "prompt": "cat"},
        tmp_path / "log",
    )
    try:
        for camera in ("front", "rear"):
            assert ros.wait_for_state("active", f"/{camera}/{NODE}"), launch.log()
        for camera in ("front", "rear"):
            output = first_output(ros, f"/{camera}/image_raw", f"/{camera}/sam3/instances")
            assert output.camera == f"/{camera}/image_raw" and output.prompt == ["cat"]
        reply = ros.call(SetPrompt, "/rear/sam3/set_prompt", SetPrompt.Request(phrases=["dog"]))
        assert reply.success, reply.message
        assert "executed more than once" not in launch.log()
    finally:
        stop_launch(launch)
        launch.kill()


def test_multi_camera_launch_single_node(ros, tmp_path):
    params = write_params(tmp_path / "test.yaml", TEST_PARAMETERS)
    launch = ros2_launch(
        "multi_camera.launch.py",
        {"cameras": "front,rear", "layout": "single", "params_file": str(params)},
        tmp_path / "log",
    )
    try:
        assert ros.wait_for_state("active"), launch.log()
        assert ros.get_parameters(["input.topics"]) == {"input.topics": "/front/image_raw,/rear/image_raw"}
        assert first_output(ros, "/front/image_raw", "/sam3/instances").camera == "/front/image_raw"
        assert first_output(ros, "/rear/image_raw", "/sam3/instances", stamp0=5000).camera == "/rear/image_raw"
    finally:
        stop_launch(launch)
        launch.kill()


def test_launch_arguments_are_listed():
    out = subprocess.run(
        ["ros2", "launch", "sam3_ros", "tracker.launch.py", "--show-args"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    for name in ("camera_topic", "params_file", "model", "prompt", "namespace", "devices", "overlay", "autostart"):
        assert f"'{name}'" in out
    assert str(packaged_params().name) in out


@pytest.mark.ros_tool("ros2 bag")
def test_bag_eval_launch_records_the_nodes_outputs(ros, tmp_path):
    bag = tmp_path / "clip"
    subprocess.run(
        [sys.executable, "-m", "sam3_ros.cli", "make-bag", str(bag), "--frames", "10", "--size", "64x48"],
        check=True,
        timeout=120,
    )
    params = write_params(tmp_path / "test.yaml", TEST_PARAMETERS)
    launch = ros2_launch(
        "bag_eval.launch.py",
        {
            "bag": str(bag),
            "record": str(tmp_path / "rec"),
            "prompt": "cat",
            "params_file": str(params),
            "start_delay": "20.0",
        },
        tmp_path / "log",
    )
    try:
        assert launch.process.wait(180) == 0, launch.log()  # stops by itself once the bag has played
    finally:
        launch.kill()
    from rosbags.rosbag2 import Reader

    with Reader(tmp_path / "rec") as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    assert counts.get("/sam3/instances", 0) >= 5, counts
