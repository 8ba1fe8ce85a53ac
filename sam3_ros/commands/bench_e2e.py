"""``sam3-ros bench e2e``: camera frames in, published InstanceArray out, through the node over DDS.

Same frames, same settings, one run: (1) in process, ``engine.step`` + ``instances_to_message`` (what
the node computes per frame, no transport); (2) the node in its own process over DDS-direct, lockstep
(publish a frame, wait for its InstanceArray): round trip seen by the camera, and the node's own
receive-to-publish latency; (3) optionally a camera at ``--rate`` Hz: frames sent and received by the node
(its /diagnostics count), frames it found missing in transport (from the camera's stamps), output rate,
stale drops, lag.
With ``--depth``, the in-process run also times the 3D step as the node runs it
(``pipeline.depth.locate_from_messages``: the depth ``Image`` and ``CameraInfo`` messages read, then per instance
inside its box) on each frame's instances and an aligned 16UC1 depth image (a noisy plane 2 m away, the synthetic
camera's intrinsics), in wall and CPU time, and apart from it the 3D messages (``Detection3DArray`` and the
instances' 3D fields); the JSON has how many objects got 3D (random-weight models' masks are speckle that erosion
leaves little of: ``--model toy`` gives object-like masks).
With ``--reference``, the transformers streaming loop runs on the same frames in the same process (its
masks upsampled to the source size; no message building), for the ratio. ``--objects N`` makes every
detection start an object until N are tracked (random-weight models score too low for the defaults).
Prints a table (median, p99, frames/s, ratio to the in-process time, device; per-stage CUDA-event times
and peak GPU memory on a GPU) and writes JSON.

Host-side figures: the engine's stages that are not network passes (``preprocess``, ``merge``, ``spawn``,
``output``) plus ``message`` (building the InstanceArray), per frame: the "host" row, and, with the node, what
the transport adds to a frame: per frame, the camera's round trip minus the node's own receive -> publish time
(the image's and the InstanceArray's way through DDS, serialization included), median over frames. The node's
receive -> publish minus the in-process time is printed as well; it compares two medians measured one after the
other, which on a shared machine differ by more than the transport does. The node's torch gets the in-process
thread count. Several ``--objects`` and ``--size``
values (comma-separated) measure each combination in process and print the host time as a scaling table
(the node runs for single values only), and the output stage alone on compact masks of a fixed pixel size
per combination. On CPU every stage is also given in CPU time of the process (what it costs when other jobs
share the cores; ``--threads 1`` keeps torch's waiting worker threads out of it). The JSON records the
machine's load average during the run and ``--note`` (what else the machine was doing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ..ros.names import private_domain_id
from . import CommandFailed

WARMUP = 5  # frames excluded from the statistics (first-call allocations, lazy imports)
HOST_STAGES = ("preprocess", "merge", "spawn", "output", "message")  # per-frame work that is not a network pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="tiny-random", help="built-in model name or a local model directory")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--frames", type=int, default=60, help="measured frames per mode (after warm-up)")
    parser.add_argument(
        "--size", default="128x96", help="camera image size WxH; several comma-separated: a scaling table"
    )
    parser.add_argument("--prompt", default="red circle, blue square", help="noun phrases, comma-separated")
    parser.add_argument(
        "--transport",
        choices=("dds", "rclpy"),
        default="dds",
        help="the node's transport: dds (DDS-direct, no ROS install) or rclpy (the lifecycle node, driven by an "
        "rclpy camera in this process; needs a sourced ROS 2 and this package's colcon build)",
    )
    parser.add_argument(
        "--large-images",
        action="store_true",
        help="rclpy: the node and this process's camera get the shipped Fast DDS profile for full-resolution "
        "images (config/fastdds_large_images.xml: shared memory between processes), as launch large_images:=true "
        "does (the DDS-direct node sizes its buffers itself)",
    )
    parser.add_argument("--rate", type=float, default=30.0, help="camera rate (Hz) of the streaming mode; 0 skips it")
    parser.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="extra node setting, e.g. detection.score_threshold=0.0 (repeatable)",
    )
    parser.add_argument(
        "--objects",
        default="0",
        help="track this many objects (every detection starts one until then); 0: the settings "
        "decide; several comma-separated: a scaling table",
    )
    parser.add_argument(
        "--backend", default="auto", choices=("auto", "tensorrt", "compile", "eager"), help="vision encoder backend"
    )
    parser.add_argument("--reference", action="store_true", help="also time the transformers streaming loop")
    parser.add_argument(
        "--depth", action="store_true", help="also time the 3D step from an aligned depth image (in process)"
    )
    parser.add_argument("--no-node", action="store_true", help="in-process only (no DDS node)")
    parser.add_argument("--json", metavar="PATH", help="write the results here")
    parser.add_argument("--note", default="", help="what else ran on the machine (kept in the JSON)")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads in process (0: torch's default); 1 keeps CPU times free of the spinning "
        "of idle worker threads when other jobs share the cores",
    )


def _frames(count: int, width: int, height: int):
    """Deterministic frames: noise background with two moving squares."""
    import numpy as np

    rng = np.random.default_rng(0)
    background = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    for i in range(count):
        frame = background.copy()
        s = max(min(width, height) // 5, 2)
        x = (i * 3) % max(width - s, 1)
        frame[height // 4 : height // 4 + s, x : x + s] = (220, 30, 30)
        frame[height // 2 : height // 2 + s, width - s - x // 2 : width - x // 2] = (30, 30, 220)
        yield frame


def _stats(values_ms: list[float], reference_ms: float | None = None) -> dict:
    values = np.asarray(values_ms, np.float64)
    median = float(np.median(values))
    return {
        "median_ms": median,
        "p99_ms": float(np.percentile(values, 99)),
        "fps": 1000.0 / median,
        "n": int(values.size),
        "ratio_to_in_process": median / reference_ms if reference_ms else 1.0,
    }


def _device_name(settings) -> str:
    import torch

    from ..engine.engine import resolve_device

    device = resolve_device(settings)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {os.cpu_count()} cores ({platform.processor() or platform.machine()})"


def _in_process(settings, frames, loaded, depth: bool = False) -> dict:
    """engine.step + instances_to_message per frame: ms, per-stage ms, objects, peak GPU memory; with ``depth``
    the 3D step's ms too."""
    import torch
    from tqdm import tqdm

    from ..engine import Frame, load_engine
    from ..engine.types import to_host
    from ..eval.synthetic_depth import synthetic_intrinsics
    from ..pipeline.depth import locate_from_messages
    from ..pipeline.messages import instances_to_message
    from ..pipeline.messages_3d import add_3d_to_instances, camera_info_message, depth_message, detections_3d_message

    engine = load_engine(settings, loaded)
    cuda = engine.device.type == "cuda"
    times, stages, cpu_stages, objects = [], {}, {}, []
    times_3d = {"wall": [], "cpu": [], "messages": [], "objects": []}  # 3D step, its CPU time, messages, objects
    depth_image = camera_info = None
    for i, rgb in enumerate(tqdm(frames, desc="in process", leave=False)):
        if i == WARMUP and cuda:
            torch.cuda.reset_peak_memory_stats(engine.device)
        start = time.perf_counter()
        instances = engine.step(Frame(image=rgb, stamp_ns=i + 1, frame_id="bench", camera="/bench"))
        built, built_cpu = time.perf_counter(), time.process_time()
        message = instances_to_message(instances)  # reads the masks back: the frame's GPU work is done here
        end, end_cpu = time.perf_counter(), time.process_time()
        times.append((end - start) * 1e3)
        if depth:
            if depth_image is None:
                height, width = rgb.shape[:2]
                plane = 2.0 + np.random.default_rng(1).normal(0.0, 0.004, (height, width))
                depth_image = depth_message(plane, i + 1, "bench")
                camera_info = camera_info_message(synthetic_intrinsics(width, height), i + 1, "bench")
            start, start_cpu = time.perf_counter(), time.process_time()
            located = locate_from_messages(depth_image, camera_info, rgb.shape[:2], instances, settings)
            located_at, located_cpu = time.perf_counter(), time.process_time()
            ids = np.asarray(to_host(instances.ids))
            add_3d_to_instances(message, ids, located)
            detections_3d_message(message, ids, located)
            times_3d["wall"].append((located_at - start) * 1e3)
            times_3d["cpu"].append((located_cpu - start_cpu) * 1e3)
            times_3d["messages"].append((time.perf_counter() - located_at) * 1e3)
            times_3d["objects"].append(int(located.valid.sum()))
        if i >= WARMUP:
            objects.append(len(instances))
            _add_frame(stages, {**instances.timings_ms, "message": (end - built) * 1e3})
            cpu_ms = getattr(instances.timings_ms, "cpu_ms", None)  # CPU only: the process's CPU time
            if cpu_ms is not None:
                _add_frame(cpu_stages, {**cpu_ms, "message": (end_cpu - built_cpu) * 1e3})
    peak = torch.cuda.max_memory_allocated(engine.device) if cuda else None
    host, host_cpu = stages.pop("host"), cpu_stages.pop("host", None)
    return {
        "times": times[WARMUP:],
        "times_3d": {kind: values[WARMUP:] for kind, values in times_3d.items()},
        "stages": {k: _stats(v)["median_ms"] for k, v in stages.items()},
        "cpu_stages": {k: _stats(v)["median_ms"] for k, v in cpu_stages.items()} or None,
        "host": host,
        "host_cpu": host_cpu,
        "objects_median": float(np.median(objects)),
        "gpu_peak_bytes": peak,
        "backend": engine.encoder.name,
    }


