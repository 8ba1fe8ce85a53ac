"""``sam3-ros bench kernels``: CUDA kernels vs torch references vs Meta's broadcast IoU; table + JSON.

"broadcast" is transformers' own ``mask_iou`` from the Sam3 video model (N x M x H x W boolean AND/OR);
"int8_gemm" a candidate IoU by exact int8 GEMM. Every result is checked against the reference's.
Sizes are those the engine meets at its limits (mask IoU N = M = 16, 64, 200 at 288x288; NMS over 200; merge of 200
detections with 64 tracks; RLE of 32 masks at 720p and 1080p). Each row is one call as the engine makes
it, inputs already on the device: CUDA-event time on a GPU, wall time on a CPU, after warm-up calls.
Without CUDA the kernel rows say why they are unavailable.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import time
from pathlib import Path

from . import UsageError

# Targets for the kernel rows: median milliseconds, and at least this speedup over the reference.
TARGET_MS = {
    "mask_iou 200x200": 0.1,
    "mask_nms 200": 0.1,
    "nms_from_iou 200": 0.1,
    "merge_plan 200x64": 0.1,
    "rle 32x1080x1920": 1.0,
}
TARGET_SPEEDUP = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per row (default: 200 GPU, 5 CPU)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls before each row")
    parser.add_argument(
        "--row-seconds", type=float, default=3.0, help="stop a row's timed calls after this long (at least 3 calls)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of the command")
    parser.add_argument(
        "--broadcast-limit-gb",
        type=float,
        default=None,
        help="skip broadcast-IoU rows whose N*M*H*W boolean intermediate is larger (default: 16 GPU, 1 CPU)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON file (default: bench/results/kernels-<device>.json)"
    )


def _device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.machine()} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def _timer(device, repeats: int, warmup: int, row_seconds: float):
    """Returns ``time_ms(fn) -> list of per-call milliseconds`` (``repeats`` calls, fewer past ``row_seconds``)."""
    import torch

    def time_ms(fn) -> list[float]:
        for _ in range(warmup):
            fn()
        times = []
        deadline = time.perf_counter() + row_seconds
        for _ in range(repeats):
            if len(times) >= 3 and time.perf_counter() > deadline:
                break
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
        return times

    return time_ms


def _blobs(n: int, h: int, w: int, device, seed: int):
    """Elliptic masks of random size and place (bool, on ``device``)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    centre = torch.rand(n, 2, generator=g) * torch.tensor([h, w])
    radius = 1 + torch.rand(n, 2, generator=g) * torch.tensor([h, w]) / 4
    ys = torch.arange(h, dtype=torch.float32)[None, :, None]
    xs = torch.arange(w, dtype=torch.float32)[None, None, :]
    masks = ((ys - centre[:, 0, None, None]) / radius[:, 0, None, None]) ** 2 + (
        (xs - centre[:, 1, None, None]) / radius[:, 1, None, None]
    ) ** 2 <= 1
    return masks.to(device)


def _int8_gemm_iou(a, b):
    """Candidate IoU by an exact int8 GEMM (int32 accumulation; tensor cores on a GPU), to weigh against
    the popcount kernel by measurement. Bool masks are reinterpreted, not copied."""
    import torch
    import torch.nn.functional as F

    n, m = len(a), len(b)
    fa, fb = a.flatten(1).view(torch.int8), b.flatten(1).view(torch.int8)
    pad_k = -fa.shape[1] % 8  # torch._int_mm wants k and m multiples of 8, more than 16 rows
    fa, fb = F.pad(fa, (0, pad_k, 0, max(0, 17 - n))), F.pad(fb, (0, pad_k, 0, -m % 8))
    inter = torch._int_mm(fa, fb.T)[:n, :m]
    union = a.flatten(1).sum(1)[:, None] + b.flatten(1).sum(1)[None, :] - inter
    return torch.where(
        union > 0, inter.float() / union.clamp(min=1).float(), torch.zeros_like(inter, dtype=torch.float)
    )


def _same_result(x, y) -> bool:
    """Exact equality of two results: tensors, lists of count arrays, or tuples of tensors."""
    import numpy as np
    import torch

    if isinstance(x, torch.Tensor):
        return x.dtype == y.dtype and torch.equal(x.cpu(), y.cpu())
    return len(x) == len(y) and all(
        _same_result(u, v) if isinstance(u, torch.Tensor) else np.array_equal(u, v) for u, v in zip(x, y)
    )


