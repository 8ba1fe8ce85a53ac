"""``sam3-ros eval BAG``: replay a bag through the node logic and score it against ground truth.

Real datasets: write the video's frames in order to a bag (``sam3_ros.eval.bags.write_camera_bag``)
and pass its SA-Co/VEval or YTVIS JSON with ``--gt`` (frames pair by order, or by ``stamps_ns``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import CommandFailed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", help="rosbag2 directory with the camera topic")
    parser.add_argument("--gt", help="ground-truth JSON (SA-Co/VEval or YTVIS style); default BAG.gt.json")
    parser.add_argument("--video", help="video id or name in the ground truth, if it holds several")
    parser.add_argument(
        "--prompt",
        help="noun phrases to prompt and score, comma-separated (default: the "
        "ground truth's phrases, positives and negatives)",
    )
    parser.add_argument("--model", help="built-in model name or a local SAM 3 directory (default: settings)")
    parser.add_argument("--device", help="device, e.g. cpu or cuda:0 (default: settings)")
    parser.add_argument("--params", help="settings file (ROS 2 parameter YAML; default config/tracker.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one setting")
    parser.add_argument(
        "--pacing",
        choices=("lockstep", "realtime"),
        default="lockstep",
        help="lockstep: every frame, deterministic; realtime: frames at their recorded times, "
        "drops what the node cannot keep up with",
    )
    parser.add_argument("--rate", type=float, default=1.0, help="realtime playback rate (1 = recorded speed)")
    parser.add_argument("--topic", help="camera topic (default: the bag's only image topic)")
    parser.add_argument(
        "--transport",
        choices=("inproc", "dds"),
        default="inproc",
        help="inproc: the node's per-frame logic in this process; dds: the real node "
        "(sam3-ros node --transport dds) in a subprocess, driven over DDS-direct",
    )
    parser.add_argument(
        "--recorded",
        help="score a recording made by launch/bag_eval.launch.py instead of "
        "replaying (camera topic + /sam3/instances at receive times)",
    )
    parser.add_argument("--out", default="eval_out", help="output directory (report, plots, instances bag)")


def load_settings(args: argparse.Namespace):
    """Settings from --params / --set, with --model and --device applied."""
    from ..settings import Settings, parse_override

    overrides = dict(parse_override(s) for s in args.set)
    if args.model:
        overrides["model"] = args.model
    if args.device:
        overrides["devices"] = [args.device]
    return Settings.from_yaml(args.params, overrides) if args.params else Settings.default(overrides)


def run(args: argparse.Namespace) -> int:
    from ..eval.benchmark import gt_path_for
    from ..eval.evaluate import replay_bag, score_recording
    from ..eval.groundtruth import GroundTruth
    from ..eval.report import summary, write_report

    out = Path(args.out)
    try:
        gt = GroundTruth.load(args.gt or gt_path_for(args.bag), args.video)
        phrases = [p.strip() for p in args.prompt.split(",") if p.strip()] if args.prompt else gt.phrases
        if args.recorded:
            result = score_recording(args.recorded, gt, phrases=phrases, topic=args.topic)
            context = {"bag": args.recorded, "pacing": "recorded", "model": "(recorded)", "transport": "ROS 2"}
        else:
            result, context = replay_bag(
                args.bag,
                gt,
                load_settings(args),
                out,
                phrases=phrases,
                transport=args.transport,
                pacing=args.pacing,
                rate=args.rate,
                topic=args.topic,
            )
    except ValueError as exc:  # bad bag, ground truth, settings or prompt: say what, no traceback
        raise CommandFailed(str(exc)) from None
    write_report(out, result, context)
    print(summary(result, context))
    print(f"report: {out / 'report.md'}")
    return 0
