"""tests/ros: the robot path under a real ROS 2 (``make test-ros`` builds the package and runs these).

Without a ROS 2 environment (rclpy, ``ros2`` and this package's colcon install, all sourced) every module
here skips, saying so (``ros_harness`` checks on import). With ``SAM3_ROS_REQUIRE_ROS=1`` (CI) a skip is a
failure; the only skips let through are those of tests marked ``ros_tool``, whose tool this ROS 2 lacks
(the ../shared/ros2 kit does not ship ``ros2 bag``, for one).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess

import pytest

from sam3_ros.ros.names import private_domain_id

REQUIRE_ROS = os.environ.get("SAM3_ROS_REQUIRE_ROS") == "1"
# tool -> how to tell it is there
ROS_TOOLS = {"ros2 bag": lambda: importlib.util.find_spec("ros2bag") is not None}


def pytest_configure(config):
    config.addinivalue_line("markers", "ros_tool(name): needs a ROS 2 tool that some installs lack (skips without)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        marker = item.get_closest_marker("ros_tool")
        if marker is not None and not ROS_TOOLS[marker.args[0]]():
            item.add_marker(
                pytest.mark.skip(
                    reason=f"needs `{marker.args[0]}`, which this ROS 2 does not have "
                    "(the ../shared/ros2 kit does not ship it)"
                )
            )


def _fail_skip(report, what: str) -> None:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"SAM3_ROS_REQUIRE_ROS=1 and {what} was skipped: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """Under SAM3_ROS_REQUIRE_ROS=1 a ROS test module skipped as a whole (no ROS 2 here) fails."""
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ROS and report.skipped and str(collector.path).startswith(os.path.dirname(__file__)):
        _fail_skip(report, f"{collector.path.name}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under SAM3_ROS_REQUIRE_ROS=1 a skipped ROS test fails, unless it is marked ``ros_tool``."""
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ROS and report.skipped and item.get_closest_marker("ros_tool") is None:
        _fail_skip(report, "this ROS test")


_USED_DOMAINS: set[int] = set()  # a session never returns to a domain: what an earlier module left there stays there


@pytest.fixture(scope="module", autouse=True)
def ros_domain(tmp_path_factory):
    """A ROS domain of the module's own, discovery on this host only, and ROS log files (nodes, launch) in the
    session's temporary folder rather than ~/.ros/log.

    Per module, not per session: a node an earlier module started (named ``sam3_tracker`` too) can outlive its
    test in the DDS discovery data of the others for a while, and the graph queries by node name would then
    answer for it."""
    saved = {k: os.environ.get(k) for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOG_DIR")}
    domain = private_domain_id()
    while domain in _USED_DOMAINS:
        domain = private_domain_id()
    _USED_DOMAINS.add(domain)
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ["ROS_LOG_DIR"] = str(tmp_path_factory.mktemp("ros_log"))
    yield domain
    if shutil.which("ros2"):  # the `ros2` daemon a module's CLI calls started would outlive the session
        subprocess.run(["ros2", "daemon", "stop"], capture_output=True, timeout=30, check=False)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def ros(ros_domain):
    """The module's rclpy node (see ``ros_harness.RosClient``)."""
    from ros_harness import RosClient

    client = RosClient()
    yield client
    client.close()
