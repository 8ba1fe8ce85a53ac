"""The package's ROS interfaces (msg/ and srv/), parsed from the same files colcon builds.

One source of truth: the DDS-direct transport, bag writing and tests all get their types from a
``rosbags`` typestore holding the standard ROS 2 types plus ours, registered from ``msg/*.msg`` and
``srv/*.srv``. A service ``Foo.srv`` becomes two message types, ``sam3_ros/srv/Foo_Request`` and
``sam3_ros/srv/Foo_Response``, the names rosidl gives them.
"""

from __future__ import annotations

from functools import lru_cache

from .resources import PACKAGE, share_dir

# ROS 2 distribution whose standard definitions (std_msgs, sensor_msgs, ...) we speak.
ROS_DISTRO_STORE = "ROS2_JAZZY"

# Standard services we use that rosbags does not ship (it has messages only). Text as in ros2/common_interfaces.
STANDARD_SERVICES = {
    "std_srvs/srv/Trigger": "---\nbool success   # indicate successful run of triggered service\n"
    "string message # informational, e.g. for error messages\n",
}

# Standard messages we publish that rosbags' store does not ship: vision_msgs 4.1.1 (ROS 2 Jazzy), the fields of
# ros-perception/vision_msgs' msg/*.msg (their comments document them). Registered only where the store lacks them.
STANDARD_MESSAGES = {
    "vision_msgs/msg/ObjectHypothesis": "string class_id\nfloat64 score\n",
    "vision_msgs/msg/ObjectHypothesisWithPose": "vision_msgs/ObjectHypothesis hypothesis\n"
    "geometry_msgs/PoseWithCovariance pose\n",
    "vision_msgs/msg/Point2D": "float64 x\nfloat64 y\n",
    "vision_msgs/msg/Pose2D": "vision_msgs/Point2D position\nfloat64 theta\n",
    "vision_msgs/msg/BoundingBox2D": "vision_msgs/Pose2D center\nfloat64 size_x\nfloat64 size_y\n",
    "vision_msgs/msg/BoundingBox3D": "geometry_msgs/Pose center\ngeometry_msgs/Vector3 size\n",
    "vision_msgs/msg/Detection2D": "std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\n"
    "vision_msgs/BoundingBox2D bbox\nstring id\n",
    "vision_msgs/msg/Detection2DArray": "std_msgs/Header header\nvision_msgs/Detection2D[] detections\n",
    "vision_msgs/msg/Detection3D": "std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\n"
    "vision_msgs/BoundingBox3D bbox\nstring id\n",
    "vision_msgs/msg/Detection3DArray": "std_msgs/Header header\nvision_msgs/Detection3D[] detections\n",
}


def message_names() -> list[str]:
    """Full names of our message types, e.g. ``sam3_ros/msg/Instance``."""
    return sorted(f"{PACKAGE}/msg/{p.stem}" for p in (share_dir() / "msg").glob("*.msg"))


def service_names() -> list[str]:
    """Full names of our services, e.g. ``sam3_ros/srv/SetPrompt``."""
    return sorted(f"{PACKAGE}/srv/{p.stem}" for p in (share_dir() / "srv").glob("*.srv"))


def split_service(text: str) -> tuple[str, str]:
    """Split ``.srv`` text into its request and response message definitions."""
    lines = text.splitlines()
    separators = [i for i, line in enumerate(lines) if line.strip() == "---"]
    if len(separators) != 1:
        raise ValueError(f"a service definition needs exactly one '---' line, found {len(separators)}")
    cut = separators[0]
    return "\n".join(lines[:cut]) + "\n", "\n".join(lines[cut + 1 :]) + "\n"


def definitions() -> dict[str, str]:
    """Message definition text of each of our types and the standard services, keyed by full type name."""
    out: dict[str, str] = {}
    for path in sorted((share_dir() / "msg").glob("*.msg")):
        out[f"{PACKAGE}/msg/{path.stem}"] = path.read_text()
    services = {f"{PACKAGE}/srv/{p.stem}": p.read_text() for p in sorted((share_dir() / "srv").glob("*.srv"))}
    for name, text in {**STANDARD_SERVICES, **services}.items():
        request, response = split_service(text)
        out[f"{name}_Request"] = request
        out[f"{name}_Response"] = response
    return out


@lru_cache(maxsize=1)
def typestore():
    """A ``rosbags`` typestore with the standard ROS 2 types and ours registered."""
    from rosbags.typesys import Stores, get_typestore, get_types_from_msg

    store = get_typestore(getattr(Stores, ROS_DISTRO_STORE))
    types: dict = {}
    for name, text in STANDARD_MESSAGES.items():
        if name not in store.types:
            types.update(get_types_from_msg(text, name))
    for name, text in definitions().items():
        # rosbags files every type under ".../msg/"; services keep rosidl's "pkg/srv/Name_Request".
        for parsed_name, spec in get_types_from_msg(text, name).items():
            types[parsed_name.replace("/srv/msg/", "/srv/")] = spec
    store.register(types)
    return store
