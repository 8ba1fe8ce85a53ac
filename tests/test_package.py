"""package.xml is valid and declares every ROS package the code imports."""

import ast
import sys
from pathlib import Path

from catkin_pkg.package import parse_package

ROOT = Path(__file__).resolve().parent.parent
# Python modules that come from ROS packages (not pip): a module imported by our code with one of these
# names, or ending in _msgs/_srvs/_interfaces, must be a dependency in package.xml.
ROS_PYTHON_PACKAGES = {"rclpy", "launch", "launch_ros", "cv_bridge", "ament_index_python", "rosidl_runtime_py",
                       "builtin_interfaces", "rosbag2_py", "message_filters", "tf2_ros"}
REQUIRED = {"rclpy", "std_msgs", "sensor_msgs", "std_srvs", "lifecycle_msgs", "diagnostic_msgs", "cv_bridge",
            "builtin_interfaces"}


def _package():
    return parse_package(str(ROOT / "package.xml"))


def _deps(pkg):
    return {d.name for group in (pkg.build_depends, pkg.exec_depends, pkg.build_export_depends,
                                 pkg.buildtool_depends) for d in group}


def test_package_xml_validates():
    pkg = _package()
    pkg.validate()
    assert pkg.package_format == 3
    assert pkg.name == "sam3_ros"
    assert "rosidl_interface_packages" in {g.name for g in pkg.member_of_groups}


def test_runtime_dependencies_listed():
    assert REQUIRED <= _deps(_package())


def _imported_ros_packages():
    files = [*ROOT.glob("sam3_ros/**/*.py"), *ROOT.glob("launch/*.py"), ROOT / "scripts" / "tracker_node"]
    found = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "sam3_ros":
                    continue
                if top in ROS_PYTHON_PACKAGES or top.endswith(("_msgs", "_srvs", "_interfaces")):
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_imported_ros_package_is_a_dependency():
    deps = _deps(_package())
    missing = {name: where for name, where in _imported_ros_packages().items() if name not in deps}
    assert not missing, f"ROS packages imported but not in package.xml: {missing}"


def test_every_published_or_subscribed_type_is_a_dependency():
    """The rclpy transport imports each topic's message package by name (``names.*_TYPE``), and the messages
    built from the typestore nest others (vision_msgs nests geometry_msgs)."""
    from sam3_ros.ros import names

    packages = {value.split("/")[0] for key, value in vars(names).items() if key.endswith("_TYPE")}
    packages |= {"geometry_msgs"} if "vision_msgs" in packages else set()
    missing = packages - _deps(_package()) - {"sam3_ros"}
    assert not missing, f"message packages used but not in package.xml: {missing}"
