"""Per-camera counters and the ``/diagnostics`` message built from them once a period.

Everything per frame goes here instead of the log: input and output counts (rates over the last
period), stale drops, frames missed in transport (from the camera's stamps), frames dropped by reason,
latency percentiles over a bounded window, object count, worker restarts; for cameras with depth, the depth
images received, frames published with 3D, frames without 3D by reason and instances without 3D; and the
transport's own status (socket buffers). A camera's status is OK, WARN (inputs are lost, or frames got no
3D) or ERROR (the watchdog's problem text: stalled or dead).
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter, deque

import numpy as np

from ..interfaces import typestore
from .messages import header

LATENCY_WINDOW = 1000  # latest latencies kept per camera: bounded memory, stable percentiles
DIAGNOSTICS_NAME = "sam3_tracker"


class CameraStats:
    """Counters of one camera; ``rejected`` is keyed by a short reason (e.g. ``bad_image``)."""

    def __init__(self) -> None:
        self.published = 0
        self.rejected: Counter[str] = Counter()
        self.latencies_ms: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.objects = 0
        self.last_error = ""
        self.worker_restarts = 0
        self.problem = ""  # set by the node's watchdog: why the camera is an ERROR ("" = it is not)
        self.depth: Counter[str] = Counter()  # frames with 3D, frames without it by reason, instances without it
        self.depth_error = ""  # why the latest frame without 3D had none


class Diagnostics:
    """Thread-safe counters of all cameras, plus the prompt topic and service calls."""

    def __init__(self, cameras: list[str]):
        self._lock = threading.Lock()
        self.cameras = {camera: CameraStats() for camera in cameras}
        self.node: Counter[str] = Counter()  # prompt topic and service outcomes
        self._last_counts: dict[str, tuple[int, int]] = {camera: (0, 0) for camera in cameras}
        self._last_time = time.monotonic()
        self.transport: dict[str, object] = {}  # the transport's settings as it got them (node status values)
        self.transport_warning = ""  # what is wrong with them and what to do (WARN on the node status)

    def set_transport(self, values: dict[str, object], warning: str = "") -> None:
        """The transport's status, e.g. socket buffer sizes; a ``warning`` makes the node status WARN."""
        with self._lock:
            self.transport = {f"transport.{key}": value for key, value in values.items()}
            self.transport_warning = warning

    def published(self, camera: str, latency_ms: float, objects: int) -> None:
        with self._lock:
            stats = self.cameras[camera]
            stats.published += 1
            stats.latencies_ms.append(latency_ms)
            stats.objects = objects

    def rejected(self, camera: str, reason: str, error: str) -> int:
        """Count a frame that got no output, by reason (and remember the latest error text); returns the
        count of that reason."""
        with self._lock:
            stats = self.cameras[camera]
            stats.rejected[reason] += 1
            stats.last_error = f"{reason}: {error}"
            return stats.rejected[reason]

    def depth_dropped(self, camera: str, reason: str, error: str) -> int:
        """Count a frame published without 3D, by reason (its 2D outputs went out); returns that reason's count."""
        with self._lock:
            stats = self.cameras[camera]
            stats.depth[f"dropped.{reason}"] += 1
            stats.depth_error = f"{reason}: {error}"
            return stats.depth[f"dropped.{reason}"]

    def depth_located(self, camera: str, without_3d: int) -> None:
        """Count a frame published with 3D, and its listed instances that had too little valid depth for it."""
        with self._lock:
            stats = self.cameras[camera]
            stats.depth["frames_3d"] += 1
            stats.depth["instances_without_3d"] += without_3d

    def count(self, event: str) -> int:
        """Count a node-level event, e.g. ``prompt_topic.rejected``; returns its count."""
        with self._lock:
            self.node[event] += 1
            return self.node[event]

    def rejected_total(self, camera: str) -> int:
        with self._lock:
            return sum(self.cameras[camera].rejected.values())

    def last_error(self, camera: str) -> str:
        with self._lock:
            return self.cameras[camera].last_error

    def worker_restarted(self, camera: str) -> None:
        with self._lock:
            self.cameras[camera].worker_restarts += 1

    def set_problem(self, camera: str, problem: str) -> bool:
        """Set (or clear, with "") why ``camera`` is an ERROR; True if that changed whether it is one."""
        with self._lock:
            stats = self.cameras[camera]
            changed = bool(stats.problem) != bool(problem)
            stats.problem = problem
            return changed

    def message(
        self,
        stamp_ns: int,
        received: dict[str, int],
        dropped: dict[str, int],
        engine: dict[str, dict[str, int]] | None = None,
        missed: dict[str, tuple[int, float | None]] | None = None,
        depth: dict[str, int] | None = None,
    ):
        """A ``diagnostic_msgs/DiagnosticArray``: one status per camera and one for the node.

        ``received``/``dropped`` are the slots' cumulative counts (images in, images replaced unprocessed);
        ``engine`` the engines' own counters per camera (listed as ``engine.<name>``); ``missed`` per camera
        (frames lost before reaching the node, the camera period in ns or None) from its stamps; ``depth`` the
        depth images received per camera with depth.
        """
        engine, missed, depth = engine or {}, missed or {}, depth or {}
        types = typestore().types
        Status, KeyValue = types["diagnostic_msgs/msg/DiagnosticStatus"], types["diagnostic_msgs/msg/KeyValue"]
        now = time.monotonic()
        with self._lock:
            period = max(now - self._last_time, 1e-6)
            self._last_time = now
            statuses = []
            for camera, stats in self.cameras.items():
                last_in, last_out = self._last_counts[camera]
                self._last_counts[camera] = (received[camera], stats.published)
                lat = np.asarray(stats.latencies_ms, np.float64)
                p50, p99 = np.percentile(lat, [50, 99]) if lat.size else (0.0, 0.0)
                values = {
                    "input_hz": (received[camera] - last_in) / period,
                    "output_hz": (stats.published - last_out) / period,
                    "received": received[camera],
                    "published": stats.published,
                    "dropped_stale": dropped[camera],
                    "rejected": sum(stats.rejected.values()),
                    **{f"rejected.{reason}": n for reason, n in sorted(stats.rejected.items())},
                    "latency_p50_ms": p50,
                    "latency_p99_ms": p99,
                    "objects": stats.objects,
                    "last_error": stats.last_error,
                    "worker_restarts": stats.worker_restarts,
                    **{f"engine.{name}": n for name, n in engine.get(camera, {}).items()},
                }
                lost, period_ns = missed.get(camera, (0, None))
                values.update({"missed_in_transport": lost, "camera_hz": 1e9 / period_ns if period_ns else 0.0})
                without_3d = 0
                if camera in depth:
                    without_3d = sum(n for key, n in stats.depth.items() if key.startswith("dropped."))
                    values.update(
                        {
                            "depth.received": depth[camera],
                            "depth.frames_3d": stats.depth["frames_3d"],
                            "depth.frames_without_3d": without_3d,
                            **{
                                f"depth.{key}": n
                                for key, n in sorted(stats.depth.items())
                                if key.startswith("dropped.")
                            },
                            "depth.instances_without_3d": stats.depth["instances_without_3d"],
                            "depth.last_error": stats.depth_error,
                        }
                    )
                rejected = sum(stats.rejected.values())
                if stats.problem:
                    level, text = Status.ERROR, stats.problem
                elif rejected or dropped[camera] or lost or without_3d:  # inputs are lost
                    level, text = (
                        Status.WARN,
                        (
                            f"{dropped[camera]} stale drops, {rejected} rejected inputs, "
                            f"{lost} missed in transport" + (f", {without_3d} frames without 3D" if without_3d else "")
                        ),
                    )
                else:
                    level, text = Status.OK, "ok"
                statuses.append(
                    Status(
                        level=level,
                        name=f"{DIAGNOSTICS_NAME}: {camera}",
                        message=text,
                        hardware_id=camera,
                        values=[KeyValue(key=k, value=_text(v)) for k, v in values.items()],
                    )
                )
            node_values = {**{k: n for k, n in sorted(self.node.items())}, **self.transport, **gpu_memory()}
            warning = self.transport_warning
            statuses.append(
                Status(
                    level=Status.WARN if warning else Status.OK,
                    name=DIAGNOSTICS_NAME,
                    message=warning or "ok",
                    hardware_id="",
                    values=[KeyValue(key=k, value=_text(v)) for k, v in node_values.items()],
                )
            )
        return types["diagnostic_msgs/msg/DiagnosticArray"](header=header(stamp_ns), status=statuses)


def _text(value) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def gpu_memory() -> dict[str, float]:
    """MiB allocated and reserved by torch on each CUDA device (empty without torch loaded or CUDA)."""
    torch = sys.modules.get("torch")  # the engine imports torch; the diagnostics do not pull it in
    if torch is None or not torch.cuda.is_available():
        return {}
    out = {}
    for index in range(torch.cuda.device_count()):
        out[f"gpu{index}.allocated_mib"] = torch.cuda.memory_allocated(index) / 2**20
        out[f"gpu{index}.reserved_mib"] = torch.cuda.memory_reserved(index) / 2**20
    return out
