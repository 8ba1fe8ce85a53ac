"""``sam3-ros bench kernels`` runs end to end (tiny sizes) and writes its JSON."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def test_bench_kernels_quick(tmp_path):
    out = tmp_path / "kernels.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "XDG_CACHE_HOME": str(tmp_path),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sam3_ros.cli",
            "bench",
            "kernels",
            "--quick",
            "--repeats",
            "2",
            "--warmup",
            "1",
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    rows = {(r["op"], r["size"], r["impl"]): r for r in report["rows"]}
    assert {op for op, _, _ in rows} == {"mask_iou", "mask_nms", "nms_from_iou", "merge_plan", "rle"}
    for (op, size, impl), row in rows.items():
        if impl == "kernel" and not torch.cuda.is_available():
            assert row["status"].startswith("unavailable: no CUDA device"), row
        elif impl in ("reference", "broadcast", "int8_gemm"):
            assert row["status"] == "ok" and row["median_ms"] > 0 and row["p99_ms"] >= row["median_ms"], row
        if row["status"] == "ok":
            assert row["matches_reference"], row
    assert rows[("mask_iou", "8x8", "reference")]["speedup_vs_reference"] == 1.0
    assert rows[("mask_iou", "8x8", "int8_gemm")]["speedup_vs_broadcast"] > 0
    assert report["device"] in proc.stdout and "median ms" in proc.stdout