def torch_threads() -> int:
    """torch's intra-op threads in this process."""
    import torch

    return torch.get_num_threads()


def _add_frame(stages: dict, frame_stages: dict) -> None:
    """Append one frame's stage times (and their host sum) to ``stages``' lists."""
    for stage, ms in frame_stages.items():
        stages.setdefault(stage, []).append(ms)
    stages.setdefault("host", []).append(sum(frame_stages.get(s, 0.0) for s in HOST_STAGES))


def _start_node(domain: int, overrides: list[str], transport: str = "dds") -> subprocess.Popen:
    # the node's torch gets this process's thread count, so that its receive -> publish time and the in-process
    # time differ by the transport only
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "OMP_NUM_THREADS": str(torch_threads())}
    sets = [arg for text in overrides for arg in ("--set", text)]
    # the installed command, not `python -m` (which puts the working directory first on sys.path: from a source
    # checkout that would shadow the colcon install's package, which alone has the generated sam3_ros.msg)
    command = Path(sys.executable).with_name("sam3-ros")
    program = [str(command)] if command.exists() else [sys.executable, "-m", "sam3_ros.cli"]
    return subprocess.Popen(
        [*program, "node", "--transport", transport, *sets, "--log-level", "warning"],
        env=env,
    )


def _lockstep(client, frames) -> tuple[list[float], list[float]]:
    from tqdm import tqdm

    round_trips, latencies = [], []
    for i, rgb in enumerate(tqdm(frames, desc="through the node", leave=False)):
        stamp = i + 1
        start = time.perf_counter()
        client.publish_image("/bench/image_raw", rgb, stamp, frame_id="bench", qos="reliable")
        message = client.wait_for_instances(stamp, timeout=60)
        round_trips.append((time.perf_counter() - start) * 1e3)
        latencies.append(float(message.latency_ms))
    return round_trips[WARMUP:], latencies[WARMUP:]


