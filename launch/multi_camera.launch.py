"""Several cameras, two ways.

    # one node per camera (default): /front/sam3/instances, /front/sam3/set_prompt, /rear/sam3/...
    ros2 launch sam3_ros multi_camera.launch.py cameras:=front,rear prompt:=person
    # one node for all cameras: /sam3/instances (InstanceArray.camera says which), one set of services
    ros2 launch sam3_ros multi_camera.launch.py cameras:=front,rear layout:=single

Camera i's topic is /<name>/<image_topic>. With several GPUs, per_camera puts camera i on devices[i mod n];
single uses the node's placement setting (placement: cameras pins each camera to a device).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = [
    ("cameras", "front,rear", "camera names, comma-separated; camera i publishes /<name>/<image_topic>"),
    ("image_topic", "image_raw", "image topic below each camera name (image_raw/compressed for CompressedImage)"),
    ("layout", "per_camera", "per_camera: one node per camera in its own namespace; single: one node, all cameras"),
    ("devices", "", "devices, comma-separated; per_camera gives camera i devices[i mod n] (empty: params_file's)"),
    ("model", "", "built-in model name or a local directory with SAM 3 weights (empty: params_file's value)"),
    ("prompt", "", "initial noun phrases, comma-separated (empty: params_file's value)"),
    (
        "params_file",
        PathJoinSubstitution([FindPackageShare("sam3_ros"), "config", "tracker.yaml"]),
        "ROS 2 parameter file with every tracker setting",
    ),
    ("autostart", "true", "configure and activate the nodes at launch"),
]


def _nodes(context):
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    if arg("layout") not in ("per_camera", "single"):
        raise ValueError(f"layout:={arg('layout')!r} is not per_camera or single")
    names = [n.strip().strip("/") for n in arg("cameras").split(",") if n.strip().strip("/")]
    devices = [d.strip() for d in arg("devices").split(",") if d.strip()] or [""]  # "": the params file's
    common = {
        "model": arg("model"),
        "prompt": arg("prompt"),
        "params_file": arg("params_file"),
        "autostart": arg("autostart"),
    }
    if arg("layout") == "single":
        topics = ",".join(f"/{name}/{arg('image_topic')}" for name in names)
        return [_include_tracker({**common, "camera_topic": topics, "devices": ",".join(devices)})]
    return [
        _include_tracker(
            {
                **common,
                "namespace": name,
                "camera_topic": f"/{name}/{arg('image_topic')}",
                "instances_topic": "sam3/instances",
                "devices": devices[i % len(devices)],
            }
        )
        for i, name in enumerate(names)
    ]


def _include_tracker(arguments: dict[str, str]) -> IncludeLaunchDescription:
    # One source per include: a source loads its description once, and the same node action must not run twice.
    tracker = PythonLaunchDescriptionSource(
        PathJoinSubstitution([FindPackageShare("sam3_ros"), "launch", "tracker.launch.py"])
    )
    return IncludeLaunchDescription(tracker, launch_arguments=arguments.items())


def generate_launch_description() -> LaunchDescription:
    declared = [DeclareLaunchArgument(name, default_value=default, description=doc) for name, default, doc in ARGUMENTS]
    return LaunchDescription([*declared, OpaqueFunction(function=_nodes)])
