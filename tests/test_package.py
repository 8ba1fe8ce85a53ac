"""package.xml is valid and declares every ROS package the code imports; the robot install (CMakeLists.txt) holds
the runtime, which imports nothing of the offline tooling it leaves out."""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

from catkin_pkg.package import parse_package

ROOT = Path(__file__).resolve().parent.parent
# Python modules that come from ROS packages (not pip): a module imported by our code with one of these
# names, or ending in _msgs/_srvs/_interfaces, must be a dependency in package.xml.
ROS_PYTHON_PACKAGES = {
    "rclpy",
    "launch",
    "launch_ros",
    "cv_bridge",
    "ament_index_python",
    "rosidl_runtime_py",
    "builtin_interfaces",
    "rosbag2_py",
    "message_filters",
    "tf2_ros",
}
REQUIRED = {
    "rclpy",
    "std_msgs",
    "sensor_msgs",
    "std_srvs",
    "lifecycle_msgs",
    "diagnostic_msgs",
    "cv_bridge",
    "builtin_interfaces",
}


def _package():
    return parse_package(str(ROOT / "package.xml"))


def _deps(pkg):
    return {
        d.name
        for group in (pkg.build_depends, pkg.exec_depends, pkg.build_export_depends, pkg.buildtool_depends)
        for d in group
    }


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


# the offline command that runs the training code; it says so where that code is not installed
OFFLINE_COMMANDS = {"sam3_ros/commands/train_toy.py"}


def _robot_install_excludes() -> set[str]:
    """Names the CMake install of the Python package leaves out (its ``PATTERN "..." EXCLUDE`` entries)."""
    rule = re.search(r"install\(\s*DIRECTORY \$\{PROJECT_NAME\}/(.*?)\)", (ROOT / "CMakeLists.txt").read_text(), re.S)
    assert rule, "CMakeLists.txt does not install the Python package with install(DIRECTORY ${PROJECT_NAME}/ ...)"
    return set(re.findall(r'PATTERN "([^"]+)" EXCLUDE', rule.group(1)))


def _robot_modules() -> list[str]:
    """Dotted names of the Python modules the robot install holds."""
    left_out = _robot_install_excludes()
    names = []
    for path in sorted((ROOT / "sam3_ros").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if not left_out & set(parts):
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_robot_install_leaves_out_the_training_code_and_pip_keeps_it():
    assert _robot_install_excludes() == {"__pycache__", "training"}
    modules = _robot_modules()
    assert "sam3_ros.engine.engine" in modules and "sam3_ros.ros.rclpy_node" in modules
    assert not [m for m in modules if m.startswith("sam3_ros.training")]
    setup = (ROOT / "setup.py").read_text()
    assert 'find_packages(include=["sam3_ros", "sam3_ros.*"])' in setup  # the pip package: training included


def test_runtime_never_imports_the_training_code():
    """Statically (any import statement, also inside functions) and by importing every module of the robot
    install in a fresh process, as the node's executable starts (its argument parser built)."""
    for path in (ROOT / "sam3_ros").rglob("*.py"):
        rel = str(path.relative_to(ROOT))
        if rel.startswith("sam3_ros/training/") or rel in OFFLINE_COMMANDS:
            continue
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            if isinstance(node, ast.ImportFrom):
                named = [f"{'.' * node.level}{node.module or ''}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                named = [a.name for a in node.names]
            else:
                continue
            assert not [n for n in named if re.search(r"(^|\.)training(\.|$)", n)], f"{rel} imports {named}"
    script = f"""
import importlib, json, sys
skipped = {{}}
for name in {_robot_modules()!r}:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:  # an optional dependency missing here (rclpy, TensorRT, ...)
        if exc.name.split(".")[0] == "sam3_ros":
            raise
        skipped[name] = exc.name
from sam3_ros.cli import build_parser
build_parser()
print(json.dumps({{"loaded": sorted(m for m in sys.modules if m.startswith("sam3_ros")), "skipped": skipped}}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "sam3_ros.engine.engine" in result["loaded"] and "sam3_ros.pipeline.node" in result["loaded"]
    assert len(result["skipped"]) < len(_robot_modules()) // 4, result["skipped"]
    assert not [m for m in result["loaded"] if m.startswith("sam3_ros.training")], result["loaded"]


def test_every_published_or_subscribed_type_is_a_dependency():
    """The rclpy transport imports each topic's message package by name (``names.*_TYPE``), and the messages
    built from the typestore nest others (vision_msgs nests geometry_msgs)."""
    from sam3_ros.ros import names

    packages = {value.split("/")[0] for key, value in vars(names).items() if key.endswith("_TYPE")}
    packages |= {"geometry_msgs"} if "vision_msgs" in packages else set()
    missing = packages - _deps(_package()) - {"sam3_ros"}
    assert not missing, f"message packages used but not in package.xml: {missing}"
