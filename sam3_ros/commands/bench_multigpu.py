"""``sam3-ros bench multigpu``: frames/s vs tracked objects vs worker processes (``placement: objects``).

For each object count, the single-process engine runs first (the baseline, "0 workers"), then the sharded
engine with each number of worker processes, on the same frames. Objects are click-created (they never
expire) and the detector runs every frame on a prompt that admits no detection, so the object count stays
fixed. Communication is measured separately: the same collectives with the same sizes on dummy data,
workers otherwise idle. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from . import UsageError

WARMUP = 3
PROBES = 10
STAGES = ("encoder", "detector", "tracker", "merge", "comm")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="tiny-random", help="built-in model name or local model directory")
    parser.add_argument("--image-size", type=int, default=0, help="model input side (0 = the model's own)")
    parser.add_argument("--objects", default="2,8,16", help="comma-separated object counts")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker process counts")
    parser.add_argument(
        "--devices",
        default="cpu",
        help="comma-separated devices: the coordinator runs on the first, worker i on entry "
        "1 + i modulo the others (all on the first if only one is given), e.g. "
        "cuda:0,cuda:1,cuda:2",
    )
    parser.add_argument("--frames", type=int, default=20, help="timed frames per configuration (after warm-up)")
    parser.add_argument("--size", default="160x120", help="source frame size WxH")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--json", type=Path, help="write the results here")


def _ints(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--{what}: expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"--{what}: expected positive integers, got {text!r}")
    return values


def _measure(engine, objects: int, frames: list[np.ndarray], sync) -> dict:
    """Track ``objects`` click-created objects over ``frames``; per-frame wall times and stage medians."""
    from ..engine import ConceptPrompt, Frame

    engine.reset()
    engine.set_prompt(ConceptPrompt(phrases=["thing"]))
    engine.step(Frame(frames[0]))
    h, w = frames[0].shape[:2]
    rng = np.random.default_rng(objects)
    for _ in range(objects):
        engine.add_points(None, [[float(rng.uniform(0, w - 1)), float(rng.uniform(0, h - 1))]], [1])
    walls: list[float] = []
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    for i, rgb in enumerate(frames[1:]):
        start = time.perf_counter()
        out = engine.step(Frame(rgb))
        sync()
        if i < WARMUP:
            continue
        if len(out) != objects:
            raise RuntimeError(f"expected {objects} objects, the engine reports {len(out)}")
        walls.append((time.perf_counter() - start) * 1e3)
        for stage in STAGES:
            stages[stage].append(out.timings_ms.get(stage, 0.0))
    walls_a = np.asarray(walls)
    return {
        "objects": objects,
        "fps": float(1e3 / np.median(walls_a)),
        "p50_ms": float(np.median(walls_a)),
        "p99_ms": float(np.percentile(walls_a, 99)),
        "stages_ms": {s: float(np.median(v)) for s, v in stages.items()},
    }


def run(args: argparse.Namespace) -> int:
    import torch

    from ..engine import load_engine, load_model
    from ..engine.distributed import load_sharded_engine
    from ..engine.engine import resolve_device, resolve_dtype
    from ..settings import Settings
    from .bench_engine import device_name, moving_shapes

    try:
        objects, workers = _ints(args.objects, "objects"), _ints(args.workers, "workers")
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    base = Settings.default(
        {
            "model": args.model,
            "image_size": args.image_size,
            "precision": args.precision,
            "devices": devices[:1],
            "detection.score_threshold": 1.0,
            "detection.new_object_threshold": 1.0,  # the detector admits nothing
            "tracking.max_objects": max(objects),
        }
    )
    device = resolve_device(base)
    dtype = resolve_dtype(base, device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    loaded = load_model(args.model, device, dtype, args.image_size)
    frames = moving_shapes(args.frames + WARMUP + 1, height, width)

    rows = []
    single = load_engine(base, loaded)
    for n in objects:
        rows.append({"workers": 0, **_measure(single, n, frames, sync)})
    del single
    for count in workers:
        pool = devices[1:] or devices[:1]
        placed = [pool[i % len(pool)] for i in range(count)]
        engine = load_sharded_engine(base.replace(devices=devices[:1] + placed, placement="objects"), loaded)
        try:
            for n in objects:
                row = {"workers": count, "devices": placed, **_measure(engine, n, frames, sync)}
                probes = [engine.probe_communication(n) for _ in range(PROBES)]
                row["comm_probe_ms"] = {"p50": float(np.median(probes)), "p99": float(np.percentile(probes, 99))}
                row["comm_bytes"] = engine.frame_traffic(n)["bytes"]
                rows.append(row)
        finally:
            engine.close()
    baseline = {r["objects"]: r["fps"] for r in rows if r["workers"] == 0}
    for r in rows:
        r["speedup"] = r["fps"] / baseline[r["objects"]]

    name = device_name(str(device))
    print(
        f"device: {name}; model {args.model}, input {loaded.model.tracker_model.image_size} px, {dtype}; "
        f"frames {width}x{height}; {args.frames} timed frames"
    )
    header = (
        f"{'workers':>7} {'objects':>7} {'fps':>7} {'p50 ms':>8} {'p99 ms':>8} {'x single':>8} "
        f"{'enc+det':>8} {'tracker':>8} {'comm in step':>12} {'comm alone':>10} {'MB/frame':>9}"
    )
    print(header)
    for r in rows:
        st = r["stages_ms"]
        probe = f"{r['comm_probe_ms']['p50']:10.2f}" if "comm_probe_ms" in r else f"{'-':>10}"
        mb = f"{r['comm_bytes'] / 1e6:9.2f}" if "comm_bytes" in r else f"{'-':>9}"
        print(
            f"{r['workers']:>7} {r['objects']:>7} {r['fps']:7.1f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} "
            f"{r['speedup']:8.2f} {st['encoder'] + st['detector']:8.1f} {st['tracker']:8.1f} "
            f"{st['comm']:12.2f} {probe} {mb}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "device": name,
                    "host": platform.node(),
                    "model": args.model,
                    "input_px": int(loaded.model.tracker_model.image_size),
                    "dtype": str(dtype),
                    "frame_size": [width, height],
                    "frames": args.frames,
                    "rows": rows,
                },
                indent=2,
            )
        )
        print(f"wrote {args.json}")
    return 0
