"""Where work goes when there are several devices: least-loaded, deterministic choices.

``placement: cameras`` pins each camera stream to one entry of ``settings.devices``; ``placement:
objects`` (``sam3_ros.engine.distributed``) puts each new tracked object on the least-loaded worker.
Both use ``least_loaded``, so the same inputs always give the same placement.
"""

from __future__ import annotations

from typing import Hashable, Mapping, TypeVar

Key = TypeVar("Key", bound=Hashable)


def least_loaded(loads: Mapping[Key, int]) -> Key:
    """The key with the smallest load; ties go to the key listed first."""
    if not loads:
        raise ValueError("least_loaded: nothing to choose from")
    return min(loads, key=lambda key: loads[key])  # min keeps the first of equal keys


def assign_cameras(cameras: list[str], devices: list[str]) -> dict[str, int]:
    """Camera -> index into ``devices``: each camera, in order, goes to the device with the fewest cameras.

    Indices (not names) identify devices, so ``[cpu, cpu]`` or ``[cuda:0, cuda:0]`` are two places.
    """
    if not devices:
        raise ValueError("assign_cameras: no devices")
    loads = {i: 0 for i in range(len(devices))}
    placed = {}
    for camera in cameras:
        index = least_loaded(loads)
        placed[camera] = index
        loads[index] += 1
    return placed
