"""``sam3-ros bench engine``: the engine vs the transformers streaming loop on the same frames.

Both run in one process on the same weights and frames (moving synthetic shapes), with the same
thresholds, frame by frame in turn; the reference runs its own NMS and hole filling, with its hub kernel's
functions computed on the host (``CvUtilsOnHost``). Prints ms/frame (median, p99) per
stage, frames/s and the ratio, and the bytes each side holds for its stream after the warm-up and at the
end. The reference's stages are its ``Sam3VideoModel`` steps (its "encoder" is the rest of its step,
preprocessing included).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from . import UsageError

WARMUP = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="tiny-random", help="built-in model name or local model directory")
    parser.add_argument("--objects", type=int, default=8, help="objects tracked (detections start them up to this cap)")
    parser.add_argument("--frames", type=int, default=60, help="frames per implementation (first 5 are warm-up)")
    parser.add_argument("--size", default="112x112", help="source frame size WxH")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "tensorrt", "compile", "eager"),
        help="vision encoder backend of the engine",
    )
    parser.add_argument("--json", type=Path, help="write the results here")


def moving_shapes(n: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` RGB frames: a textured background with a disc and two boxes moving at different speeds."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 60, (height, width, 3)).astype(np.uint8)
    yy, xx = np.mgrid[:height, :width]
    r = max(min(height, width) // 8, 2)
    frames = []
    for t in range(n):
        img = background.copy()
        cy, cx = (height * 0.35 + t) % height, (width * 0.27 + 0.5 * t) % width
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = (230, 40, 40)
        x0 = (width // 10 + 2 * t) % max(width - 2 * r, 1)
        img[int(height * 0.55) : int(height * 0.55) + 2 * r, x0 : x0 + 2 * r] = (40, 220, 60)
        y0 = (height // 20 + t) % max(height - 2 * r, 1)
        img[y0 : y0 + int(1.3 * r), int(width * 0.72) : int(width * 0.72) + int(1.4 * r)] = (50, 60, 240)
        frames.append(img)
    return frames


def device_name(device: str) -> str:
    """Human-readable name of the device that ran the benchmark."""
    import os

    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    model = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU: {model} ({len(os.sched_getaffinity(0))} cores, torch threads {torch.get_num_threads()})"


def _stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {"p50": float(np.median(a)), "p99": float(np.percentile(a, 99))}


def _session_bytes(session) -> int:
    """Bytes of the storages behind the tensors the reference session keeps (stored frames and per-object
    outputs), each storage once however many views of it are kept."""
    import torch

    seen, total = set(), 0

    def visit(x):
        nonlocal total
        if torch.is_tensor(x):
            storage = x.untyped_storage()
            if storage.data_ptr() not in seen:
                seen.add(storage.data_ptr())
                total += storage.nbytes()
        elif isinstance(x, dict):
            for v in x.values():
                visit(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                visit(v)

    visit(session.processed_frames or {})
    visit(session.output_dict_per_obj)
    return total


class _Timings:
    """Per-frame ms (after ``WARMUP``), per-stage ms, objects per frame, and the bytes held after the
    warm-up and at the end of ``frames`` frames."""

    def __init__(self, frames: int):
        self.frames, self.total, self.stages, self.counts, self.held = frames, [], {}, [], []

    def add(self, t: int, ms: float, stages: dict[str, float], count: int, held) -> None:
        if t >= WARMUP:
            self.total.append(ms)
            for stage, value in stages.items():
                self.stages.setdefault(stage, []).append(value)
            self.counts.append(count)
        if t + 1 in (WARMUP, self.frames):
            self.held.append(held())


class EngineRun:
    """Our engine on the benchmark's frames, one ``step`` per frame."""

    def __init__(self, engine, frames: int, device):
        self.engine, self.timings = engine, _Timings(frames)
        self.sync = _sync(device)

    def step(self, t: int, image: np.ndarray) -> None:
        from ..engine import Frame

        self.sync()
        start = time.perf_counter()
        out = self.engine.step(Frame(image, stamp_ns=t))
        self.sync()
        self.timings.add(t, (time.perf_counter() - start) * 1000, out.timings_ms, len(out), self.engine.tensor_bytes)