def _cases(quick: bool, device, broadcast_limit: float):
    """(op, size, {impl: callable or reason string}) for every row group."""
    import torch

    from sam3_ros.codec import rle
    from sam3_ros.kernels import cuda_ops, ops, torch_ops

    # On a machine without CUDA, say that, rather than "cpu is not a CUDA device".
    status = ops.kernel_status(device if torch.cuda.is_available() else torch.device("cuda"))
    kernel = (lambda fn: fn) if status is None else (lambda fn: f"unavailable: {status}")
    try:
        from transformers.models.sam3_video.modeling_sam3_video import mask_iou as broadcast_iou
    except ImportError as exc:
        broadcast_iou = None
        broadcast_missing = f"unavailable: transformers' Sam3 video model not importable ({exc})"

    side, iou_sizes = (32, (4, 8)) if quick else (288, (16, 64, 200))
    for n in iou_sizes:
        a, b = _blobs(n, side, side, device, 1), _blobs(n, side, side, device, 2)
        gb = n * n * side * side / 1e9
        if broadcast_iou is None:
            broadcast = broadcast_missing
        elif gb > broadcast_limit:
            broadcast = f"skipped: needs {gb:.1f} GB (--broadcast-limit-gb {broadcast_limit:g})"
        else:
            broadcast = lambda a=a, b=b: broadcast_iou(a, b)  # noqa: E731
        yield (
            "mask_iou",
            f"{n}x{n}",
            {
                "kernel": kernel(lambda a=a, b=b: cuda_ops.mask_iou(a, b)),
                "reference": lambda a=a, b=b: torch_ops.mask_iou(a, b),
                "broadcast": broadcast,
                "int8_gemm": lambda a=a, b=b: _int8_gemm_iou(a, b),
            },
        )

    n = 8 if quick else 200
    masks = _blobs(n, side, side, device, 3)
    scores = torch.rand(n, generator=torch.Generator().manual_seed(4)).to(device)
    iou = torch_ops.mask_iou(masks, masks)
    yield (
        "mask_nms",
        f"{n}",
        {
            "kernel": kernel(lambda: cuda_ops.mask_nms(masks, scores, 0.1)),
            "reference": lambda: torch_ops.mask_nms(masks, scores, 0.1),
        },
    )
    yield (
        "nms_from_iou",
        f"{n}",
        {
            "kernel": kernel(lambda: cuda_ops.nms_from_iou(iou, scores, 0.1)),
            "reference": lambda: torch_ops.nms_from_iou(iou, scores, 0.1),
        },
    )

    n_trk = 4 if quick else 64
    trk = _blobs(n_trk, side, side, device, 5)
    det_iou = torch_ops.mask_iou(masks, trk)
    args = (
        det_iou,
        scores,
        trk.flatten(1).any(1),
        torch.full((n_trk,), 10, device=device),
        torch.tensor([n_trk], device=device),
    )
    yield (
        "merge_plan",
        f"{n}x{n_trk}",
        {"kernel": kernel(lambda: cuda_ops.merge_plan(*args)), "reference": lambda: torch_ops.merge_plan(*args)},
    )

    rle_sizes = [(2, 48, 64)] if quick else [(32, 720, 1280), (32, 1080, 1920)]
    for count, h, w in rle_sizes:
        full = _blobs(count, h, w, device, 6)
        yield (
            "rle",
            f"{count}x{h}x{w}",
            {
                "kernel": kernel(lambda full=full: cuda_ops.rle_encode(full)),
                "reference": lambda full=full: rle.encode(full.cpu().numpy()),
            },
        )


def _ratio(row: dict, base: str) -> str:
    value = row.get(f"speedup_vs_{base}")
    return "-" if value is None else f"{value:.2f}"


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda but torch sees no CUDA device")
    gpu = device.type == "cuda"
    repeats = args.repeats or (200 if gpu else 5)
    if repeats < 1 or args.warmup < 0:
        raise UsageError("--repeats must be >= 1 and --warmup >= 0")
    limit = args.broadcast_limit_gb if args.broadcast_limit_gb is not None else (16.0 if gpu else 1.0)
    time_ms = _timer(device, repeats, args.warmup, args.row_seconds)
    name = _device_name(device)

    rows = []
    for op, size, impls in _cases(args.quick, device, limit):
        measured, expected = {}, impls["reference"]()
        for impl, fn in impls.items():
            row = {"op": op, "size": size, "impl": impl}
            if isinstance(fn, str):
                row["status"] = fn
            else:
                times = np.array(time_ms(fn))
                measured[impl] = float(np.median(times))
                row.update(
                    status="ok",
                    median_ms=measured[impl],
                    p99_ms=float(np.percentile(times, 99)),
                    calls_per_s=1e3 / measured[impl],
                    calls=len(times),
                    matches_reference=_same_result(fn(), expected),
                )
            rows.append(row)
        for row in rows[-len(impls) :]:
            if row["status"] == "ok":
                for base in ("reference", "broadcast"):  # broadcast: transformers' Sam3 video mask_iou
                    if base in measured:
                        row[f"speedup_vs_{base}"] = measured[base] / row["median_ms"]
            target = TARGET_MS.get(f"{op} {size}")
            if row["impl"] == "kernel" and row["status"] == "ok" and target is not None:
                row["target_ms"] = target
                row["meets_target"] = row["median_ms"] <= target and row["speedup_vs_reference"] >= TARGET_SPEEDUP

    print(f"device: {name}   torch {torch.__version__}   repeats {repeats}, warm-up {args.warmup}")
    header = (
        f"{'op':<13} {'size':<15} {'impl':<10} {'median ms':>10} {'p99 ms':>10} {'calls/s':>10} {'x ref':>7} "
        f"{'x bcast':>7}  note"
    )
    print(header + "\n" + "-" * len(header))
    for r in rows:
        if r["status"] != "ok":
            print(
                f"{r['op']:<13} {r['size']:<15} {r['impl']:<10} {'-':>10} {'-':>10} {'-':>10} {'-':>7} {'-':>7}  "
                f"{r['status']}"
            )
            continue
        note = (
            "" if "meets_target" not in r else ("meets target" if r["meets_target"] else f"target {r['target_ms']} ms")
        )
        if not r["matches_reference"]:
            note = f"DIFFERS FROM REFERENCE {note}"
        print(
            f"{r['op']:<13} {r['size']:<15} {r['impl']:<10} {r['median_ms']:>10.4f} {r['p99_ms']:>10.4f} "
            f"{r['calls_per_s']:>10.0f} {_ratio(r, 'reference'):>7} {_ratio(r, 'broadcast'):>7}  {note}"
        )

    out = args.out or Path("bench/results") / f"kernels-{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "device": name,
        "torch": torch.__version__,
        "repeats": repeats,
        "warmup": args.warmup,
        "quick": args.quick,
        "kernel_status": rows[0]["status"] if rows[0]["status"] != "ok" else "ok",
        "target_speedup": TARGET_SPEEDUP,
        "rows": rows,
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0
