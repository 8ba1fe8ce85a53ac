"""``sam3-ros eval BAG``: replay a bag through the node logic and score it against ground truth.

Real datasets: write the video's frames in order to a bag (``sam3_ros.eval.bags.write_camera_bag``)
and pass its SA-Co/VEval or YTVIS JSON with ``--gt`` (frames pair by order, or by ``stamps_ns``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

TRANSPORTS = ("inproc",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", help="rosbag2 directory with the camera topic")
    parser.add_argument("--gt", help="ground-truth JSON (SA-Co/VEval or YTVIS style); default BAG.gt.json")
    parser.add_argument("--video", help="video id or name in the ground truth, if it holds several")
    parser.add_argument("--prompt", help="noun phrases to prompt and score, comma-separated (default: the "
                        "ground truth's phrases, positives and negatives)")
    parser.add_argument("--model", help="built-in model name or a local SAM 3 directory (default: settings)")
    parser.add_argument("--device", help="device, e.g. cpu or cuda:0 (default: settings)")
    parser.add_argument("--params", help="settings file (ROS 2 parameter YAML; default config/tracker.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one setting")
    parser.add_argument("--pacing", choices=("lockstep", "realtime"), default="lockstep",
                        help="lockstep: every frame, deterministic; realtime: frames at their recorded times, "
                        "drops what the node cannot keep up with")
    parser.add_argument("--rate", type=float, default=1.0, help="realtime playback rate (1 = recorded speed)")
    parser.add_argument("--topic", help="camera topic (default: the bag's only image topic)")
    parser.add_argument("--transport", choices=TRANSPORTS, default="inproc", help="how frames reach the node logic")
    parser.add_argument("--recorded", help="score a recording made by launch/bag_eval.launch.py instead of "
                        "replaying (camera topic + /sam3/instances at receive times)")
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


def in_process(settings, phrases: list[str], camera: str):
    """The node's per-frame logic with the engine in this process."""
    from ..engine import load_engine
    from ..eval.replay import EngineProcessor

    return EngineProcessor(load_engine(settings), phrases, camera)


def run(args: argparse.Namespace) -> int:
    from ..eval.bags import camera_topic
    from ..eval.benchmark import gt_path_for
    from ..eval.evaluate import evaluate, score_recording
    from ..eval.groundtruth import GroundTruth
    from ..eval.report import summary, write_report

    try:
        gt = GroundTruth.load(args.gt or gt_path_for(args.bag), args.video)
        phrases = [p.strip() for p in args.prompt.split(",") if p.strip()] if args.prompt else gt.phrases
        if args.recorded:
            result = score_recording(args.recorded, gt, phrases=phrases, topic=args.topic)
            context = {"bag": args.recorded, "pacing": "recorded", "model": "(recorded)", "transport": "ROS 2"}
        else:
            settings = load_settings(args)
            topic = camera_topic(args.bag, args.topic)
            processor = in_process(settings, phrases, topic)
            result = evaluate(args.bag, gt, processor, args.out, phrases=phrases, pacing=args.pacing, topic=topic,
                              rate=args.rate)
            context = {"bag": args.bag, "pacing": args.pacing, "model": settings.model,
                       "transport": "in-process", "device": str(processor.engine.device)}
    except ValueError as exc:  # bad bag, ground truth, settings or prompt: say what, no traceback
        print(f"sam3-ros eval: {exc}")
        return 1
    write_report(args.out, result, context)
    print(summary(result, context))
    print(f"report: {Path(args.out) / 'report.md'}")
    return 0
