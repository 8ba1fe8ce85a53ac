"""The tracker node's logic, shared by both transports (rclpy and DDS-direct).

Data flow per camera: the transport calls ``on_image`` (never blocks) -> latest-wins slot -> the
camera's worker thread: decode -> ``engine.step`` -> ``InstanceArray`` (+ overlay, labels) ->
``publish``. Service requests are validated on the caller's thread, then run on the camera's worker
between two frames (the engine is never used from two threads), and answered with a ``Reply``.
A diagnostics thread publishes counters once a period. Outputs go through one callable,
``publish(kind, message)``, kind one of ``instances``, ``overlay``, ``labels``, ``diagnostics``;
messages are rosbags dataclasses (the rclpy transport converts them).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..codec.image import compressed_to_rgb, image_to_rgb, rgb_to_image_fields
from ..engine.types import ConceptPrompt, Frame
from ..settings import Settings
from .diagnostics import Diagnostics
from .messages import image_message, instances_to_message, time_to_ns
from .overlay import label_image, overlay_image
from .requests import parse_add_points, parse_prompt_text, parse_set_prompt
from .slot import LatestSlot
from .stamps import StampGaps

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 30.0  # longest a service waits for the worker (one engine step, plus model warm-up)


@dataclass
class Reply:
    """A service answer, transport-neutral: ``success``, ``message`` and (add_points) ``object_id``."""

    success: bool
    message: str
    object_id: int = -1


def is_compressed_topic(settings: Settings, topic: str) -> bool:
    """Whether ``topic`` carries ``CompressedImage``: all topics with ``input.compressed``, and topics named
    ``.../compressed`` as image_transport names them."""
    return settings.input.compressed or topic.rstrip("/").endswith("/compressed")


@dataclass
class _Camera:
    """One input stream: its engine, slot, worker and what the services need to know about it."""

    name: str
    engine: Any
    slot: LatestSlot = field(default_factory=LatestSlot)
    gaps: StampGaps = field(default_factory=StampGaps)  # frames lost before they reached the node
    image_size: tuple[int, int] | None = None  # (H, W) of the latest processed image
    stamp_ns: int | None = None  # stamp of the latest processed image
    exemplars: tuple[int, int] = (0, 0)  # positive, negative exemplar boxes in the active prompt
    worker: threading.Thread | None = None


def decode_image(message: Any, max_pixels: int) -> np.ndarray:
    """RGB uint8 array of a ``sensor_msgs/Image`` or ``CompressedImage`` (told apart by ``format``)."""
    if hasattr(message, "format"):
        return compressed_to_rgb(message, max_pixels=max_pixels)
    return image_to_rgb(message, max_pixels=max_pixels)


class TrackerNode:
    """Transport-neutral tracker node. ``engine_factory(camera)`` builds one engine per camera;
    ``decode(message, max_pixels)`` turns an image message into RGB (ValueError for bad input)."""

    def __init__(self, settings: Settings, engine_factory: Callable[[str], Any],
                 publish: Callable[[str, Any], None], decode: Callable[[Any, int], np.ndarray] = decode_image):
        self.settings = settings
        self._publish = publish
        self._decode = decode
        self.cameras = {topic: _Camera(topic, engine_factory(topic)) for topic in settings.input.topics}
        self.diagnostics = Diagnostics(list(self.cameras))
        self._stop = threading.Event()
        self._diagnostics_thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Start one worker per camera and the diagnostics thread."""
        self._stop.clear()
        for camera in self.cameras.values():
            camera.slot = LatestSlot()  # a stopped node's slots are closed; counts restart with the node
            camera.gaps = StampGaps()
            camera.worker = threading.Thread(target=self._work, args=(camera,), name=f"worker:{camera.name}",
                                             daemon=True)
            camera.worker.start()
        self._diagnostics_thread = threading.Thread(target=self._report, name="diagnostics", daemon=True)
        self._diagnostics_thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the workers (each finishes its current frame) and the diagnostics thread."""
        self._stop.set()
        for camera in self.cameras.values():
            camera.slot.close()
        deadline = time.monotonic() + timeout
        threads = [c.worker for c in self.cameras.values()] + [self._diagnostics_thread]
        for thread in threads:
            if thread is not None:
                thread.join(max(deadline - time.monotonic(), 0.0))

    # -- inputs from the transport -----------------------------------------------------------------
    def on_image(self, camera: str, message: Any) -> None:
        """A ``sensor_msgs/Image`` or ``CompressedImage`` arrived on ``camera`` (cheap: only stores it)."""
        self.cameras[camera].gaps.add(time_to_ns(message.header.stamp))
        self.cameras[camera].slot.put(message)

    def on_prompt_text(self, message: Any) -> None:
        """``/sam3/prompt`` (std_msgs/String, comma-separated phrases): a new prompt for every camera."""
        try:
            phrases = parse_prompt_text(message.data, self.settings.prompt)
        except ValueError as exc:
            self.diagnostics.count("prompt_topic.rejected")
            log.warning("ignored /sam3/prompt: %s", exc)
            return
        for camera in self.cameras.values():
            future = camera.slot.submit(lambda c=camera: self._set_prompt(c, ConceptPrompt(phrases=phrases), False))
            future.add_done_callback(self._count_prompt_topic_result)

    def _count_prompt_topic_result(self, future) -> None:
        self.diagnostics.count("prompt_topic.rejected" if future.exception() else "prompt_topic.accepted")

    # -- services ----------------------------------------------------------------------------------
    def set_prompt(self, request: Any) -> Reply:
        """``SetPrompt``: phrases and/or exemplar boxes, for one camera or all ("")."""
        keep_tracks = bool(request.keep_tracks)

        def plan():  # every camera's prompt is validated before any camera changes
            prompts = [(c, parse_set_prompt(request, self.settings.prompt, c.image_size))
                       for c in self._targets(request.camera)]
            return [(c, lambda c=c, p=p: self._set_prompt(c, p, keep_tracks)) for c, p in prompts]

        done = self._call("set_prompt", plan)
        if isinstance(done, Reply):
            return done
        return Reply(True, f"prompt set on {len(done)} camera(s): phrases {done[0].phrases}, "
                           f"{len(done[0].boxes)} exemplar box(es)")

    def add_points(self, request: Any) -> Reply:
        """``AddPoints``: refine object ``object_id`` or create one (-1) from clicks and/or a box."""
        stamp = time_to_ns(request.stamp)

        def run(camera: _Camera) -> int:
            if stamp and stamp != camera.stamp_ns:  # checked on the worker: the latest image moves on
                raise ValueError(f"stamp {stamp} ns is not the latest processed image of {camera.name} "
                                 f"({camera.stamp_ns} ns); use 0 for the latest")
            points = parse_add_points(request, camera.image_size)
            return int(camera.engine.add_points(points.object_id, points.points, points.labels, points.box))

        def plan():
            (camera,) = self._targets(request.camera, single=True)
            parse_add_points(request, camera.image_size)  # reject bad clicks without waiting for the worker
            return [(camera, lambda: run(camera))]

        done = self._call("add_points", plan)
        if isinstance(done, Reply):
            return done
        verb = "created" if int(request.object_id) == -1 else "refined"
        return Reply(True, f"{verb} object {done[0]}", object_id=done[0])

    def remove_object(self, request: Any) -> Reply:
        """``RemoveObject``: stop tracking ``object_id`` (on ``camera``, or wherever it is tracked)."""
        object_id = int(request.object_id)

        def run(camera: _Camera) -> bool:
            if not request.camera and object_id not in camera.engine.live_ids:
                return False  # "" = whichever camera tracks it: not this one
            camera.engine.remove(object_id)  # ValueError naming the live ids if unknown
            return True

        def check(removed: list[bool]) -> None:
            if not any(removed):
                raise ValueError(f"unknown object id {object_id}: no camera tracks it")

        done = self._call("remove_object", lambda: [(c, lambda c=c: run(c)) for c in self._targets(request.camera)],
                          check)
        return done if isinstance(done, Reply) else Reply(True, f"removed object {object_id}")

    def reset(self, request: Any = None) -> Reply:
        """``Trigger`` reset: remove every tracked object on every camera (the prompt stays)."""
        done = self._call("reset", lambda: [(c, c.engine.reset) for c in self.cameras.values()])
        return done if isinstance(done, Reply) else Reply(True, f"reset {len(self.cameras)} camera(s)")

    def _targets(self, camera: str, single: bool = False) -> list[_Camera]:
        """The cameras a request names ("" = all, or the only one when ``single``); ValueError otherwise."""
        if camera:
            if camera not in self.cameras:
                raise ValueError(f"unknown camera {camera!r}; cameras: {', '.join(self.cameras)}")
            return [self.cameras[camera]]
        if single and len(self.cameras) > 1:
            raise ValueError(f"several cameras ({', '.join(self.cameras)}): name one in the request")
        return list(self.cameras.values())

    def _call(self, service: str, plan: Callable[[], list[tuple[_Camera, Callable[[], Any]]]],
              check: Callable[[list], None] | None = None) -> list | Reply:
        """Validate with ``plan()`` on the caller's thread, giving (camera, command) pairs; run each command
        on its camera's worker (between frames) and wait; then ``check`` the results. A ValueError from
        any step becomes a failed Reply, counted in the diagnostics."""
        try:
            futures = [camera.slot.submit(command) for camera, command in plan()]
            results = [future.result(COMMAND_TIMEOUT_S) for future in futures]
            if check is not None:
                check(results)
        except (ValueError, RuntimeError) as exc:  # bad request, or the node is shutting down
            self.diagnostics.count(f"{service}.rejected")
            return Reply(False, str(exc))
        except FutureTimeout:
            self.diagnostics.count(f"{service}.timeout")
            return Reply(False, f"{service} did not finish within {COMMAND_TIMEOUT_S} s")
        self.diagnostics.count(f"{service}.accepted")
        return results

    def _set_prompt(self, camera: _Camera, prompt: ConceptPrompt, keep_tracks: bool) -> ConceptPrompt:
        camera.engine.set_prompt(prompt, keep_tracks=keep_tracks)
        labels = np.asarray(prompt.box_labels, bool)
        camera.exemplars = (int(labels.sum()), int((~labels).sum()))
        return prompt

    # -- worker ------------------------------------------------------------------------------------
    def _work(self, camera: _Camera) -> None:
        while not self._stop.is_set():
            commands, pending = camera.slot.take()
            for command, future in commands:
                try:
                    future.set_result(command())
                except Exception as exc:  # reported to the waiting service; unexpected ones logged too
                    if not isinstance(exc, ValueError):
                        log.exception("command on %s failed", camera.name)
                    future.set_exception(exc)
            if pending is not None:
                self._process(camera, pending.message, pending.received_at)

    def _reject(self, camera: _Camera, reason: str, error: Exception) -> None:
        self.diagnostics.rejected(camera.name, reason, str(error))
        if self.diagnostics.rejected_total(camera.name) in (1, 10, 100, 1000, 10000):  # sparse: counters have the rest
            log.warning("%s: dropped an input (%s): %s", camera.name, reason, error,
                        exc_info=None if isinstance(error, ValueError) else error)

    def _process(self, camera: _Camera, message: Any, received_at: float) -> None:
        try:
            rgb = self._decode(message, self.settings.input.max_image_pixels)
        except ValueError as exc:
            self._reject(camera, "bad_image", exc)
            return
        frame = Frame(image=rgb, stamp_ns=time_to_ns(message.header.stamp), frame_id=str(message.header.frame_id),
                      camera=camera.name)
        try:
            instances = camera.engine.step(frame)
        except ValueError as exc:
            self._reject(camera, "engine_rejected", exc)
            return
        except Exception as exc:  # an engine bug must not stop the camera: count it, log it sparsely
            self._reject(camera, "engine_error", exc)
            return
        camera.image_size, camera.stamp_ns = rgb.shape[:2], frame.stamp_ns
        positive, negative = camera.exemplars
        out = instances_to_message(instances, dropped_frames=camera.slot.dropped, num_positive_exemplars=positive,
                                   num_negative_exemplars=negative, missed_frames=camera.gaps.missed)
        if self.settings.output.overlay:
            self._publish("overlay", image_message(rgb_to_image_fields(overlay_image(rgb, instances), "bgr8"),
                                                   frame.stamp_ns, frame.frame_id))
        if self.settings.output.label_image:
            self._publish("labels", image_message(rgb_to_image_fields(label_image(instances), "mono16"),
                                                  frame.stamp_ns, frame.frame_id))
        out.latency_ms = (time.monotonic() - received_at) * 1e3
        self._publish("instances", out)
        self.diagnostics.published(camera.name, out.latency_ms, len(out.instances))

    def _report(self) -> None:
        period = self.settings.output.diagnostics_period_s
        while not self._stop.wait(period):
            received = {name: c.slot.received for name, c in self.cameras.items()}
            dropped = {name: c.slot.dropped for name, c in self.cameras.items()}
            engine = {name: vars(c.engine.counters) for name, c in self.cameras.items()
                      if hasattr(c.engine, "counters")}  # e.g. lost tracker workers (placement: objects)
            missed = {name: (c.gaps.missed, c.gaps.period_ns) for name, c in self.cameras.items()}
            self._publish("diagnostics", self.diagnostics.message(time.time_ns(), received, dropped, engine, missed))


def engine_factory(settings: Settings) -> Callable[[str], Any]:
    """``camera -> engine``: one engine (tracks, memory) per camera; cameras on the same device share one
    copy of the model weights. With several devices, ``placement: cameras`` pins each camera to the device
    with the fewest cameras so far (in topic order); ``placement: objects`` gives the one camera a sharded
    engine: detector on the first device, tracked objects over one worker process per other device."""
    from ..engine import load_engine, load_model  # heavy (torch, transformers): only when a node is built
    from ..engine.engine import resolve_device, resolve_dtype
    from ..engine.placement import assign_cameras

    cameras, devices = list(settings.input.topics), list(settings.devices)
    placed = assign_cameras(cameras, devices)
    models: dict[tuple[str, Any], Any] = {}  # (device, dtype) -> loaded model

    def make(camera: str) -> Any:
        own = settings
        if len(devices) > 1:
            own = settings.replace(devices=[devices[placed[camera]]])
        device = resolve_device(own)
        dtype = resolve_dtype(own, device)
        key = (str(device), dtype)
        if key not in models:
            models[key] = load_model(own.model, device, dtype, own.image_size)
        if settings.placement == "objects" and len(devices) > 1:
            from ..engine.distributed import load_sharded_engine

            return load_sharded_engine(settings, models[key])
        return load_engine(own, models[key])

    make.placement = placed  # camera -> index into settings.devices, for diagnostics and tests
    return make
