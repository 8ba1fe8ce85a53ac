"""DDS-direct transport: generated types, wire bytes, QoS mapping, and topics/services between processes
(real Cyclone DDS on loopback; the peer runs in a separate Python process)."""

import os
import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from cyclonedds.core import Policy

from sam3_ros.interfaces import typestore
from sam3_ros.ros import dds
from sam3_ros.ros.dds_types import WireType, dds_type_name

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = random.SystemRandom().randint(1, 200)  # isolates this module from other DDS tests on the machine
TYPES = typestore().types


def _time(sec=0, nanosec=0):
    return TYPES["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)


def _header(sec=0, nanosec=0, frame_id=""):
    return TYPES["std_msgs/msg/Header"](stamp=_time(sec, nanosec), frame_id=frame_id)


def _to_idl(message, cls):
    """The same content as an instance of Cyclone's generated class, set field by field (for Cyclone's own codec)."""
    import typing

    hints = typing.get_type_hints(cls, include_extras=True)
    sample = object.__new__(cls)
    for name in cls.__annotations__:
        value = getattr(message, name)
        inner = typing.get_args(hints[name])
        target = inner[0] if inner else hints[name]
        if hasattr(target, "__idl__"):
            value = _to_idl(value, target)
        elif isinstance(value, list) and value and hasattr(value[0], "__msgtype__"):
            value = [_to_idl(v, typing.get_args(target)[0]) for v in value]
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        setattr(sample, name, value)
    return sample


def _samples():
    instance = TYPES["sam3_ros/msg/Instance"](
        id=7,
        concept="red circle",
        score=0.75,
        box=np.array([1, 2, 3, 4], np.float32),
        mask_height=4,
        mask_width=3,
        mask_rle=np.array([2, 5, 5], np.uint32),
        age=3,
        detected=True,
        frames_since_detected=0,
        has_3d=True,
        depth_pixels_read=240,
        depth_pixels_used=231,
    )
    return {
        "sam3_ros/msg/InstanceArray": TYPES["sam3_ros/msg/InstanceArray"](
            header=_header(12, 34, "cam"),
            camera="/camera/image_raw",
            instances=[instance, instance],
            num_hidden_objects=2,
            prompt=["red circle", "cat"],
            num_positive_exemplars=1,
            num_negative_exemplars=2,
            latency_ms=3.5,
            dropped_frames=9,
            missed_frames=4,
        ),
        "sensor_msgs/msg/Image": TYPES["sensor_msgs/msg/Image"](
            header=_header(1, 2, "f"),
            height=2,
            width=3,
            encoding="rgb8",
            is_bigendian=0,
            step=9,
            data=np.arange(18, dtype=np.uint8),
        ),
        "diagnostic_msgs/msg/DiagnosticArray": TYPES["diagnostic_msgs/msg/DiagnosticArray"](
            header=_header(5),
            status=[
                TYPES["diagnostic_msgs/msg/DiagnosticStatus"](
                    level=1,
                    name="n",
                    message="m",
                    hardware_id="h",
                    values=[TYPES["diagnostic_msgs/msg/KeyValue"](key="k", value="v")],
                )
            ],
        ),
    }


@pytest.mark.parametrize("ros_type", list(_samples()))
def test_generated_type_matches_rosbags_bytes(ros_type):
    """Cyclone's own serializer, given our generated type, writes exactly the bytes rosbags writes:
    the type we announce to DDS is the type we put on the wire."""
    message = _samples()[ros_type]
    wire = WireType(ros_type)
    ours = bytes(typestore().serialize_cdr(message, ros_type))
    theirs = wire.idl.__idl__.serialize(_to_idl(message, wire.idl), use_version_2=False)
    assert ours[:2] == b"\x00\x01"  # CDR little-endian (XCDR1), as rmw_cyclonedds writes
    assert theirs[: len(ours)] == ours and not theirs[len(ours) :].strip(b"\x00")


def test_service_types_carry_the_request_header():
    wire = WireType("sam3_ros/srv/AddPoints_Request", request_header=True)
    request = wire.message_class(
        object_id=-1,
        points=np.array([1.5, 2.5], np.float32),
        labels=np.array([1], np.int8),
        box=np.zeros(0, np.float32),
        stamp=_time(),
        camera="c",
    )
    data = wire.encode(request, guid=2**64 - 1, seq=42).wire
    assert data[4:20] == (2**64 - 1).to_bytes(8, "little") + (42).to_bytes(8, "little", signed=True)
    decoded, guid, seq = wire.decode(data)
    assert (guid, seq, decoded.camera, decoded.points.tolist()) == (2**64 - 1, 42, "c", [1.5, 2.5])
    names = [f for f in wire.idl.__annotations__]
    assert names[:2] == ["rmw_client_guid", "rmw_sequence_number"]
    # rosidl gives an empty request (std_srvs/Trigger) one uint8 member; on the wire it is that byte.
    trigger = WireType("std_srvs/srv/Trigger_Request", request_header=True)
    assert list(trigger.idl.__annotations__)[2:] == ["structure_needs_at_least_one_member"]
    assert len(trigger.encode(trigger.message_class(structure_needs_at_least_one_member=0)).wire) == 4 + 16 + 1


def test_names_follow_rmw_cyclonedds():
    assert dds_type_name("sensor_msgs/msg/Image") == "sensor_msgs::msg::dds_::Image_"
    assert dds_type_name("sam3_ros/srv/SetPrompt_Request") == "sam3_ros::srv::dds_::SetPrompt_Request_"
    assert WireType("sensor_msgs/msg/Image").idl.__idl_typename__ == "sensor_msgs::msg::dds_::Image_"
    assert dds.topic_name("/a/b", "ns") == "/a/b"
    assert dds.topic_name("sam3/reset", "/robot1/") == "/robot1/sam3/reset"
    assert dds.topic_name("sam3/reset") == "/sam3/reset"
    for bad in ("", "a//b", "a/"):
        with pytest.raises(ValueError, match="invalid ROS name"):
            dds.topic_name(bad)


def test_qos_profiles_map_to_dds_qos():
    sensor = dds.dds_qos("sensor_data")
    assert sensor[Policy.Reliability] == Policy.Reliability.BestEffort
    assert sensor[Policy.History] == Policy.History.KeepLast(1)
    assert sensor[Policy.Durability] == Policy.Durability.Volatile
    reliable = dds.dds_qos("reliable", type_hash="RIHS01_ab")
    assert isinstance(reliable[Policy.Reliability], Policy.Reliability.Reliable)
    assert reliable[Policy.History] == Policy.History.KeepLast(10)
    assert reliable[Policy.Userdata].data == b"typehash=RIHS01_ab;"
    assert dds.dds_qos("best_effort", depth=3)[Policy.History] == Policy.History.KeepLast(3)
    with pytest.raises(ValueError, match="unknown QoS profile 'fast'"):
        dds.dds_qos("fast")


def test_domain_comes_from_ros_domain_id(monkeypatch):
    monkeypatch.setenv("ROS_DOMAIN_ID", "17")
    assert dds.domain_id() == 17
    monkeypatch.delenv("ROS_DOMAIN_ID")
    assert dds.domain_id() == 0
    for bad in ("abc", "-1", "400"):
        monkeypatch.setenv("ROS_DOMAIN_ID", bad)
        with pytest.raises(ValueError, match="ROS_DOMAIN_ID"):
            dds.domain_id()


PEER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from sam3_ros.interfaces import typestore
    from sam3_ros.ros.dds import Participant
    T = typestore().types
    p = Participant()
    def trigger(request):
        member = request.structure_needs_at_least_one_member
        return T["std_srvs/srv/Trigger_Response"](success=True, message=f"member={member}")
    def add(request):
        return T["sam3_ros/srv/AddPoints_Response"](success=True, message=request.camera,
                                                    object_id=int(request.points.size))
    p.service("/peer/trigger", "std_srvs/srv/Trigger", trigger)
    p.service("/peer/add", "sam3_ros/srv/AddPoints", add)
    pub = p.publisher("/peer/image", "sensor_msgs/msg/Image", "sensor_data")
    pub.wait_for_subscribers(1, 20)
    for i in range(1, 400):
        data = np.full(4 * 6 * 3, i % 256, np.uint8)
        pub.publish(T["sensor_msgs/msg/Image"](
            header=T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=i, nanosec=5), frame_id="peer"),
            height=4, width=6, encoding="rgb8", is_bigendian=0, step=18, data=data))
        time.sleep(0.02)
        if sys.stdin.closed:
            break
