"""ROS names, types and QoS profiles of the node's interface, shared by both transports and the client.

Names without a leading slash are relative: they land under the node's namespace (one node per camera
or robot), and under ``/`` when there is none.
"""

PROMPT_TOPIC = "sam3/prompt"
OVERLAY_TOPIC = "sam3/overlay"
LABELS_TOPIC = "sam3/labels"
DIAGNOSTICS_TOPIC = "/diagnostics"  # absolute, as ROS 2 diagnostics tools expect

# service name -> (service type, TrackerNode method)
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

# QoS profile -> (reliable, default history depth); durability is volatile for all, as rclpy's profiles.
QOS_PROFILES = {"sensor_data": (False, 1), "reliable": (True, 10), "best_effort": (False, 1), "services": (True, 10)}
