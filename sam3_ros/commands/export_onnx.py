"""``sam3-ros export-onnx``: the vision encoder (ViT + both necks, what the engine's encoder backend
computes) as an ONNX file with a fixed input shape, checked against torch with onnxruntime (CPU, fp32)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from . import CommandFailed

TOLERANCE = 1e-3  # max error relative to each output's scale, fp32 ONNX vs fp32 torch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default="tiny-random",
        help="built-in model name (tiny-random, sam3-random) or a local model directory",
    )
    parser.add_argument("--out", type=Path, required=True, help="the ONNX file to write")
    parser.add_argument("--image-size", type=int, default=0, help="input side in pixels (0 = the model's own)")
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..engine.backends.onnx_export import export_encoder, relative_errors
    from ..engine.loading import ModelLoadError, load_model

    try:
        loaded = load_model(args.model, "cpu", torch.float32, args.image_size)
    except ModelLoadError as exc:
        raise CommandFailed(str(exc)) from None
    size = int(loaded.model.tracker_model.image_size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    layout = export_encoder(loaded.model, size, args.out)
    print(
        f"sam3-ros export-onnx: {args.model} encoder, input (1, 3, {size}, {size}), {len(layout.output_names())} "
        f"outputs -> {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - start:.1f} s)"
    )
    if args.no_check:
        return 0
    errors = relative_errors(loaded.model, args.out, size)
    print(f"{'output':<20} {'max rel. error vs torch (onnxruntime CPU, fp32)':>48}")
    for name, error in errors.items():
        print(f"{name:<20} {error:>48.3g}")
    worst = max(errors.values())
    ok = worst < TOLERANCE
    print(f"max relative error {worst:.3g} ({'<' if ok else '>='} {TOLERANCE}): {'ok' if ok else 'FAILED'}")
    if not ok:
        raise CommandFailed(f"the ONNX encoder's outputs are off by {worst:.3g} (limit {TOLERANCE})")
    return 0
