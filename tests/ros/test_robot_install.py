"""The README's robot install line installs everything the rclpy path imports beyond ROS 2 itself; the colcon
install holds the runtime without the offline training code, and the running node needs none of it."""

from __future__ import annotations

import ros_required  # noqa: F401  (first: without ROS 2 this module skips, saying why)
import ast
import functools
import importlib.metadata as metadata
import json
import re
import subprocess
import sys
from pathlib import Path

from catkin_pkg.package import parse_package
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("import_probe.py")
# rosdep keys of Python packages -> their pip names: package.xml's exec_depends among them are installed by rosdep
ROSDEP_PYTHON = {"python3-numpy": "numpy", "python3-yaml": "pyyaml"}


def readme_install_line() -> list[str]:
    """The packages of the `pip install` line in the README's "Use on a robot"."""
    section = (ROOT / "README.md").read_text().split("## Use on a robot", 1)[1]
    line = re.search(r"^pip install ([^#\n]+)", section, re.M)
    assert line, "no `pip install` line under 'Use on a robot'"
    return line.group(1).split()


def install_closure(names: list[str]) -> set[str]:
    """``names`` and everything pip installs with them (their requirements, recursively, extras left out)."""
    seen: set[str] = set()
    todo = [canonicalize_name(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return seen


@functools.lru_cache
def probe(mode: str) -> dict:
    out = subprocess.run([sys.executable, str(PROBE), mode], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def imports_of(files: list[str]) -> set[str]:
    """Top-level names of the modules that these source files import (anywhere in them)."""
    names = set()
    for path in files:
        for node in ast.walk(ast.parse(Path(path).read_text(), path)):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_readme_install_line_covers_what_the_rclpy_node_imports():
    node, ros = probe("node"), probe("baseline")
    # what the node's own code imports and what was loaded beyond ROS 2 (libraries also load optional modules of
    # their own when those happen to be installed: not the node's needs)
    ours = imports_of(node["sam3_ros_files"]) & (set(node["modules"]) - set(ros["modules"])) - {"sam3_ros"}
    assert {"torch", "transformers", "rosbags"} <= ours, ours  # the probe saw the node's real imports
    by_module = metadata.packages_distributions()
    needed = {canonicalize_name(dist): module for module in ours for dist in by_module.get(module, [])}
    assert "cyclonedds" not in needed, "the rclpy path imports cyclonedds"
    assert "rosidl-runtime-py" not in needed, "the rclpy path imports rosidl_runtime_py"
    rosdep = {
        ROSDEP_PYTHON[d.name] for d in parse_package(str(ROOT / "package.xml")).exec_depends if d.name in ROSDEP_PYTHON
    }
    installed = install_closure(readme_install_line()) | rosdep
    missing = {dist: module for dist, module in needed.items() if dist not in installed}
    assert not missing, f"imported by the rclpy node but not installed by the README's line: {missing}"


def test_colcon_install_leaves_out_the_training_code_the_node_never_loads():
    import sam3_ros  # from the colcon install (tests/ros/run.sh sources it)

    installed = Path(sam3_ros.__file__).resolve().parent
    assert (installed / "msg").is_dir() and (installed / "engine" / "engine.py").is_file(), installed
    assert not (installed / "training").exists(), f"{installed / 'training'} is installed"
    loaded = probe("node")["sam3_ros_files"]
    assert loaded and all(Path(f).resolve().is_relative_to(installed) for f in loaded), loaded
