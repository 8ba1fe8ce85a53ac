"""``sam3-ros demo``: sample bag -> the node -> overlay video + report, on any machine (no GPU, weights or ROS)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from . import UsageError
from .make_bag import parse_size

# The built-in tiny-random model has random weights: its scores sit around 0.26, under every default
# threshold, so nothing would be drawn. The demo lowers the thresholds for it to show masks and ids
# flowing through the whole path (the accuracy numbers stay near zero: only scores >= 0.5 count); objects
# it no longer detects are dropped at once, so its random detections do not pile up.
RANDOM_MODEL_OVERRIDES = {
    "detection.score_threshold": 0.0,
    "detection.new_object_threshold": 0.0,
    "tracking.keep_alive_frames": 0,
}
PRODUCTS = (
    "sample",
    "sample.gt.json",
    "instances",
    "overlay.mp4",
    "report.json",
    "report.md",
    "latency.png",
    "per_concept.png",
    "node.log",
    "node_settings.yaml",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_out", help="output directory")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic clip")
    parser.add_argument("--frames", type=int, default=60, help="frames in the clip")
    parser.add_argument("--size", type=parse_size, default=(320, 240), help="image size WIDTHxHEIGHT")
    parser.add_argument("--model", default="toy", help="built-in model name or a local SAM 3 directory")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one setting")
    parser.add_argument(
        "--transport",
        choices=("dds", "inproc"),
        default="dds",
        help="dds: the node in a subprocess over DDS-direct; inproc: the node logic in this process",
    )


def run(args: argparse.Namespace) -> int:
    from ..codec.image import image_to_rgb
    from ..eval.bags import read_messages
    from ..eval.benchmark import write_benchmark
    from ..eval.evaluate import replay_bag
    from ..eval.groundtruth import GroundTruth
    from ..eval.overlay_video import write_video
    from ..eval.report import summary, write_report
    from ..eval.synthetic import WorldConfig
    from ..settings import Settings, parse_override

    out = Path(args.out)
    for name in PRODUCTS:  # only what an earlier demo wrote
        path = out / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    try:
        config = WorldConfig(width=args.size[0], height=args.size[1], frames=args.frames, seed=args.seed)
        overrides = {
            **(RANDOM_MODEL_OVERRIDES if args.model == "tiny-random" else {}),
            "model": args.model,
            **dict(parse_override(s) for s in args.set),
        }
        settings = Settings.default(overrides)
    except ValueError as exc:  # a bad --size, --frames or --set
        raise UsageError(str(exc)) from None
    topic = "/camera/image_raw"
    bag, gt_path = write_benchmark(out / "sample", config, topic=topic, progress=True)
    result, context = replay_bag(bag, GroundTruth.load(gt_path), settings, out, transport=args.transport, topic=topic)
    # Overlay: each camera frame with the output a subscriber held at that moment.
    frames = (image_to_rgb(cam) for _, cam in read_messages(bag, topic))
    write_video(out / "overlay.mp4", ((rgb, msg) for rgb, (_, msg) in zip(frames, result.held_outputs())), config.fps)
    write_report(out, result, context)
    print(summary(result, context))
    print(f"wrote {out / 'overlay.mp4'}, {out / 'report.md'} (report.json, latency.png, per_concept.png)")
    return 0
