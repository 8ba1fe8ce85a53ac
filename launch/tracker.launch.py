"""Start the sam3_ros tracker node.

    ros2 launch sam3_ros tracker.launch.py camera_topic:=/camera/color/image_raw prompt:="person, forklift"

The node is a lifecycle (managed) node; by default this launch configures and activates it
(autostart:=false leaves it unconfigured for a lifecycle manager).
Settings come from params_file (the packaged config/tracker.yaml by default); a launch argument given
on the command line overrides the file's value, one left empty is not passed to the node at all.
Several cameras in one node: camera_topic:="/cam_front/image_raw,/cam_rear/image_raw" (one engine per
camera, one worker each; outputs tell cameras apart by InstanceArray.camera).
3D per instance: depth_topic:=/camera/aligned_depth_to_color/image_raw (one per camera topic) with the colour
camera's CameraInfo (camera_info_topic, default the camera_info beside the camera topic). Topics ending in
/compressed carry sensor_msgs/CompressedImage, as image_transport names them.
One node per camera: include this file once per camera with its own `namespace` and a relative
instances_topic (see multi_camera.launch.py); services then live under /<namespace>/sam3/.
Full-resolution cameras: large_images:=true gives the node (and whatever this launch starts after it) the
shipped middleware profiles, config/cyclonedds_large_images.xml (before the user's own CYCLONEDDS_URI, which
still wins) and config/fastdds_large_images.xml (replacing FASTRTPS_DEFAULT_PROFILES_FILE); see the README.
"""

from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    OpaqueFunction,
    RegisterEventHandler,
    SetEnvironmentVariable,
)
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition

ARGUMENTS = [
    ("camera_topic", "", "camera topic(s) to segment; comma-separated for several"),
    ("compressed", "", "true if the topics carry sensor_msgs/CompressedImage (jpeg/png)"),
    (
        "depth_topic",
        "",
        "aligned depth image topic(s), one per camera topic (16UC1 mm or 32FC1 m, registered to the "
        "colour image): 3D per instance on sam3/detections_3d",
    ),
    (
        "camera_info_topic",
        "",
        "CameraInfo topic(s) of the colour camera(s), one per camera topic (default: the "
        "camera_info beside each camera topic)",
    ),
    ("point_cloud", "", "true: with depth, also publish sam3/points (PointCloud2 of each instance's depth points)"),
    (
        "params_file",
        PathJoinSubstitution([FindPackageShare("sam3_ros"), "config", "tracker.yaml"]),
        "ROS 2 parameter file with every tracker setting",
    ),
    ("model", "", "built-in model name (toy, tiny-random, sam3-random) or a local directory with SAM 3 weights"),
    ("prompt", "", "initial noun phrases, comma-separated, e.g. 'person, forklift'"),
    ("namespace", "", "namespace of the node and its topics (one per camera or robot)"),
    ("devices", "", "devices: auto, cpu, cuda:0, or several comma-separated (cuda:0,cuda:1)"),
    (
        "placement",
        "",
        "with several devices: cameras (each camera on one device) or objects (one "
        "camera: detector on the first device, its tracked objects over one worker process per other device)",
    ),
    ("instances_topic", "", "InstanceArray output topic; a relative name (sam3/instances) lands under the namespace"),
    ("overlay", "", "true: also publish sam3/overlay (bgr8 image with colored masks, ids and concepts)"),
    ("autostart", "true", "configure and activate the lifecycle node at launch; false leaves it unconfigured"),
    ("log_level", "info", "logging level of the node"),
    ("large_images", "false", "true: middleware profiles for full-resolution images (config/*_large_images.xml)"),
]
# launch argument -> (node parameter, type): given (not empty), it overrides params_file; empty, it is not passed
OVERRIDES = {
    "camera_topic": ("input.topics", str),
    "compressed": ("input.compressed", bool),
    "depth_topic": ("input.depth_topics", str),
    "camera_info_topic": ("input.camera_info_topics", str),
    "point_cloud": ("output.point_cloud", bool),
    "model": ("model", str),
    "prompt": ("prompt.text", str),
    "devices": ("devices", str),
    "placement": ("placement", str),
    "instances_topic": ("output.instances_topic", str),
    "overlay": ("output.overlay", bool),
}
BOOLEANS = {"true": True, "1": True, "false": False, "0": False}  # what launch's IfCondition accepts


def given_parameters(context) -> dict[str, ParameterValue]:
    """The node parameters of the launch arguments that were given (not empty); they override params_file."""
    parameters = {}
    for argument, (parameter, kind) in OVERRIDES.items():
        text = LaunchConfiguration(argument).perform(context).strip()
        if not text:
            continue
        if kind is bool:
            if text.lower() not in BOOLEANS:
                raise ValueError(f"launch argument {argument}:={text!r} is not true or false")
            parameters[parameter] = ParameterValue(BOOLEANS[text.lower()], value_type=bool)
        else:  # kept as text: Settings turns "a,b" into a list where a list is expected
            parameters[parameter] = ParameterValue(text, value_type=str)
    return parameters


def large_image_profiles() -> list[SetEnvironmentVariable]:
    """With large_images:=true, the shipped Cyclone DDS and Fast DDS profiles for the processes started next."""
    config = FindPackageShare("sam3_ros")
    given = IfCondition(LaunchConfiguration("large_images"))
    fastdds = PathJoinSubstitution([config, "config", "fastdds_large_images.xml"])
    return [
        SetEnvironmentVariable(
            "CYCLONEDDS_URI",
            [
                "file://",
                PathJoinSubstitution([config, "config", "cyclonedds_large_images.xml"]),
                ",",
                EnvironmentVariable("CYCLONEDDS_URI", default_value=""),
            ],
            condition=given,
        ),
        SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", fastdds, condition=given),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", fastdds, condition=given),  # Fast DDS 3
    ]


def _node_and_transitions(context):
    # Built per execution: an action object must not run twice when this file is included several times.
    node = LifecycleNode(
        package="sam3_ros",
        executable="tracker_node",
        name="sam3_tracker",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[LaunchConfiguration("params_file"), given_parameters(context)],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
    )
    if not IfCondition(LaunchConfiguration("autostart")).evaluate(context):
        return [node]
    activate_when_configured = RegisterEventHandler(
        OnStateTransition(
            target_lifecycle_node=node,
            goal_state="inactive",
            entities=[
                EmitEvent(
                    event=ChangeState(
                        lifecycle_node_matcher=matches_action(node), transition_id=Transition.TRANSITION_ACTIVATE
                    )
                )
            ],
        )
    )
    configure = EmitEvent(
        event=ChangeState(lifecycle_node_matcher=matches_action(node), transition_id=Transition.TRANSITION_CONFIGURE)
    )
    return [node, activate_when_configured, configure]


def generate_launch_description() -> LaunchDescription:
    declared = [
        DeclareLaunchArgument(
            name,
            default_value=default,
            description=doc + (" (empty: params_file's value)" if name in OVERRIDES else ""),
        )
        for name, default, doc in ARGUMENTS
    ]
    return LaunchDescription([*declared, *large_image_profiles(), OpaqueFunction(function=_node_and_transitions)])
