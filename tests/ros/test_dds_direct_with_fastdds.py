"""The DDS-direct node (Cyclone DDS from pip) with a real ROS 2 client on rmw_fastrtps_cpp, Jazzy's default
RMW: topics work both ways, so a Fast DDS robot sets prompts through the ``/sam3/prompt`` topic; service
calls get no answer (the two carry the request id differently), as the README says."""

from __future__ import annotations

import ros_required  # noqa: F401  (first: without ROS 2 this module skips, saying why)
import signal
import sys
import time

import numpy as np
import pytest
import rclpy
from ros_harness import RELIABLE, RosProcess, image, ros_env, stamp_ns
from sensor_msgs.msg import Image
from std_msgs.msg import String

from sam3_ros.msg import InstanceArray
from sam3_ros.srv import SetPrompt

CAMERA = "/dds_direct/image_raw"
SETTINGS = {
    "model": "tiny-random",
    "devices": "[cpu]",
    "input.topics": f"[{CAMERA}]",
    "prompt.text": "cat",
    "detection.score_threshold": "0.0",
    "detection.new_object_threshold": "0.0",
}


@pytest.fixture(scope="module")
def dds_node(ros, tmp_path_factory):
    if rclpy.get_rmw_implementation_identifier() != "rmw_fastrtps_cpp":
        pytest.skip(f"checks Fast DDS; this ROS 2 runs {rclpy.get_rmw_implementation_identifier()}")
    sets = [arg for key, value in SETTINGS.items() for arg in ("--set", f"{key}={value}")]
    # Cyclone finds the Fast DDS participants on this host by unicast to loopback, as they find it.
    env = ros_env(
        CYCLONEDDS_URI="<General><Interfaces><NetworkInterface address='127.0.0.1'/></Interfaces>"
        "<AllowMulticast>false</AllowMulticast></General><Discovery><Peers>"
        "<Peer address='127.0.0.1'/></Peers><ParticipantIndex>auto</ParticipantIndex>"
        "</Discovery>"
    )
    process = RosProcess(
        [sys.executable, "-m", "sam3_ros.cli", "node", "--transport", "dds", *sets],
        tmp_path_factory.mktemp("dds") / "node.log",
        env,
    )
    yield process
    process.kill()


def test_fastdds_client_prompts_through_the_topic_and_gets_instances(ros, dds_node):
    inbox = ros.subscribe("/sam3/instances", InstanceArray)
    assert ros.wait_for_subscriber(CAMERA, Image, timeout=120), f"no match; node log:\n{dds_node.log()}"
    assert ros.wait_for_subscriber("/sam3/prompt", String, RELIABLE, timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # both sent again until seen: the first may precede the far side's match
        ros.publish("/sam3/prompt", String(data="bird, fish"), RELIABLE)
        ros.publish(CAMERA, image(np.zeros((48, 64, 3), np.uint8), 100))
        try:
            inbox.wait_for(lambda m: m.prompt == ["bird", "fish"], 0.5)
            break
        except TimeoutError:
            continue
    else:
        raise AssertionError(f"the /sam3/prompt text never reached the node; log:\n{dds_node.log()}")
    assert inbox.messages[-1].camera == CAMERA and stamp_ns(inbox.messages[-1].header.stamp) == 100


def test_fastdds_service_calls_get_no_answer(ros, dds_node):
    with pytest.raises(TimeoutError, match="no answer"):
        ros.call(SetPrompt, "/sam3/set_prompt", SetPrompt.Request(phrases=["dog"]), timeout=5)
    code, _ = dds_node.stop(signal.SIGTERM)
    assert code == 0, dds_node.log()
