"""The rclpy lifecycle node, checked without ROS 2: it compiles, implements every transition and maps the
services to ``PerceptionNode``; without a ROS build the rclpy transport says what to do. tests/ros runs it under
a real ROS 2 (``make test-ros``)."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sam3_ros.commands.node import has_ros_build, pick_transport
from sam3_ros.pipeline.node import PerceptionNode
from sam3_ros.ros import names

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "sam3_ros" / "ros" / "rclpy_node.py"
HAS_ROS_BUILD = has_ros_build()


def _class(tree, name):
    return next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == name)


def test_rclpy_node_compiles_and_implements_every_transition():
    tree = ast.parse(SOURCE.read_text(), str(SOURCE))
    compile(tree, str(SOURCE), "exec")
    node = _class(tree, "PerceptionLifecycleNode")
    assert [b.id for b in node.bases] == ["LifecycleNode"]
    methods = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
    assert {"on_configure", "on_activate", "on_deactivate", "on_cleanup", "on_shutdown"} <= methods


def test_services_map_to_tracker_methods():
    for name, (srv_type, method) in names.SERVICES.items():
        assert callable(getattr(PerceptionNode, method)), method
        assert srv_type.count("/srv/") == 1 and name.startswith("sam3/")


def test_auto_transport_picks_dds_without_rclpy():
    assert pick_transport("dds") == "dds" and pick_transport("rclpy") == "rclpy"
    assert pick_transport("auto") == ("rclpy" if HAS_ROS_BUILD else "dds")


@pytest.mark.skipif(HAS_ROS_BUILD, reason="rclpy and this package's colcon build are importable here")
def test_rclpy_transport_without_ros_says_what_to_do():
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(
        [sys.executable, "-m", "sam3_ros.cli", "node", "--transport", "rclpy"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "use --transport dds" in out.stderr
