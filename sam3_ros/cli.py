"""``sam3-ros``: the command-line entry point.

Each subcommand lives in its own module ``sam3_ros.commands.<name>`` (``bench <what>`` in
``sam3_ros.commands.bench_<what>``) with two functions: ``add_arguments(parser)`` (cheap: no heavy
imports at module level, so ``--help`` stays fast) and ``run(args) -> int``. Errors: see ``sam3_ros.commands``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .commands import CommandFailed, UsageError

USAGE_EXIT, FAILED_EXIT = 2, 1

# name -> one-line help. Order is the order shown by --help.
COMMANDS = {
    "node": "run the tracker node (rclpy, or DDS-direct without a ROS install)",
    "demo": "generate the sample bag, replay it through the node, write an overlay video and a report",
    "eval": "replay a rosbag through the node and score it against ground truth",
    "make-bag": "write a synthetic benchmark rosbag with ground truth",
    "bench": "benchmarks that print a table and write JSON",
    "export-onnx": "export the vision encoder to ONNX",
    "build-engine": "build a TensorRT engine from an exported ONNX file",
    "train-toy": "train the small built-in model on the synthetic concept world",
}
BENCHMARKS = {
    "engine": "engine vs the transformers streaming loop (ms per stage, fps, memory)",
    "kernels": "CUDA kernels vs torch references vs broadcast IoU",
    "e2e": "camera frames in, published InstanceArray out, through the node over DDS",
    "multigpu": "fps vs objects vs number of GPUs",
}


def _module_name(command: str, benchmark: str | None = None) -> str:
    if benchmark is not None:
        return f"sam3_ros.commands.bench_{benchmark}"
    return f"sam3_ros.commands.{command.replace('-', '_')}"


def _add(subparsers, name: str, help_text: str, module: str, command: str) -> None:
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    importlib.import_module(module).add_arguments(parser)
    parser.set_defaults(_module=module, _command=command)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (subcommands registered from ``COMMANDS`` and ``BENCHMARKS``)."""
    parser = argparse.ArgumentParser(
        prog="sam3-ros", description="Real-time SAM 3 segmentation and tracking for ROS 2 camera streams."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in COMMANDS.items():
        if name == "bench":
            bench = subparsers.add_parser(name, help=help_text, description=help_text)
            inner = bench.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
            for what, what_help in BENCHMARKS.items():
                _add(inner, what, what_help, _module_name(name, what), f"{name} {what}")
        else:
            _add(subparsers, name, help_text, _module_name(name), name)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run one subcommand; returns the process exit code (2: usage error, 1: failure)."""
    args, unknown = build_parser().parse_known_args(argv)  # its own errors: message to stderr, exit 2
    try:
        if unknown:  # reported here, under the subcommand's name (argparse would name only the top level)
            raise UsageError(f"unrecognized arguments: {' '.join(unknown)}")
        return int(importlib.import_module(args._module).run(args) or 0)
    except (UsageError, CommandFailed) as exc:
        print(f"sam3-ros {args._command}: {exc}", file=sys.stderr)
        return USAGE_EXIT if isinstance(exc, UsageError) else FAILED_EXIT


if __name__ == "__main__":
    sys.exit(main())
