"""What the engine's compiled host loops share: how they compile, the multiply-add they let the compiler fuse, and
numba's threads (the output stage's column passes and the frame resize run on them, one kernel at a time)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numba
import torch
from numba import njit

# Compiled loops that allocate nothing (their callers pass every buffer in) compile without numba's reference
# counting: with it, every call that passes an array increments and decrements the array's count atomically,
# which costs more than a small helper's own work when it is called per pixel, run or (band, column) pair.
njit_no_refcount = njit(cache=True, nogil=True, _nrt=False)

if numba.config.THREADING_LAYER == "default":
    # numba's omp layer loads the system's OpenMP runtime beside torch's own; with it, once a parallel loop had
    # run, the engine's masks stopped matching transformers' reference loop (tests/test_engine_parity.py).
    # tbb and workqueue run their own threads.
    numba.config.THREADING_LAYER_PRIORITY = ["tbb", "workqueue", "omp"]

# One kernel at a time runs on numba's threads (the node steps one engine per camera, each on its own thread):
# numba's workqueue layer aborts the process when two threads use it at once.
_NUMBA_THREADS = threading.Lock()

MAX_HOST_THREADS = 4
# Passes per thread: after the network passes torch's OpenMP workers spin for a few milliseconds, so one of
# numba's threads may share its core for a while; with smaller passes the other threads take more of them
# (64 noise masks at 1920x1080: 16.8 ms with 8 passes on 2 threads, 17.9-19.1 with 2).
PASSES_PER_THREAD = 4


@njit(cache=True, nogil=True, fastmath={"contract"})
def fused_multiply_add(a, b, c):
    """float32 ``a * b + c`` as the compiler contracts it: one fused multiply-add where the CPU has the
    instruction, else two roundings (``mask_runs.hardware_fma`` tells which)."""
    return a * b + c


def host_passes() -> int:
    """Passes a host kernel cuts its work into: ``PASSES_PER_THREAD`` per thread it may use, torch's intra-op
    threads (the engine's CPU budget) up to ``MAX_HOST_THREADS``; 1 where that is one thread."""
    threads = max(1, min(torch.get_num_threads(), MAX_HOST_THREADS))
    return 1 if threads == 1 else threads * PASSES_PER_THREAD


@contextmanager
def numba_threads() -> Iterator[bool]:
    """Holds numba's threads for the body if no other kernel does (True), else yields False: the caller then
    runs its passes in its own thread."""
    held = _NUMBA_THREADS.acquire(blocking=False)
    try:
        yield held
    finally:
        if held:
            _NUMBA_THREADS.release()
