"""``sam3-ros bench e2e --transport rclpy``: the lifecycle node in its own process on rmw_fastrtps_cpp, configured
and activated by the benchmark's rclpy camera, frames in lockstep; the transport row is each frame's round trip
minus the node's own receive -> publish."""

import ros_required  # noqa: F401  (first: without ROS 2 this module skips, saying why)
import argparse
import json

from sam3_ros.commands import bench_e2e


def test_bench_drives_the_rclpy_node_and_reports_its_transport(tmp_path):
    parser = argparse.ArgumentParser()
    bench_e2e.add_arguments(parser)
    out = tmp_path / "rclpy.json"
    args = parser.parse_args(
        ["--transport", "rclpy", "--size", "160x120", "--objects", "2", "--frames", "3", "--rate", "0"]
        + ["--threads", "1", "--json", str(out)]
    )
    assert bench_e2e.run(args) == 0
    result = json.loads(out.read_text())
    rows = result["rows"]
    round_trip = rows["node over rclpy: camera round trip"]
    transport = rows["node over rclpy: round trip - receive -> publish"]
    assert round_trip["n"] == transport["n"] == 3 and result["transport"] == "rclpy"
    assert 0 < result["transport_ms"] == transport["median_ms"] < round_trip["median_ms"]