def _received_by_node(client, camera: str) -> int:
    """The node's count of images received on ``camera`` (its next /diagnostics)."""
    message = client.wait_for_diagnostics(10)
    status = next(s for s in message.status if s.name.endswith(f": {camera}"))
    return int(next(kv.value for kv in status.values if kv.key == "received"))


def _stream(client, frames, rate: float) -> dict:
    from ..pipeline.messages import time_to_ns

    camera = "/bench/image_raw"
    received_before = _received_by_node(client, camera)
    client.clear()
    sent = {}
    period_ns, base = int(1e9 / rate), 1000 * 1_000_000_000  # the camera's clock; far from the lockstep stamps
    for i, rgb in enumerate(frames):
        stamp = base + i * period_ns
        sent[stamp] = time.perf_counter()
        client.publish_image(camera, rgb, stamp, frame_id="bench", qos="reliable")
        time.sleep(max(1.0 / rate - (time.perf_counter() - sent[stamp]), 0.0))
    last = client.wait_for_instances(max(sent), timeout=60)
    outputs = [m for m in client.received if time_to_ns(m.header.stamp) in sent]
    duration = time.perf_counter() - sent[base]
    received = _received_by_node(client, camera) - received_before
    return {
        "rate_hz": rate,
        "sent": len(sent),
        "received": received,
        "missed_in_transport": int(last.missed_frames),
        "published": len(outputs),
        "output_fps": len(outputs) / duration,
        "dropped_stale": int(last.dropped_frames),
        "latency_p50_ms": _stats([m.latency_ms for m in outputs])["median_ms"],
    }


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    return int(width), int(height)


