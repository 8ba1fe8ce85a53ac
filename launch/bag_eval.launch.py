"""Evaluate the tracker on a rosbag with real ROS 2: play the bag, run the node, record its outputs.

    ros2 launch sam3_ros bag_eval.launch.py bag:=clip prompt:="red circle, blue square" record:=clip_eval
    sam3-ros eval clip --gt clip.gt.json --recorded clip_eval --out eval_out

The recording holds the camera topic (as the node received it) and /sam3/instances, both logged at
their receive times, so `sam3-ros eval --recorded` scores exactly what a subscriber saw online
(the `realtime` pacing, with ROS doing the replay). Everything stops when the bag has played.
"""

from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    ExecuteProcess,
    IncludeLaunchDescription,
    RegisterEventHandler,
    TimerAction,
)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = [
    ("bag", "", "rosbag2 to play (directory), e.g. one written by `sam3-ros make-bag`"),
    ("record", "bag_eval_out", "output rosbag2 directory (camera topic + /sam3/instances); must not exist"),
    ("camera_topic", "/camera/image_raw", "camera topic in the bag"),
    ("prompt", "", "noun phrases, comma-separated (use the ground truth's phrases; empty: params_file's value)"),
    ("model", "", "built-in model name or a local directory with SAM 3 weights (empty: params_file's value)"),
    ("rate", "1.0", "bag playback rate (1.0 = recorded speed)"),
    ("start_delay", "5.0", "seconds to wait for the node to load its model before playing"),
    (
        "params_file",
        PathJoinSubstitution([FindPackageShare("sam3_ros"), "config", "tracker.yaml"]),
        "ROS 2 parameter file with every tracker setting",
    ),
]


def generate_launch_description() -> LaunchDescription:
    declared = [DeclareLaunchArgument(name, default_value=default, description=doc) for name, default, doc in ARGUMENTS]
    tracker = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare("sam3_ros"), "launch", "tracker.launch.py"])
        ),
        launch_arguments={
            "camera_topic": LaunchConfiguration("camera_topic"),
            "prompt": LaunchConfiguration("prompt"),
            "model": LaunchConfiguration("model"),
            "params_file": LaunchConfiguration("params_file"),
        }.items(),
    )
    recorder = ExecuteProcess(
        cmd=[
            "ros2",
            "bag",
            "record",
            "-o",
            LaunchConfiguration("record"),
            "-s",
            "mcap",
            LaunchConfiguration("camera_topic"),
            "/sam3/instances",
        ],
        output="screen",
    )
    player = ExecuteProcess(
        cmd=[
            "ros2",
            "bag",
            "play",
            LaunchConfiguration("bag"),
            "--rate",
            LaunchConfiguration("rate"),
            "--topics",
            LaunchConfiguration("camera_topic"),
        ],
        output="screen",
    )
    # Give the last frame time to be processed and recorded, then stop everything.
    stop_after_play = RegisterEventHandler(
        OnProcessExit(
            target_action=player,
            on_exit=[TimerAction(period=3.0, actions=[EmitEvent(event=Shutdown(reason="bag played"))])],
        )
    )
    return LaunchDescription(
        [
            *declared,
            tracker,
            recorder,
            TimerAction(period=LaunchConfiguration("start_delay"), actions=[player]),
            stop_after_play,
        ]
    )
