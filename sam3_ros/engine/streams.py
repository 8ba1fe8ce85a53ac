"""CUDA stream plumbing for ``Engine.step``: side streams, host->device uploads and stage timers that
never block the host. On CPU every helper here runs the same code synchronously (no streams).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

import numpy as np
import torch


def upload(values, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A host array / list as a tensor on ``device``; to CUDA through pinned memory, without blocking
    the host (a plain ``torch.tensor(..., device="cuda")`` waits for the copy: a host sync)."""
    host = torch.as_tensor(np.asarray(values) if not torch.is_tensor(values) else values, dtype=dtype)
    if device.type != "cuda" or host.numel() == 0:  # an empty copy moves nothing and waits for nothing
        return host.to(device)
    return host.pin_memory().to(device, non_blocking=True)


class SideStream:
    """Work enqueued on a second CUDA stream of ``device`` and joined (a GPU-side wait, never a host one)
    by whoever reads its results. ``None`` stream on CPU: the work runs inline."""

    def __init__(self, device: torch.device):
        self.device = device
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self._done: torch.cuda.Event | None = None

    @contextmanager
    def run(self, inputs: Iterable[torch.Tensor] = (), wait: bool = True) -> Iterator[None]:
        """Enqueue the body on the side stream; with ``wait``, after the work already on the current stream.

        ``inputs`` are tensors made on the current stream that the body reads: the caching allocator is
        told (``record_stream``) not to hand their memory out again before the side stream is done.
        Re-entrant: inside another ``run`` of the same stream, the body just continues there.
        """
        if self.stream is None or torch.cuda.current_stream(self.device) == self.stream:
            yield
            return
        if wait:
            self.stream.wait_stream(torch.cuda.current_stream(self.device))
        for tensor in inputs:
            tensor.record_stream(self.stream)
        with torch.cuda.stream(self.stream):
            yield
        self._done = self.stream.record_event()

    def join(self, *outputs: torch.Tensor) -> None:
        """Make the current stream wait for everything enqueued by ``run`` so far; ``outputs`` (made on the
        side stream, read from now on by the current one) are kept from reuse until the current stream is done."""
        if self.stream is None or self._done is None or torch.cuda.current_stream(self.device) == self.stream:
            return
        current = torch.cuda.current_stream(self.device)
        current.wait_event(self._done)
        for tensor in outputs:
            tensor.record_stream(current)
        self._done = None


def read_to_host(tensor: torch.Tensor) -> np.ndarray:
    """``tensor`` as a numpy array: the step's one deliberate wait for the GPU.

    A pinned, non-blocking copy and a wait on its event, rather than ``.cpu()`` (which is the same wait,
    but counts as an unexpected sync under ``torch.cuda.set_sync_debug_mode``).
    """
    if tensor.device.type != "cuda":
        return tensor.numpy()
    host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
    host.copy_(tensor, non_blocking=True)
    copied = torch.cuda.Event()
    copied.record()
    copied.synchronize()
    return host.numpy()


def tensors_of(*values) -> list[torch.Tensor]:
    """The tensors among ``values`` (tensors, lists/tuples/dicts of tensors, None)."""
    found: list[torch.Tensor] = []
    for value in values:
        if torch.is_tensor(value):
            found.append(value)
        elif isinstance(value, dict):
            found.extend(tensors_of(*value.values()))
        elif isinstance(value, (list, tuple)):
            found.extend(tensors_of(*value))
    return found


class StageTimer:
    """Per-stage times of one step: wall clock on CPU (and the process's CPU time, ``result().cpu_ms``: what a
    stage costs when other jobs share the cores); CUDA events on GPU (read lazily, no sync in step)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self._stages: list[str] = []
        if self.cuda:
            self._marks = [torch.cuda.Event(enable_timing=True)]
            self._marks[0].record()
        else:
            self._wall = StageTimes()
            self._last, self._last_cpu = time.perf_counter(), time.process_time()

    def lap(self, stage: str) -> None:
        """End ``stage`` here (the next one starts); a stage lapped again adds to its time."""
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self._marks.append(event)
            self._stages.append(stage)
        else:
            now, now_cpu = time.perf_counter(), time.process_time()
            self._wall[stage] = self._wall.get(stage, 0.0) + (now - self._last) * 1000.0
            self._wall.cpu_ms[stage] = self._wall.cpu_ms.get(stage, 0.0) + (now_cpu - self._last_cpu) * 1000.0
            self._last, self._last_cpu = now, now_cpu

    def result(self) -> Mapping[str, float]:
        """Stage -> ms, including stages lapped after this call. On CUDA a mapping that waits for the
        last stage's event when first read."""
        return _EventTimes(self._stages, self._marks) if self.cuda else self._wall


class StageTimes(dict):
    """Stage -> wall ms, and ``cpu_ms``: stage -> CPU ms of the process (all its threads)."""

    def __init__(self):
        super().__init__()
        self.cpu_ms: dict[str, float] = {}


class _EventTimes(Mapping):
    """Stage times from CUDA events, computed on first access (after the step's work has finished)."""

    def __init__(self, stages: list[str], marks: list[torch.cuda.Event]):
        self._stages, self._marks = stages, marks
        self._times: dict[str, float] | None = None

    def _resolve(self) -> dict[str, float]:
        if self._times is None:
            self._marks[-1].synchronize()
            self._times = {}
            for stage, begin, end in zip(self._stages, self._marks, self._marks[1:]):
                self._times[stage] = self._times.get(stage, 0.0) + begin.elapsed_time(end)
            self._marks = []
        return self._times

    def __getitem__(self, stage: str) -> float:
        return self._resolve()[stage]

    def __iter__(self):
        return iter(dict.fromkeys(self._stages))

    def __len__(self) -> int:
        return len(set(self._stages))

    def __repr__(self) -> str:
        return repr(self._resolve())