def _overrides(args, objects: int) -> list[str]:
    overrides = [
        f"model={args.model}",
        f"devices=[{args.device}]",
        f"prompt.text={args.prompt}",
        f"backend={args.backend}",
        "input.topics=[/bench/image_raw]",
        "input.qos=reliable",
        "input.qos_depth=1",
    ]
    if objects > 0:  # the same settings bench engine uses to hold `objects` objects
        overrides += [
            f"tracking.max_objects={objects}",
            "tracking.keep_alive_frames=100000",
            "detection.score_threshold=0.0",
            "detection.new_object_threshold=0.0",
            "tracking.assoc_iou_threshold=1.0",
            "tracking.track_assoc_iou_threshold=0.0",
        ]
    return overrides + args.set


def run(args: argparse.Namespace) -> int:
    from ..engine import load_model
    from ..engine.engine import resolve_device, resolve_dtype
    from ..settings import Settings, parse_override
    from .bench_engine import ReferenceRun

    from ..ros.host_memory import keep_freed_frames

    keep_freed_frames()  # as the node does: the camera's and the in-process frames' buffers are reused
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    sizes = [_size(text) for text in args.size.split(",")]
    counts = [int(text) for text in args.objects.split(",")]
    load_before = os.getloadavg()
    overrides = _overrides(args, counts[0])
    settings = Settings.default(dict(parse_override(text) for text in overrides))
    count = args.frames + WARMUP
    device = resolve_device(settings)
    loaded = load_model(settings.model, device, resolve_dtype(settings, device), settings.image_size)
    if len(sizes) * len(counts) > 1:
        return _scaling(args, sizes, counts, loaded, load_before)
    (width, height), objects = sizes[0], counts[0]
    ours = _in_process(settings, list(_frames(count, width, height)), loaded, args.depth)
    rows = {"in process: engine.step + message": _stats(ours["times"])}
    base = rows["in process: engine.step + message"]["median_ms"]
    rows["host: " + " + ".join(HOST_STAGES)] = _stats(ours["host"], base)
    if ours["host_cpu"] is not None:
        rows["host, CPU time of the process"] = _stats(ours["host_cpu"], base)
    if args.depth:
        rows["in process: 3D step (depth)"] = _stats(ours["times_3d"]["wall"], base)
        rows["3D step, CPU time of the process"] = _stats(ours["times_3d"]["cpu"], base)
        rows["3D messages (Detection3DArray, Instance)"] = _stats(ours["times_3d"]["messages"], base)
    if args.reference:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # the reference warns on every frame that hits max_num_objects
        ref = ReferenceRun(loaded, settings, settings.prompt.phrases(), count, device)
        for t, image in enumerate(_frames(count, width, height)):
            ref.step(t, image)
        rows["reference loop (transformers), in process"] = _stats(ref.timings.total, base)
        rows["reference loop (transformers), in process"]["objects_median"] = float(np.median(ref.timings.counts))
    del loaded
    result = {
        "benchmark": "e2e",
        "device": _device_name(settings),
        "model": args.model,
        "size": [width, height],
        "backend": ours["backend"],
        "precision": str(resolve_dtype(settings, device)).replace("torch.", ""),
        "objects": objects,
        "objects_median": ours["objects_median"],
        "objects_with_3d_median": float(np.median(ours["times_3d"]["objects"])) if args.depth else None,
        "prompt": settings.prompt.phrases(),
        "torch_threads": torch_threads(),
        "frames": args.frames,
        "stages_median_ms": ours["stages"],
        "stages_cpu_median_ms": ours["cpu_stages"],
        "gpu_peak_bytes": ours["gpu_peak_bytes"],
        "rows": rows,
        "transport_ms": None,
        "node_minus_in_process_ms": None,
        "stream": None,
        "note": args.note,
    }
    if not args.no_node and not _through_node(args, overrides, count, width, height, rows, result):
        raise CommandFailed("the node did not come up")
    result["load_average"] = {"before": load_before, "after": os.getloadavg()}
    _report(args, result)
    return 0


