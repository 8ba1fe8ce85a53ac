"""The rclpy lifecycle node: ROS 2 is not installed here, so it is compile-checked and its contract with
the shared pipeline is checked statically; its logic lives in ``TrackerNode``, which test_node_dds.py drives."""

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sam3_ros.commands.node import pick_transport
from sam3_ros.pipeline.node import TrackerNode
from sam3_ros.ros import names

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "sam3_ros" / "ros" / "rclpy_node.py"
HAS_RCLPY = importlib.util.find_spec("rclpy") is not None


def _class(tree, name):
    return next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == name)


def test_rclpy_node_compiles_and_implements_every_transition():
    tree = ast.parse(SOURCE.read_text(), str(SOURCE))
    compile(tree, str(SOURCE), "exec")
    node = _class(tree, "TrackerLifecycleNode")
    assert [b.id for b in node.bases] == ["LifecycleNode"]
    methods = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
    assert {"on_configure", "on_activate", "on_deactivate", "on_cleanup", "on_shutdown"} <= methods


def test_services_map_to_tracker_methods():
    for name, (srv_type, method) in names.SERVICES.items():
        assert callable(getattr(TrackerNode, method)), method
        assert srv_type.count("/srv/") == 1 and name.startswith("sam3/")


def test_auto_transport_picks_dds_without_rclpy():
    assert pick_transport("dds") == "dds" and pick_transport("rclpy") == "rclpy"
    assert pick_transport("auto") == ("rclpy" if HAS_RCLPY else "dds")


@pytest.mark.skipif(HAS_RCLPY, reason="rclpy is importable here")
def test_rclpy_transport_without_ros_says_what_to_do():
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-m", "sam3_ros.cli", "node", "--transport", "rclpy"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "use --transport dds" in out.stderr
