"""Start the sam3_ros tracker node.

    ros2 launch sam3_ros tracker.launch.py camera_topic:=/camera/color/image_raw prompt:="person, forklift"

The node is a lifecycle (managed) node; by default this launch configures and activates it
(autostart:=false leaves it unconfigured for a lifecycle manager).
Several cameras in one node: camera_topic:="/cam_front/image_raw,/cam_rear/image_raw" (one engine per
camera, one worker each; outputs tell cameras apart by InstanceArray.camera). Topics ending in
/compressed carry sensor_msgs/CompressedImage, as image_transport names them.
One node per camera: include this file once per camera with its own `namespace` and a relative
instances_topic (see multi_camera.launch.py); services then live under /<namespace>/sam3/.
Full-resolution cameras: large_images:=true gives the node (and whatever this launch starts after it) the
shipped middleware profiles, config/cyclonedds_large_images.xml (before the user's own CYCLONEDDS_URI, which
still wins) and config/fastdds_large_images.xml (replacing FASTRTPS_DEFAULT_PROFILES_FILE); see the README.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler, SetEnvironmentVariable
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
    ("camera_topic", "/camera/image_raw", "camera topic(s) to segment; comma-separated for several"),
    ("compressed", "false", "true if the topics carry sensor_msgs/CompressedImage (jpeg/png)"),
    ("params_file", PathJoinSubstitution([FindPackageShare("sam3_ros"), "config", "tracker.yaml"]),
     "ROS 2 parameter file with every tracker setting"),
    ("model", "tiny-random", "built-in model name (tiny-random, toy) or a local directory with SAM 3 weights"),
    ("prompt", "", "initial noun phrases, comma-separated, e.g. 'person, forklift'"),
    ("namespace", "", "namespace of the node and its topics (one per camera or robot)"),
    ("devices", "auto", "devices: auto, cpu, cuda:0, or several comma-separated (cuda:0,cuda:1)"),
    ("placement", "cameras", "with several devices: cameras (each camera on one device) or objects (one "
     "camera: detector on the first device, its tracked objects over one worker process per other device)"),
    ("instances_topic", "/sam3/instances",
     "InstanceArray output topic; a relative name (sam3/instances) lands under the namespace"),
    ("overlay", "false", "also publish sam3/overlay (bgr8 image with colored masks, ids and concepts, for rviz)"),
    ("autostart", "true", "configure and activate the lifecycle node at launch; false leaves it unconfigured"),
    ("log_level", "info", "logging level of the node"),
    ("large_images", "false", "true: middleware profiles for full-resolution images (config/*_large_images.xml)"),
]


def _string(name: str) -> ParameterValue:
    # Launch arguments are text; keep them text (Settings turns "a,b" into a list where a list is expected).
    return ParameterValue(LaunchConfiguration(name), value_type=str)


def large_image_profiles() -> list[SetEnvironmentVariable]:
    """With large_images:=true, the shipped Cyclone DDS and Fast DDS profiles for the processes started next."""
    config = FindPackageShare("sam3_ros")
    given = IfCondition(LaunchConfiguration("large_images"))
    fastdds = PathJoinSubstitution([config, "config", "fastdds_large_images.xml"])
    return [
        SetEnvironmentVariable("CYCLONEDDS_URI", ["file://", PathJoinSubstitution(
            [config, "config", "cyclonedds_large_images.xml"]), ",", EnvironmentVariable("CYCLONEDDS_URI",
                                                                                          default_value="")],
            condition=given),
        SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", fastdds, condition=given),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", fastdds, condition=given),  # Fast DDS 3
    ]


def generate_launch_description() -> LaunchDescription:
    declared = [DeclareLaunchArgument(name, default_value=default, description=doc)
                for name, default, doc in ARGUMENTS]
    node = LifecycleNode(
        package="sam3_ros",
        executable="tracker_node",
        name="sam3_tracker",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "input.topics": _string("camera_topic"),
                "input.compressed": ParameterValue(LaunchConfiguration("compressed"), value_type=bool),
                "model": _string("model"),
                "prompt.text": _string("prompt"),
                "devices": _string("devices"),
                "placement": _string("placement"),
                "output.instances_topic": _string("instances_topic"),
                "output.overlay": ParameterValue(LaunchConfiguration("overlay"), value_type=bool),
            },
        ],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
    )
    autostart = IfCondition(LaunchConfiguration("autostart"))
    configure = EmitEvent(
        event=ChangeState(lifecycle_node_matcher=matches_action(node), transition_id=Transition.TRANSITION_CONFIGURE),
        condition=autostart,
    )
    activate_when_configured = RegisterEventHandler(
        OnStateTransition(
            target_lifecycle_node=node,
            goal_state="inactive",
            entities=[EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                                  transition_id=Transition.TRANSITION_ACTIVATE))],
        ),
        condition=autostart,
    )
    return LaunchDescription([*declared, *large_image_profiles(), node, activate_when_configured, configure])
