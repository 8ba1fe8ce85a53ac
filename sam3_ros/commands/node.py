"""``sam3-ros node``: run the tracker node on rclpy (robots) or DDS-direct (no ROS install)."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import signal
import sys
import threading

TRANSPORTS = ("auto", "rclpy", "dds")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--transport", choices=TRANSPORTS, default="auto",
                        help="auto = rclpy when importable, else dds (Cyclone DDS, wire-compatible with "
                             "rmw_cyclonedds_cpp; domain from ROS_DOMAIN_ID)")
    parser.add_argument("--params", metavar="FILE", help="ROS 2 parameter file (default: the packaged "
                        "config/tracker.yaml); with rclpy, pass --ros-args --params-file instead")
    parser.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                        help="override one setting, e.g. --set detection.score_threshold=0.4 (repeatable)")
    parser.add_argument("--namespace", default="", help="dds: namespace for the node's relative names")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    parser.add_argument("--ros-args", dest="ros_args", nargs=argparse.REMAINDER, default=[],
                        help="rclpy: everything after this is passed to ROS")


def pick_transport(requested: str) -> str:
    """``auto`` -> ``rclpy`` when it is importable, else ``dds``."""
    if requested != "auto":
        return requested
    return "rclpy" if importlib.util.find_spec("rclpy") is not None else "dds"


def load_settings(args: argparse.Namespace):
    """Settings from ``--params`` (or the packaged defaults) with ``--set`` overrides."""
    from ..settings import Settings, parse_override

    overrides = dict(parse_override(text) for text in args.set)
    return Settings.from_yaml(args.params, overrides) if args.params else Settings.default(overrides)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ..settings import SettingsError

    try:
        settings = load_settings(args)
    except SettingsError as exc:
        print(f"sam3-ros node: {exc}", file=sys.stderr)
        return 2
    if pick_transport(args.transport) == "rclpy":
        try:
            from ..ros.rclpy_node import main
        except ImportError as exc:
            print(f"sam3-ros node: the rclpy transport needs a sourced ROS 2 install ({exc}); "
                  "use --transport dds without one", file=sys.stderr)
            return 2
        return main(args.ros_args, settings)
    return run_dds(settings, args.namespace)


def run_dds(settings, namespace: str = "") -> int:
    """Run the DDS-direct node until SIGINT or SIGTERM."""
    from ..pipeline.node import engine_factory
    from ..ros.dds import Participant
    from ..ros.dds_node import DdsTrackerNode

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        participant = Participant(namespace=namespace, largest_frame_bytes=settings.input.largest_frame_bytes)
        node = DdsTrackerNode(settings, engine_factory(settings), participant)
    except ValueError as exc:  # bad ROS_DOMAIN_ID or namespace, a model that cannot be loaded
        print(f"sam3-ros node: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("sam3_ros.node").info(
        "ready: DDS domain %d, cameras %s, instances on %s", participant.domain, ", ".join(settings.input.topics),
        settings.output.instances_topic)
    while not stop.wait(0.1):
        pass
    node.close()
    logging.getLogger("sam3_ros.node").info("stopped")
    # Everything of ours is stopped and released above. Interpreter teardown of torch/transformers
    # modules alone takes seconds on a busy machine; skip it so that SIGTERM exits promptly.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