""")


@pytest.fixture(scope="module")
def peer():
    env = {
        **os.environ,
        "ROS_DOMAIN_ID": str(DOMAIN),
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    process = subprocess.Popen([sys.executable, "-c", PEER], env=env, cwd=ROOT, stdin=subprocess.PIPE)
    participant = dds.Participant(DOMAIN)
    yield participant
    participant.close()
    process.kill()
    process.wait(5)


def test_topic_between_processes(peer):
    received = []
    sub = peer.subscribe("/peer/image", "sensor_msgs/msg/Image", received.append, "sensor_data")
    assert sub.wait_for_publishers(1, 20)
    deadline = time.monotonic() + 10
    while len(received) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(received) >= 3
    last = received[-1]
    assert last.header.frame_id == "peer" and last.header.stamp.nanosec == 5
    assert last.data.tolist() == [last.header.stamp.sec % 256] * 72
    assert (last.height, last.width, last.encoding) == (4, 6, "rgb8")


def test_services_between_processes(peer):
    trigger = peer.client("/peer/trigger", "std_srvs/srv/Trigger")
    add = peer.client("/peer/add", "sam3_ros/srv/AddPoints")
    assert trigger.wait_for_service(20) and add.wait_for_service(20)
    reply = trigger.call(trigger.request_class(structure_needs_at_least_one_member=0))
    assert reply.success and reply.message == "member=0"
    for n in (2, 6, 0):  # replies are matched to their requests by the echoed sequence number
        request = add.request_class(
            object_id=-1,
            points=np.ones(n, np.float32),
            labels=np.ones(n // 2, np.int8),
            box=np.zeros(0, np.float32),
            stamp=_time(),
            camera=f"cam{n}",
        )
        reply = add.call(request)
        assert (reply.object_id, reply.message) == (n, f"cam{n}")


def test_call_without_server_times_out(peer):
    client = peer.client("/peer/nobody", "std_srvs/srv/Trigger")
    with pytest.raises(TimeoutError, match="no reply from service /peer/nobody"):
        client.call(client.request_class(structure_needs_at_least_one_member=0), timeout=0.3)
