"""Replay camera messages through a processor, in lockstep or at their recorded times.

A processor turns one camera message into one ``sam3_ros/msg/InstanceArray`` (``process``). Times are
in the bag's clock: a camera message *arrives* at its log time, and each output gets the time it was
published:

- ``lockstep``: every frame is processed, in order; an output is published the moment its frame
  arrives (time stands still while processing). Deterministic.
- ``realtime``: frames arrive at their recorded times (scaled by ``rate``) on the wall clock; one
  worker processes the newest frame that has arrived and drops older ones it never got to (the node's
  latest-frame policy), and the output is published when processing ends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable, Iterator, Protocol

import numpy as np

from ..codec.image import compressed_to_rgb, image_to_rgb
from ..engine.types import ConceptPrompt, Frame
from ..pipeline.messages import instances_to_message, time_to_ns
from .bags import is_compressed

PACINGS = ("lockstep", "realtime")


class Processor(Protocol):
    """Anything that turns a camera message into an InstanceArray (raises ValueError for a bad image)."""

    def process(self, image_msg): ...


class EngineProcessor:
    """The node's per-frame logic in-process: decode the image, ``engine.step``, build the InstanceArray."""

    def __init__(self, engine, phrases: list[str], camera: str = ""):
        self.engine, self.camera = engine, camera
        engine.set_prompt(ConceptPrompt(phrases=list(phrases)))

    def process(self, image_msg):
        start = time.perf_counter()
        rgb = compressed_to_rgb(image_msg) if is_compressed(image_msg) else image_to_rgb(image_msg)
        frame = Frame(
            image=rgb,
            stamp_ns=time_to_ns(image_msg.header.stamp),
            frame_id=image_msg.header.frame_id,
            camera=self.camera,
        )
        instances = self.engine.step(frame)
        return instances_to_message(instances, latency_ms=(time.perf_counter() - start) * 1e3)


class SlowedProcessor:
    """Wraps a processor and sleeps ``delay_s`` before each frame: an artificially slow engine, for tests
    and for seeing what a slower GPU would do to the online result."""

    def __init__(self, inner: Processor, delay_s: float):
        if delay_s < 0:
            raise ValueError(f"delay must be >= 0 s, got {delay_s}")
        self.inner, self.delay_s = inner, delay_s

    def process(self, image_msg):
        time.sleep(self.delay_s)
        return self.inner.process(image_msg)


@dataclass
class Published:
    """One output of a replay: which frame it came from, when, and the message."""

    position: int  # index of the source message in the camera topic
    stamp_ns: int  # header stamp of the source image
    arrival_ns: int  # when the source frame arrived (bag clock)
    time_ns: int  # when the output was published (bag clock)
    latency_ms: float  # arrival -> publish (realtime) or processing time (lockstep), wall clock
    msg: object


@dataclass
class Arrival:
    """One camera message of the replay, processed or dropped."""

    position: int
    stamp_ns: int
    arrival_ns: int


class Replay:
    """Runs one replay; ``arrivals`` (every frame), ``dropped`` and ``failed`` fill in as it goes."""

    def __init__(self, processor: Processor, pacing: str = "lockstep", rate: float = 1.0):
        if pacing not in PACINGS:
            raise ValueError(f"unknown pacing {pacing!r}; choose one of {PACINGS}")
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.processor, self.pacing, self.rate = processor, pacing, rate
        self.arrivals: list[Arrival] = []
        self.dropped = 0  # arrived but never processed: a newer frame came first
        self.failed = 0  # the processor rejected the image (ValueError); counted, replay goes on
        self.wall_s = 0.0

    def run(self, messages: Iterable[tuple[int, object]]) -> Iterator[Published]:
        """Yield outputs for (log time ns, camera message) pairs, in publish order."""
        start = time.perf_counter()
        try:
            inputs = self._arrive(messages)
            yield from (self._lockstep(inputs) if self.pacing == "lockstep" else self._realtime(inputs))
        finally:
            self.wall_s = time.perf_counter() - start

    def _arrive(self, messages):
        for position, (log_ns, msg) in enumerate(messages):
            arrival = Arrival(position, time_to_ns(msg.header.stamp), int(log_ns))
            self.arrivals.append(arrival)
            yield arrival, msg

    def _process(self, msg):
        """(output, processing ms), or None when the processor rejects the image (counted)."""
        start = time.perf_counter()
        try:
            out = self.processor.process(msg)
        except ValueError:
            self.failed += 1
            return None
        return out, (time.perf_counter() - start) * 1e3

    def _lockstep(self, inputs) -> Iterator[Published]:
        for arrival, msg in inputs:
            result = self._process(msg)
            if result is not None:
                out, elapsed_ms = result
                yield Published(
                    arrival.position, arrival.stamp_ns, arrival.arrival_ns, arrival.arrival_ns, elapsed_ms, out
                )

    def _realtime(self, inputs) -> Iterator[Published]:
        inputs = iter(inputs)
        upcoming = next(inputs, None)
        if upcoming is None:
            return
        bag_start, wall_start = upcoming[0].arrival_ns, time.perf_counter()

        def bag_now() -> int:
            return bag_start + int((time.perf_counter() - wall_start) * 1e9 * self.rate)

        newest = None  # the latest-frame slot
        while upcoming is not None or newest is not None:
            now = bag_now()
            while upcoming is not None and upcoming[0].arrival_ns <= now:
                if newest is not None:
                    self.dropped += 1
                newest, upcoming = upcoming, next(inputs, None)
            if newest is None:
                time.sleep(max(0.0, (upcoming[0].arrival_ns - now) / 1e9 / self.rate))
                continue
            (arrival, msg), newest = newest, None
            result = self._process(msg)
            if result is not None:
                published = bag_now()
                out, _ = result
                out.dropped_frames = self.dropped  # cumulative, as the node reports it
                latency_ms = (published - arrival.arrival_ns) / 1e6 / self.rate
                yield Published(arrival.position, arrival.stamp_ns, arrival.arrival_ns, published, latency_ms, out)

    @property
    def period_ns(self) -> int:
        return median_period(self.arrivals)


def median_period(arrivals: list[Arrival]) -> int:
    """Median spacing of the arrivals in ns (0 with fewer than two frames)."""
    times = np.array([a.arrival_ns for a in arrivals], np.int64)
    return int(np.median(np.diff(times))) if len(times) > 1 else 0
