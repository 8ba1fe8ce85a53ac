"""``sam3-ros build-engine``: a TensorRT engine of the vision encoder, into the engine cache.

Exports the encoder to ONNX (or takes ``--onnx``), builds the engine (bf16/fp16 with attention and
normalization pinned to fp32), compares its features with fp32 torch on the GPU, and stores it in the
cache the ``tensorrt`` backend reads, keyed by GPU, compute capability, TensorRT version, precision,
input shape and weights. An engine whose features are off by more than the tolerance is not cached.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from . import CommandFailed, UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="tiny-random", help="built-in model name or a local model directory")
    parser.add_argument("--onnx", type=Path, help="an ONNX file from export-onnx (default: export now)")
    parser.add_argument("--precision", default="bf16", choices=("bf16", "fp16", "fp32"))
    parser.add_argument("--device", default="cuda", help="cuda or cuda:N (the GPU the engine is for)")
    parser.add_argument("--image-size", type=int, default=0, help="input side in pixels (0 = the model's own)")
    parser.add_argument("--cache-dir", type=Path, help="engine cache (default: $XDG_CACHE_HOME/sam3_ros/tensorrt)")


def run(args: argparse.Namespace) -> int:
    import io

    import torch

    from ..engine.backends.encoders import ENGINE_TOLERANCE, BackendUnavailable, engine_key, feature_errors
    from ..engine.backends.engine_cache import EngineCache
    from ..engine.backends.onnx_export import export_encoder
    from ..engine.backends.tensorrt_runtime import TensorRTRunner, build_serialized_engine
    from ..engine.backends.vision import VisionEncoder, reference_features
    from ..engine.loading import load_model

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"{args.device} requested but CUDA is not available")
    try:
        engine_key(args.model, device, args.precision, 1)  # TensorRT and CUDA here? (before loading the model)
    except BackendUnavailable as exc:
        raise UsageError(str(exc)) from None
    loaded = load_model(args.model, device, torch.float32, args.image_size)
    size = int(loaded.model.tracker_model.image_size)
    start = time.perf_counter()
    if args.onnx:
        onnx_bytes = args.onnx.read_bytes()
    else:
        buffer = io.BytesIO()
        export_encoder(loaded.model, size, buffer)
        onnx_bytes = buffer.getvalue()
    serialized = build_serialized_engine(onnx_bytes, args.precision)
    print(
        f"sam3-ros build-engine: {args.model} {args.precision} (1, 3, {size}, {size}) built in "
        f"{time.perf_counter() - start:.0f} s ({len(serialized) / 1e6:.0f} MB)"
    )
    reference = VisionEncoder(loaded.model).eval()
    names = reference_features(loaded.model, torch.zeros(1, 3, size, size, device=device))[1].output_names()
    pixels = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device) * 2 - 1
    errors = feature_errors(TensorRTRunner(serialized, device, names), reference, pixels, names)
    for name, error in errors.items():
        print(f"  {name:<20} max rel. error vs torch fp32: {error:.3g}")
    worst, limit = max(errors.values()), ENGINE_TOLERANCE[args.precision]
    if not worst <= limit:
        raise CommandFailed(f"features off by {worst:.3g} (limit {limit}): engine NOT cached")
    path = EngineCache(args.cache_dir).store(engine_key(args.model, device, args.precision, size), serialized)
    print(f"cached: {path}")
    return 0