def _scaling(args, sizes, counts, loaded, load_before) -> int:
    """In process for every (size, objects): the host time per frame as a table (objects x sizes); then the
    output stage alone on compact masks of a fixed pixel size (random-weight models give masks spread over
    the whole frame, so their boxes are the frame)."""
    from ..settings import Settings, parse_override

    results = []
    for objects in counts:
        settings = Settings.default(dict(parse_override(text) for text in _overrides(args, objects)))
        for width, height in sizes:
            ours = _in_process(settings, list(_frames(args.frames + WARMUP, width, height)), loaded)
            results.append(
                {
                    "size": [width, height],
                    "objects": objects,
                    "objects_median": ours["objects_median"],
                    "host": _stats(ours["host"]),
                    "in_process": _stats(ours["times"]),
                    "host_cpu": _stats(ours["host_cpu"]) if ours["host_cpu"] else None,
                    "stages_median_ms": ours["stages"],
                    "stages_cpu_median_ms": ours["cpu_stages"],
                }
            )
    compact = [
        {"size": [width, height], "objects": objects, **_compact_output(objects, (height, width), args.frames)}
        for objects in counts
        for width, height in sizes
    ]
    result = {
        "benchmark": "e2e-scaling",
        "device": _device_name(settings),
        "model": args.model,
        "frames": args.frames,
        "torch_threads": torch_threads(),
        "host_stages": list(HOST_STAGES),
        "results": results,
        "compact_output": {"mask_radius_px": COMPACT_RADIUS, "low_res": COMPACT_LOW_RES, "results": compact},
        "note": args.note,
        "load_average": {"before": load_before, "after": os.getloadavg()},
    }
    print(f"sam3-ros bench e2e: {args.model}, {args.frames} frames per cell, device: {result['device']}")
    cpu = results[0]["host_cpu"] is not None
    _table(
        "host ms per frame (median wall; " + " + ".join(HOST_STAGES) + "), objects tracked x camera size",
        sizes,
        counts,
        results,
        lambda r: f"{r['host']['median_ms']:9.2f} ({r['objects_median']:.0f})",
    )
    if cpu:
        _table(
            "host CPU ms per frame (median CPU time of the process)",
            sizes,
            counts,
            results,
            lambda r: f"{r['host_cpu']['median_ms']:9.2f} ({r['objects_median']:.0f})",
        )
    _table(
        f"output stage alone, compact masks (discs of {COMPACT_RADIUS} px radius from {COMPACT_LOW_RES}x"
        f"{COMPACT_LOW_RES} logits): median CPU ms",
        sizes,
        counts,
        compact,
        lambda r: f"{r['cpu_ms']:14.2f}",
    )
    for r in results:
        stages = ", ".join(f"{k} {v:.2f}" for k, v in r["stages_median_ms"].items())
        print(f"{r['size'][0]}x{r['size'][1]}, {r['objects']} objects: {stages}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


COMPACT_RADIUS = 60  # output pixels: an object of ~11,000 pixels, whatever the camera size
COMPACT_LOW_RES = 288  # SAM 3's mask logits are 288x288


def _table(title: str, sizes, counts, cells: list[dict], cell) -> None:
    """Print ``cells`` (dicts with "size" and "objects") as rows of objects and columns of sizes."""
    print(title + ":")
    print(f"{'objects':>8s} " + " ".join(f"{f'{w}x{h}':>14s}" for w, h in sizes))
    for objects in counts:
        print(f"{objects:8d} " + " ".join(cell(r) for r in cells if r["objects"] == objects))


def _compact_output(objects: int, size: tuple[int, int], frames: int) -> dict:
    """``output_masks`` (the engine's output stage) on ``objects`` discs of ``COMPACT_RADIUS`` pixels at random
    places in a frame of ``size``: median wall and CPU ms over ``frames`` calls."""
    import torch

    from ..engine.mask_runs import output_masks

    rng = np.random.default_rng(objects)
    height, width = size
    ys = (np.arange(COMPACT_LOW_RES) + 0.5) * height / COMPACT_LOW_RES
    xs = (np.arange(COMPACT_LOW_RES) + 0.5) * width / COMPACT_LOW_RES
    centers = rng.random((objects, 2)) * [height, width]
    distance = np.hypot(ys[None, :, None] - centers[:, 0, None, None], xs[None, None, :] - centers[:, 1, None, None])
    logits = torch.from_numpy((COMPACT_RADIUS - distance).astype(np.float32) / 10)
    scores = torch.from_numpy(rng.random(objects).astype(np.float32))
    groups = torch.from_numpy(rng.integers(0, 2, objects))
    output_masks(logits, scores, groups, size)  # warm-up: per-size tables and the one-time check of the emulation
    wall, cpu = [], []
    for _ in range(frames):
        start, start_cpu = time.perf_counter(), time.process_time()
        output_masks(logits, scores, groups, size)
        wall.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - start_cpu) * 1e3)
    return {"wall_ms": float(np.median(wall)), "cpu_ms": float(np.median(cpu))}


