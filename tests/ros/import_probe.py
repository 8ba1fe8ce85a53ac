"""Prints, as JSON, the top-level modules (outside the standard library) that one process has imported, and
the files of the sam3_ros modules among them, after
``baseline``: rclpy, a lifecycle node and the message packages the node uses, i.e. ROS 2 itself; or
``node``: the tracker's rclpy lifecycle node configured, activated, fed a raw and a compressed image with
overlay and label images on, until it has published, then deactivated and cleaned up.
Run by test_robot_install.py in a process of its own, so that nothing else is imported."""

import json
import os
import sys
import time

import numpy as np
import rclpy
from builtin_interfaces.msg import Time  # noqa: F401  (the message packages the node uses: part of ROS)
from diagnostic_msgs.msg import DiagnosticArray  # noqa: F401
from rcl_interfaces.msg import ParameterDescriptor  # noqa: F401
from rclpy.executors import MultiThreadedExecutor  # noqa: F401
from rclpy.lifecycle import LifecycleNode
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header, String  # noqa: F401
from std_srvs.srv import Trigger  # noqa: F401


def run_node() -> None:
    from sam3_ros.codec.image import rgb_to_compressed
    from sam3_ros.ros.rclpy_node import PerceptionLifecycleNode
    from sam3_ros.settings import Settings

    raw, packed = "/probe/image_raw", "/probe/image_raw/compressed"
    settings = Settings.default(
        {
            "model": "tiny-random",
            "devices": ["cpu"],
            "input.topics": [raw, packed],
            "prompt.text": "cat",
            "detection.score_threshold": 0.0,
            "detection.new_object_threshold": 0.0,
            "output.overlay": True,
            "output.label_image": True,
        }
    )
    node = PerceptionLifecycleNode(settings)
    node.trigger_configure()
    node.trigger_activate()
    rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    node.tracker.on_image(
        raw, Image(header=Header(frame_id="probe"), height=48, width=64, encoding="rgb8", step=192, data=rgb.tobytes())
    )
    node.tracker.on_image(
        packed, CompressedImage(header=Header(frame_id="probe"), format="png", data=rgb_to_compressed(rgb, "png"))
    )
    deadline = time.monotonic() + 120
    while any(camera.published < 1 for camera in node.tracker.diagnostics.cameras.values()):
        if time.monotonic() > deadline:
            sys.exit("the node published nothing within 120 s")
        time.sleep(0.1)
    node.trigger_deactivate()
    node.trigger_cleanup()


if __name__ == "__main__":
    rclpy.init()
    if sys.argv[1] == "node":
        run_node()
    else:
        LifecycleNode("import_probe").create_lifecycle_publisher(Image, "probe", 1)
    modules = dict(sys.modules)
    tops = {name.split(".")[0] for name in modules}
    ours = [getattr(m, "__file__", None) for name, m in modules.items() if name.split(".")[0] == "sam3_ros"]
    print(
        json.dumps(
            {
                "modules": sorted(t for t in tops if t not in sys.stdlib_module_names and not t.startswith("_")),
                "sam3_ros_files": sorted(f for f in ours if f and f.endswith(".py")),
            }
        )
    )
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: the answer is printed
