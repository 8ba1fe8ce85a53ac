"""``sam3-ros train-toy``: train the small built-in model on the synthetic concept world.

Writes a transformers model directory (fp16 weights, tokenizer, ``training.json`` with the step counts
that repeat the run exactly, ``loss.png``). Copied into ``sam3_ros/models/toy/`` it becomes the built-in
``toy`` model; none is committed yet (see README, "Built-in models").
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import CommandFailed, UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        default="toy_out",
        help="output directory: the trained model (transformers format); with --probe, probe.json",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument(
        "--minutes",
        type=float,
        default=0.0,
        help="time budget for all phases; detector and tracker step counts follow from the "
        "measured speed (0: use --detector-steps and --tracker-steps)",
    )
    parser.add_argument(
        "--vision-steps",
        type=int,
        default=3000,
        help="steps of the vision encoder's concept pretraining (also with --minutes)",
    )
    parser.add_argument(
        "--binding-steps",
        type=int,
        default=500,
        help="steps of the text/DETR-encoder phrase-match phase on frozen vision (also with --minutes)",
    )
    parser.add_argument("--detector-steps", type=int, default=3000, help="steps of the detector phase")
    parser.add_argument(
        "--scoring-steps",
        type=int,
        default=600,
        help="steps of the scoring head's mask-quality phase (also with --minutes)",
    )
    parser.add_argument(
        "--exemplar-steps",
        type=int,
        default=600,
        help="steps of the geometry encoder's exemplar-box phase (also with --minutes)",
    )
    parser.add_argument("--tracker-steps", type=int, default=1500, help="steps of the tracker phase")
    parser.add_argument("--clip-length", type=int, default=6, help="frames per tracker training clip")
    parser.add_argument(
        "--tracker-vanishing",
        type=float,
        default=0.0,
        help="share of tracker clips in which an object visible at the start is gone later",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and of the training worlds")
    parser.add_argument(
        "--start-from",
        metavar="MODEL",
        default="",
        help="continue this trained model directory instead of fresh weights",
    )
    parser.add_argument(
        "--phases",
        default="",
        help="comma-separated phases to run, the others skipped (default: all six), e.g. scoring,exemplar",
    )
    parser.add_argument(
        "--probe",
        metavar="MODEL",
        default=None,
        help="instead of training, report where MODEL (toy or a trained directory) stands "
        "on held-out frames and clips: presence, localization, scores, tracking",
    )
    parser.add_argument("--probe-frames", type=int, default=120, help="frames the detector probe runs on")
    parser.add_argument("--probe-clips", type=int, default=12, help="clips the tracker probe runs on")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..engine.loading import ModelLoadError
    from ..training.trainer import PHASES, TrainConfig, train_toy

    if args.probe is not None:
        return _probe(args)

    steps = (
        args.vision_steps,
        args.binding_steps,
        args.detector_steps,
        args.scoring_steps,
        args.exemplar_steps,
        args.tracker_steps,
    )
    if args.minutes < 0 or min(steps) < 1:
        raise UsageError("--minutes must be >= 0 and the step counts >= 1")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {args.device} but CUDA is not available")
    try:
        config = TrainConfig(
            seed=args.seed,
            vision_steps=args.vision_steps,
            binding_steps=args.binding_steps,
            detector_steps=args.detector_steps,
            scoring_steps=args.scoring_steps,
            exemplar_steps=args.exemplar_steps,
            tracker_steps=args.tracker_steps,
            clip_length=args.clip_length,
            tracker_vanishing=args.tracker_vanishing,
            minutes=args.minutes,
            start_from=args.start_from,
            phases=tuple(p.strip() for p in args.phases.split(",") if p.strip()) or PHASES,
        )
    except ValueError as exc:  # a bad --phases, --tracker-vanishing or --clip-length
        raise UsageError(str(exc)) from None
    try:
        record = train_toy(Path(args.out), config, torch.device(args.device))
    except ModelLoadError as error:  # --start-from: missing or corrupt model directory
        raise CommandFailed(f"--start-from: {error}") from None
    steps = record["config"]
    print(
        f"trained in {record['seconds'] / 60:.1f} min ({steps['detector_steps']} detector + "
        f"{steps['tracker_steps']} tracker steps) -> {args.out}"
    )
    print(
        f"repeat exactly: sam3-ros train-toy --seed {args.seed} --vision-steps {steps['vision_steps']} "
        f"--binding-steps {steps['binding_steps']} --detector-steps {steps['detector_steps']} "
        f"--scoring-steps {steps['scoring_steps']} --exemplar-steps {steps['exemplar_steps']} "
        f"--tracker-steps {steps['tracker_steps']}"
        + (f" --clip-length {config.clip_length}" if config.clip_length != TrainConfig.clip_length else "")
        + (f" --tracker-vanishing {config.tracker_vanishing}" if config.tracker_vanishing else "")
        + (f" --start-from {args.start_from}" if args.start_from else "")
        + (f" --phases {','.join(config.phases)}" if config.phases != PHASES else "")
    )
    return 0


def _probe(args: argparse.Namespace) -> int:
    import json

    from ..engine.loading import ModelLoadError, load_model
    from ..training.probe import probe_model

    if args.probe_frames < 1 or args.probe_clips < 1:
        raise UsageError("--probe-frames and --probe-clips must be >= 1")
    try:
        loaded = load_model(args.probe, device=args.device)
    except ModelLoadError as error:
        raise CommandFailed(str(error)) from None
    report = probe_model(loaded, frames=args.probe_frames, clips=args.probe_clips)
    print(report.table())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "probe.json").write_text(json.dumps({"model": args.probe, **vars(report)}, indent=2) + "\n")
    print(f"-> {out / 'probe.json'}")
    return 0
