"""Fault injection into the node's stages, and an output sink, for the tests that no failure stops a camera.

A frame asks for a fault by its header's ``frame_id``, ``fault:<stage>:<exception>`` (``fault_id``):
stage ``decode`` (the decoder raises), ``engine`` (``engine.step`` raises), ``output`` (building the
InstanceArray raises: the engine's instances fail when their phrases are read) or ``publish`` (the
instances publisher raises). A ``SetPrompt`` whose first phrase is ``fault:command:<exception>`` makes
the engine's ``set_prompt`` raise. ``fault:engine:stall`` makes ``engine.step`` take ``STALL_S`` (or until
``FaultyEngine.stall_released`` is set).
Everything else is the real thing: the codec, the tiny-random engine, the node, Cyclone DDS.

Run as a script (``python tests/node_faults.py --set key=value ...``) it is the DDS-direct node with these
faults, for the end-to-end tests between processes; it stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import threading
from typing import Any, Callable

from sam3_ros.engine.types import Instances
from sam3_ros.pipeline.messages import time_to_ns
from sam3_ros.pipeline.node import decode_image, engine_factory
from sam3_ros.ros import names
from sam3_ros.ros.dds import Participant, Publisher
from sam3_ros.ros.dds_node import DdsPerceptionNode
from sam3_ros.settings import Settings, parse_override

ERRORS = (TypeError, RuntimeError, KeyError, MemoryError)  # "every exception": one of each family
EXCEPTIONS = {error.__name__: error for error in (*ERRORS, SystemExit)}  # SystemExit ends a worker
STAGES = ("decode", "engine", "output", "publish")
STALL_S = 5.0  # how long a fault:engine:stall frame keeps the engine busy, at most


def fault_id(stage: str, exception: str) -> str:
    """The ``frame_id`` (or first phrase) that asks for ``exception`` in ``stage``."""
    return f"fault:{stage}:{exception}"


def raise_if_asked(text: Any, stage: str) -> None:
    """Raise the exception that ``text`` asks for in ``stage``, if it asks for one."""
    kind, _, rest = str(text).partition(":")
    asked, _, name = rest.partition(":")
    if kind == "fault" and asked == stage and name in EXCEPTIONS:
        raise EXCEPTIONS[name](f"injected {name} in {stage}")


def faulty_decode(message: Any, max_pixels: int):
    """The node's decoder, raising when the image's frame asks for a decode fault."""
    raise_if_asked(message.header.frame_id, "decode")
    return decode_image(message, max_pixels)


class OutputFaultInstances(Instances):
    """Instances whose ``phrases`` (read when the InstanceArray is built) raise if the frame asks for an
    output fault."""

    @property
    def phrases(self) -> list[str]:
        raise_if_asked(self.frame_id, "output")
        return self._phrases

    @phrases.setter
    def phrases(self, value: list[str]) -> None:
        self._phrases = value


class FaultyEngine:
    """A real engine whose ``step`` and ``set_prompt`` raise when a frame or prompt asks; the rest delegates."""

    def __init__(self, engine: Any):
        self.engine = engine
        self.stall_released = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def step(self, frame) -> Instances:
        raise_if_asked(frame.frame_id, "engine")
        if frame.frame_id == fault_id("engine", "stall"):
            self.stall_released.wait(STALL_S)
            self.stall_released.clear()
        found = self.engine.step(frame)
        return OutputFaultInstances(**{f.name: getattr(found, f.name) for f in dataclasses.fields(found)})

    def set_prompt(self, prompt, keep_tracks: bool = False) -> None:
        if prompt.phrases:
            raise_if_asked(prompt.phrases[0], "command")
        self.engine.set_prompt(prompt, keep_tracks=keep_tracks)


def faulty_publish(publish: Callable[[str, Any], None]) -> Callable[[str, Any], None]:
    """``publish(kind, message)`` that raises when an InstanceArray's frame asks for a publish fault."""

    def publish_or_raise(kind: str, message: Any) -> None:
        if kind == "instances":
            raise_if_asked(message.header.frame_id, "publish")
        publish(kind, message)

    return publish_or_raise


class FaultyParticipant(Participant):
    """A DDS participant whose InstanceArray publisher raises when the frame asks for a publish fault."""

    def publisher(self, name: str, ros_type: str, qos: str = "reliable", depth: int | None = None) -> Publisher:
        publisher = super().publisher(name, ros_type, qos, depth)
        if ros_type == names.INSTANCES_TYPE:
            write = publisher.publish

            def publish_or_raise(message: Any) -> None:
                raise_if_asked(message.header.frame_id, "publish")
                write(message)

            publisher.publish = publish_or_raise
        return publisher


class Outputs:
    """The node's publish sink: keeps every message and lets a test wait for one."""

    def __init__(self):
        self.messages = []
        self.cond = threading.Condition()

    def __call__(self, kind, message):
        with self.cond:
            self.messages.append((kind, message))
            self.cond.notify_all()

    def wait_diagnostics(self, timeout=5.0, where=lambda message: True):
        """The first diagnostics message (from now on, or any so far) for which ``where`` holds."""

        def found():
            return next((m for k, m in reversed(self.messages) if k == "diagnostics" and where(m)), None)

        with self.cond:
            assert self.cond.wait_for(lambda: found() is not None, timeout), "no such diagnostics"
            return found()

    def wait_instances(self, stamp_ns, timeout=20.0):
        def found():
            return next(
                (m for k, m in self.messages if k == "instances" and time_to_ns(m.header.stamp) == stamp_ns), None
            )

        with self.cond:
            assert self.cond.wait_for(lambda: found() is not None, timeout), f"no output for stamp {stamp_ns}"
            return found()


def main(argv: list[str]) -> int:
    """The DDS-direct node with fault injection; ``argv``: ``--set key=value`` options, as ``sam3-ros node``."""
    parser = argparse.ArgumentParser(prog="node_faults.py")
    parser.add_argument("--set", metavar="KEY=VALUE", action="append", default=[])
    settings = Settings.default(dict(parse_override(text) for text in parser.parse_args(argv).set))
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    make = engine_factory(settings)
    node = DdsPerceptionNode(
        settings, lambda camera: FaultyEngine(make(camera)), FaultyParticipant(), decode=faulty_decode
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(0.1):
        pass
    node.close()
    logging.shutdown()
    os._exit(0)  # as `sam3-ros node`: skip the slow interpreter teardown of torch


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