class ReferenceRun:
    """The transformers streaming loop on the same frames. Preprocessing and the upsampling of its masks to
    the source size are included, as ``Engine.step`` does them."""

    def __init__(self, loaded, settings, phrases: list[str], frames: int, device):
        from ..engine.transformers_loop import ReferenceLoop

        self.loaded, self.device, self.timings = loaded, device, _Timings(frames)
        self.dtype = next(loaded.model.parameters()).dtype
        self.reference = ReferenceLoop(loaded, settings, phrases)
        self.sync = _sync(device)

    def step(self, t: int, image: np.ndarray) -> None:
        import torch

        from ..engine.mask_ops import logits_to_masks
        from ..engine.preprocess import to_pixels

        height, width = image.shape[:2]
        self.sync()
        start = time.perf_counter()
        pixels = to_pixels(torch.from_numpy(image).to(self.device), self.loaded.model.config.image_size, self.dtype)
        masks = self.reference.step(pixels)
        upsample = time.perf_counter()
        if masks:
            logits_to_masks(torch.stack(list(masks.values())), (height, width))
        self.sync()
        end = time.perf_counter()
        self.reference.timings_ms["output"] += (end - upsample) * 1000
        self.timings.add(
            t,
            (end - start) * 1000,
            self.reference.timings_ms,
            len(masks),
            lambda: _session_bytes(self.reference.session),
        )


def _sync(device):
    import torch

    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def run(args: argparse.Namespace) -> int:
    import torch
    from transformers.utils import logging as hf_logging

    from ..engine import ConceptPrompt, load_engine, load_model
    from ..engine.engine import resolve_dtype
    from ..settings import Settings

    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size must be WxH, got {args.size!r}") from None
    if args.objects < 1 or args.frames <= WARMUP:
        raise UsageError(f"--objects must be >= 1 and --frames > {WARMUP}")
    hf_logging.set_verbosity_error()  # the reference warns on every frame that hits max_num_objects
    settings = Settings.default(
        {
            "model": args.model,
            "devices": [args.device],
            "precision": args.precision,
            "backend": args.backend,
            "tracking.max_objects": args.objects,
            "tracking.keep_alive_frames": 100000,
            # every detection above 0 may start an object, until `objects` are tracked on both sides
            "detection.score_threshold": 0.0,
            "detection.new_object_threshold": 0.0,
            "tracking.assoc_iou_threshold": 1.0,
            "tracking.track_assoc_iou_threshold": 0.0,
        }
    )
    device = torch.device(args.device)
    loaded = load_model(args.model, device, resolve_dtype(settings, device))
    frames = moving_shapes(args.frames, height, width)
    phrases = ["object"]
    engine = load_engine(settings, loaded)
    engine.set_prompt(ConceptPrompt(phrases=phrases))
    runs = [EngineRun(engine, args.frames, device), ReferenceRun(loaded, settings, phrases, args.frames, device)]
    for t, image in enumerate(frames):  # interleaved: a machine whose speed drifts slows both alike
        for impl in runs:
            impl.step(t, image)

    def entry(impl, timings):
        total = timings.total
        return {
            "impl": impl,
            "fps": 1000.0 / float(np.median(total)),
            "ms_p50": _stats(total)["p50"],
            "ms_p99": _stats(total)["p99"],
            "stages": {k: _stats(v) for k, v in timings.stages.items()},
            "objects_median": float(np.median(timings.counts)),
            "tensor_bytes": {
                f"after_{WARMUP}_frames": timings.held[0],
                f"after_{args.frames}_frames": timings.held[-1],
            },
        }

    ours, ref = entry("sam3_ros", runs[0].timings), entry("reference", runs[1].timings)
    result = {
        "device": device_name(args.device),
        "model": args.model,
        "backend": engine.encoder.name,
        "objects": args.objects,
        "frames": args.frames,
        "size": f"{width}x{height}",
        "precision": str(engine.dtype).replace("torch.", ""),
        "results": [ours, ref],
        "speedup": ref["ms_p50"] / ours["ms_p50"],
    }
    _print(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _print(result: dict) -> None:
    print(
        f"device: {result['device']}\nmodel: {result['model']}  backend: {result['backend']}  "
        f"objects: {result['objects']}  "
        f"frames: {result['frames']}  size: {result['size']}  precision: {result['precision']}"
    )
    print(
        f"{'impl':<10} {'stage':<11} {'ms p50':>8} {'ms p99':>8} {'fps':>7} {'objects':>7} "
        f"{'bytes held (warm-up -> end)':>30}"
    )
    for r in result["results"]:
        held = list(r["tensor_bytes"].values())
        print(
            f"{r['impl']:<10} {'total':<11} {r['ms_p50']:>8.2f} {r['ms_p99']:>8.2f} {r['fps']:>7.1f} "
            f"{r['objects_median']:>7.0f} {held[0]:>14,} -> {held[-1]:>12,}"
        )
        for stage in ("preprocess", "encoder", "detector", "tracker", "merge", "spawn", "output"):
            if stage in r["stages"]:
                s = r["stages"][stage]
                print(f"{'':<10} {stage:<11} {s['p50']:>8.2f} {s['p99']:>8.2f}")
    print(f"speedup (reference ms p50 / ours ms p50): {result['speedup']:.2f}x")
