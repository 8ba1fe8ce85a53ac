"""``sam3-ros make-bag OUT``: write the synthetic benchmark bag and its ground truth (OUT.gt.json).

``--depth`` adds an aligned depth image (16UC1) and the camera's CameraInfo to every frame, and the 3D ground
truth of every object (``sam3-ros eval`` then reports the 3D error too).

``--images DIR`` instead writes a folder of frames (a real dataset's video, in file-name order) as a
camera bag, to evaluate against that dataset's own SA-Co/VEval or YTVIS JSON (``sam3-ros eval OUT --gt``).
"""

from __future__ import annotations

import argparse

from . import UsageError


def parse_size(text: str) -> tuple[int, int]:
    """``"320x240"`` -> (320, 240)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, e.g. 320x240, got {text!r}") from None
    return w, h


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="bag directory to create (the ground truth goes to OUT.gt.json)")
    parser.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same clip")
    parser.add_argument("--frames", type=int, default=60, help="number of frames")
    parser.add_argument("--size", type=parse_size, default=(320, 240), help="image size WIDTHxHEIGHT")
    parser.add_argument("--fps", type=float, default=15.0, help="camera rate (spacing of the header stamps)")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="rosbag2 storage plugin")
    parser.add_argument("--topic", default="/camera/image_raw", help="camera topic")
    parser.add_argument("--frame-id", default="camera", help="header frame_id of the images")
    parser.add_argument(
        "--depth",
        action="store_true",
        help="also an aligned depth image and CameraInfo per frame "
        "(objects at 1-3 m, noise, holes) and the objects' 3D in the ground truth",
    )
    parser.add_argument(
        "--depth-topic",
        default="/camera/depth/image_raw",
        help="topic of the depth images (the CameraInfo goes to the camera_info topic beside --topic)",
    )
    parser.add_argument(
        "--images",
        metavar="DIR",
        help="write these frames (jpg/png, sorted by name) instead of a synthetic clip; stamps are spaced by --fps",
    )


def run(args: argparse.Namespace) -> int:
    from ..eval.benchmark import write_benchmark
    from ..eval.synthetic import WorldConfig

    if args.images:
        return _from_images(args)
    try:
        config = WorldConfig(width=args.size[0], height=args.size[1], frames=args.frames, fps=args.fps, seed=args.seed)
        bag, gt = write_benchmark(
            args.out,
            config,
            storage=args.storage,
            topic=args.topic,
            frame_id=args.frame_id,
            depth_topic=args.depth_topic if args.depth else None,
            progress=True,
        )
    except ValueError as exc:  # a bad --size, --frames or --fps
        raise UsageError(str(exc)) from None
    depth = f", depth on {args.depth_topic}" if args.depth else ""
    print(f"wrote {bag} ({args.storage}, {args.frames} frames on {args.topic}{depth}) and {gt}")
    return 0


def _from_images(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from ..eval.bags import write_camera_bag

    files = sorted(p for p in Path(args.images).glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise UsageError(f"no .jpg/.png frames in {args.images}")
    step_ns = round(1e9 / args.fps)
    frames = ((i * step_ns, np.asarray(Image.open(f).convert("RGB"))) for i, f in enumerate(files))
    count = write_camera_bag(args.out, frames, topic=args.topic, frame_id=args.frame_id, storage=args.storage)
    print(f"wrote {args.out} ({args.storage}, {count} frames from {args.images} on {args.topic})")
    return 0
