"""ROS names, types and QoS profiles of the node's interface, shared by both transports and the client.

Names without a leading slash are relative: they land under the node's namespace (one node per camera
or robot), and under ``/`` when there is none.
"""

import random

# A participant's ports are 7400 + 250 * domain + ...; above domain 101 they fall in Linux's ephemeral port range
# (32768-60999), where another socket may already hold one.
LARGEST_SAFE_DOMAIN_ID = 101


def private_domain_id() -> int:
    """A random ROS domain (1-101) for a node and its clients kept apart from others on this machine: tests,
    benchmarks, evaluation runs."""
    return random.SystemRandom().randint(1, LARGEST_SAFE_DOMAIN_ID)


PROMPT_TOPIC = "sam3/prompt"
OVERLAY_TOPIC = "sam3/overlay"
LABELS_TOPIC = "sam3/labels"
DETECTIONS_TOPIC = "sam3/detections"
DETECTIONS_3D_TOPIC = "sam3/detections_3d"
POINTS_TOPIC = "sam3/points"
DIAGNOSTICS_TOPIC = "/diagnostics"  # absolute, as ROS 2 diagnostics tools expect

# service name -> (service type, PerceptionNode method)
SERVICES = {
    "sam3/set_prompt": ("sam3_ros/srv/SetPrompt", "set_prompt"),
    "sam3/add_points": ("sam3_ros/srv/AddPoints", "add_points"),
    "sam3/remove_object": ("sam3_ros/srv/RemoveObject", "remove_object"),
    "sam3/reset": ("std_srvs/srv/Trigger", "reset"),
}

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
INSTANCES_TYPE = "sam3_ros/msg/InstanceArray"
DIAGNOSTICS_TYPE = "diagnostic_msgs/msg/DiagnosticArray"
PROMPT_TYPE = "std_msgs/msg/String"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
DETECTIONS_TYPE = "vision_msgs/msg/Detection2DArray"
DETECTIONS_3D_TYPE = "vision_msgs/msg/Detection3DArray"
POINTS_TYPE = "sensor_msgs/msg/PointCloud2"

# QoS profile -> (reliable, default history depth); durability is volatile for all, as rclpy's profiles.
QOS_POLICIES = {"sensor_data": (False, 1), "reliable": (True, 10), "best_effort": (False, 1), "services": (True, 10)}


def output_topics(settings) -> dict[str, tuple[str, str]]:
    """The vision_msgs outputs the settings ask for, as publish kind -> (topic, type): the 2D detections always,
    the 3D detections and (``output.point_cloud``) the point cloud when a camera has depth."""
    topics = {"detections": (DETECTIONS_TOPIC, DETECTIONS_TYPE)}
    if any(settings.input.depth_topics):  # a camera with depth (names stays light: no pipeline import)
        topics["detections_3d"] = (DETECTIONS_3D_TOPIC, DETECTIONS_3D_TYPE)
        if settings.output.point_cloud:
            topics["points"] = (POINTS_TOPIC, POINTS_TYPE)
    return topics
