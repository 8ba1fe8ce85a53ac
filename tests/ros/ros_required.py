"""Imported first by every test module in tests/ros: without a usable ROS 2 the module skips, saying why."""

import importlib
import importlib.util
import shutil

import pytest


def missing_ros() -> str:
    """Why there is no usable ROS 2 here ("" when there is one)."""
    if importlib.util.find_spec("rclpy") is None:
        return "no ROS 2 (rclpy) in this environment: run `make test-ros`, or source a ROS 2 install"
    try:
        importlib.import_module("rclpy")
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError as exc:
        return f"ROS 2 is installed but not sourced ({exc}): run `make test-ros`"
    try:
        get_package_share_directory("sam3_ros")
        importlib.import_module("sam3_ros.msg")
    except (PackageNotFoundError, ImportError, OSError):  # OSError: no AMENT_PREFIX_PATH at all
        return "sam3_ros is not built with colcon and sourced: run `make test-ros`"
    if shutil.which("ros2") is None:
        return "no `ros2` command (ros2cli) on PATH"
    return ""


REASON = missing_ros()
if REASON:
    pytest.skip(REASON, allow_module_level=True)