def _through_node(args, overrides, count, width, height, rows, result) -> bool:
    """The node in its own process (``--transport``): lockstep round trips, then the camera stream (into ``rows``
    and ``result``); False if the node did not come up."""
    domain = private_domain_id()
    if args.large_images and args.transport == "rclpy":  # read when a participant is made: before both start
        from ..resources import shared_file

        profile = str(shared_file("config", "fastdds_large_images.xml"))
        os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"] = os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = profile
    node = _start_node(domain, overrides, args.transport)
    if args.transport == "rclpy":
        from ..ros.rclpy_camera import RclpyCamera
        from ..ros.rclpy_node import NODE_NAME

        client = RclpyCamera(domain)
    else:
        from ..ros.client import PerceptionClient

        client = PerceptionClient(domain=domain)
    try:
        if args.transport == "rclpy" and not client.activate(
            f"/{NODE_NAME}", alive=lambda: node.poll() is None
        ):  # loads the model
            return False
        if not client.wait_for_node(["/bench/image_raw"], timeout=600, qos="reliable"):  # compile warm-up
            return False
        round_trips, latencies = _lockstep(client, list(_frames(count, width, height)))
        stream = _stream(client, list(_frames(count, width, height)), args.rate) if args.rate > 0 else None
    finally:
        client.close()
        node.send_signal(signal.SIGTERM)
        node.wait(10)
    base = rows["in process: engine.step + message"]["median_ms"]
    over = "node over DDS" if args.transport == "dds" else "node over rclpy"
    rows[f"{over}: camera round trip"] = _stats(round_trips, base)
    rows[f"{over}: receive -> publish"] = _stats(latencies, base)
    rows[f"{over}: round trip - receive -> publish"] = _stats(np.subtract(round_trips, latencies), base)
    result["transport"] = args.transport
    result["large_images"] = args.large_images
    result["transport_ms"] = rows[f"{over}: round trip - receive -> publish"]["median_ms"]
    result["node_minus_in_process_ms"] = rows[f"{over}: receive -> publish"]["median_ms"] - base
    result["stream"] = stream
    return True


def _report(args, result: dict) -> None:
    width, height = result["size"]
    rows, stream = result["rows"], result["stream"]
    print(
        f"sam3-ros bench e2e: {args.model}, {width}x{height}, {args.frames} frames, backend {result['backend']}, "
        f"{result['precision']}, objects {result['objects_median']:.0f}, device: {result['device']}"
    )
    print(f"{'':44s} {'median ms':>10s} {'p99 ms':>9s} {'frames/s':>9s} {'x in-process':>12s}")
    for name, row in rows.items():
        print(
            f"{name:44s} {row['median_ms']:10.2f} {row['p99_ms']:9.2f} {row['fps']:9.1f} "
            f"{row['ratio_to_in_process']:12.2f}"
        )
    if stream:
        print(
            f"camera at {stream['rate_hz']:.0f} Hz: {stream['received']}/{stream['sent']} frames received by the "
            f"node ({stream['missed_in_transport']} missed in transport), {stream['published']} published "
            f"({stream['output_fps']:.1f}/s), {stream['dropped_stale']} stale drops, "
            f"latency p50 {stream['latency_p50_ms']:.1f} ms"
        )
    if result["transport_ms"] is not None:
        print(
            f"transport (per frame: camera round trip minus the node's receive -> publish): "
            f"{result['transport_ms']:.2f} ms; node receive -> publish minus in process (two medians measured "
            f"apart): {result['node_minus_in_process_ms']:.2f} ms"
        )
    stages = ", ".join(f"{k} {v:.2f}" for k, v in result["stages_median_ms"].items())
    print(f"in-process stages (median ms): {stages}")
    if result["stages_cpu_median_ms"]:
        stages = ", ".join(f"{k} {v:.2f}" for k, v in result["stages_cpu_median_ms"].items())
        print(f"in-process stages (median CPU ms of the process): {stages}")
    if result["gpu_peak_bytes"] is not None:
        print(f"peak GPU memory (in process, after warm-up): {result['gpu_peak_bytes'] / 2**20:.0f} MiB")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
