"""The tracker node's logic, shared by both transports (rclpy and DDS-direct).

Data flow per camera: the transport calls ``on_image`` (never blocks) -> latest-wins slot -> the
camera's worker thread: decode -> ``engine.step`` -> ``InstanceArray`` (+ overlay, labels, ``Detection2DArray``;
with depth, ``Detection3DArray`` and the point cloud) -> ``publish``. Depth images and CameraInfo arrive
through ``on_depth`` / ``on_camera_info`` and pair with the colour frame by stamp (``depth.DepthInput``).
Service requests are validated on the caller's thread, then run on the camera's worker
between two frames (the engine is never used from two threads), and answered with a ``Reply``.
Outputs go through one callable, ``publish(kind, message)``, kind one of ``instances``, ``overlay``,
``labels``, ``detections``, ``detections_3d``, ``points``, ``diagnostics``; messages are rosbags dataclasses
(the rclpy transport converts them).

No input and no failure of one stage stops a camera: an exception in decoding, the engine, building
the outputs or publishing drops that frame, counted in ``/diagnostics`` under a reason (``bad_image``,
``decode_error``, ``engine_rejected``, ``engine_error``, ``output_error``, ``publish_error``), and the
worker takes the next frame; a failing command becomes a failed ``Reply``. A frame whose 3D cannot be computed
(no depth paired, no or bad CameraInfo, a bad depth image) keeps its 2D outputs and is counted under
``depth.dropped.<reason>``; instances with too little valid depth are left out of ``Detection3DArray`` and
counted (``depth.instances_without_3d``). Only a ``BaseException``
that is not an ``Exception`` (``SystemExit``, ...) ends a worker (its frame counted as ``worker_stopped``).
A watchdog on the diagnostics thread restarts an ended worker with the same engine and tracks (up to
``WORKER_RESTARTS`` times without an output in between; then the camera is reported dead), and reports
a camera as ERROR when an image has waited ``output.stall_timeout_s`` for an output. Services for a
camera without a worker answer at once.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..codec.image import compressed_to_rgb, image_to_rgb, rgb_to_image_fields
from ..engine.types import ConceptPrompt, Frame, to_host
from ..settings import Settings
from .depth import DepthInput, NoDepth3D, depth_inputs, locate_from_messages
from .diagnostics import Diagnostics
from .instances3d import Instances3D
from .messages import image_message, instances_to_message, time_to_ns
from .messages_3d import add_3d_to_instances, detections_2d_message, detections_3d_message, point_cloud_message
from .overlay import label_image, overlay_image
from .requests import parse_add_points, parse_prompt_text, parse_set_prompt
from .slot import LatestSlot, SlotClosed
from .stamps import StampGaps

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 30.0  # longest a service waits for the worker (one engine step, plus model warm-up)
WORKER_RESTARTS = 3  # restarts of a camera's worker without an output in between, before it is reported dead


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
    busy: tuple[str, float] | None = None  # (stage, monotonic start) while the worker handles an input or command
    ended: str = ""  # why the worker last ended, until the next output
    restarts: int = 0  # worker restarts since the last output
    dead: bool = False  # the worker ended WORKER_RESTARTS times without an output: not restarted again
    depth: DepthInput | None = None  # aligned depth and CameraInfo, for cameras with a depth topic


def decode_image(message: Any, max_pixels: int) -> np.ndarray:
    """RGB uint8 array of a ``sensor_msgs/Image`` or ``CompressedImage`` (told apart by ``format``)."""
    if hasattr(message, "format"):
        return compressed_to_rgb(message, max_pixels=max_pixels)
    return image_to_rgb(message, max_pixels=max_pixels)


def _drop_reason(stage: str, error: Exception) -> str:
    """The diagnostics reason of a frame dropped by ``error`` in ``stage`` (ValueError: the input's fault)."""
    if isinstance(error, ValueError) and stage in ("decode", "engine"):
        return "bad_image" if stage == "decode" else "engine_rejected"
    return f"{stage}_error"


def _dead_reason(camera: _Camera) -> str:
    return f"its worker stopped {camera.restarts + 1} times without an output; last: {camera.ended}"


def _is_sparse(count: int) -> bool:
    """Log the 1st, 10th, 100th, ... occurrence only: the counters in /diagnostics have the rest."""
    return count > 0 and 10 ** (len(str(count)) - 1) == count


class PerceptionNode:
    """The node logic both transports (rclpy, DDS-direct) share. ``engine_factory(camera)`` builds one engine
    per camera; ``decode(message, max_pixels)`` turns an image message into RGB (ValueError for bad input)."""

    def __init__(
        self,
        settings: Settings,
        engine_factory: Callable[[str], Any],
        publish: Callable[[str, Any], None],
        decode: Callable[[Any, int], np.ndarray] = decode_image,
    ):
        self.settings = settings
        self._publish = publish
        self._decode = decode
        self.cameras = {topic: _Camera(topic, engine_factory(topic)) for topic in settings.input.topics}
        self.depth_topics = depth_inputs(settings)  # camera -> (depth topic, CameraInfo topic)
        for camera in self.depth_topics:
            self.cameras[camera].depth = DepthInput(round(settings.depth.max_stamp_diff_ms * 1e6))
        self.diagnostics = Diagnostics(list(self.cameras))
        self._stop = threading.Event()
        self._lifecycle = threading.Lock()  # stop() and the watchdog's worker restarts exclude each other
        self._diagnostics_thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Start one worker per camera and the diagnostics thread (which also runs the watchdog)."""
        self._stop.clear()
        for camera in self.cameras.values():
            camera.slot = LatestSlot()  # a stopped node's slots are closed; counts restart with the node
            camera.busy, camera.ended, camera.restarts, camera.dead = None, "", 0, False
            camera.gaps = StampGaps()
            self._start_worker(camera)
        self._diagnostics_thread = threading.Thread(target=self._report, name="diagnostics", daemon=True)
        self._diagnostics_thread.start()

    def _start_worker(self, camera: _Camera) -> None:
        worker = threading.Thread(target=self._work, args=(camera,), name=f"worker:{camera.name}", daemon=True)
        worker.start()
        camera.worker = worker  # only once started: whoever reads it may join it

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the workers (each finishes its current frame) and the diagnostics thread."""
        with self._lifecycle:
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

    def on_depth(self, camera: str, message: Any) -> None:
        """An aligned depth image of ``camera`` arrived (cheap: only stores it)."""
        self.cameras[camera].depth.put_depth(message)

    def on_camera_info(self, camera: str, message: Any) -> None:
        """``camera``'s CameraInfo arrived (the latest one is used)."""
        self.cameras[camera].depth.put_camera_info(message)

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

        def commands():  # every camera's prompt is validated before any camera changes
            prompts = [
                (c, parse_set_prompt(request, self.settings.prompt, c.image_size))
                for c in self._targets(request.camera)
            ]
            return [(c, lambda c=c, p=p: self._set_prompt(c, p, keep_tracks)) for c, p in prompts]

        done = self._call("set_prompt", commands)
        if isinstance(done, Reply):
            return done
        return Reply(
            True,
            f"prompt set on {len(done)} camera(s): phrases {done[0].phrases}, {len(done[0].boxes)} exemplar box(es)",
        )

    def add_points(self, request: Any) -> Reply:
        """``AddPoints``: refine object ``object_id`` or create one (-1) from clicks and/or a box."""
        stamp = time_to_ns(request.stamp)

        def run(camera: _Camera) -> int:
            if stamp and stamp != camera.stamp_ns:  # checked on the worker: the latest image moves on
                raise ValueError(
                    f"stamp {stamp} ns is not the latest processed image of {camera.name} "
                    f"({camera.stamp_ns} ns); use 0 for the latest"
                )
            points = parse_add_points(request, camera.image_size)
            return int(camera.engine.add_points(points.object_id, points.points, points.labels, points.box))

        def commands():
            (camera,) = self._targets(request.camera, single=True)
            parse_add_points(request, camera.image_size)  # reject bad clicks without waiting for the worker
            return [(camera, lambda: run(camera))]

        done = self._call("add_points", commands)
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

        done = self._call(
            "remove_object", lambda: [(c, lambda c=c: run(c)) for c in self._targets(request.camera)], check
        )
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

    def _call(
        self,
        service: str,
        commands: Callable[[], list[tuple[_Camera, Callable[[], Any]]]],
        check: Callable[[list], None] | None = None,
    ) -> list | Reply:
        """Validate with ``commands()`` on the caller's thread, giving (camera, command) pairs; run each command
        on its camera's worker (between frames) and wait up to ``COMMAND_TIMEOUT_S`` in all; then ``check``
        the results. Every failure becomes a failed Reply, counted in the diagnostics as
        ``<service>.rejected`` (ValueError: a bad request), ``.unavailable`` (no worker serves a camera),
        ``.timeout``, or ``.failed`` (anything else the engine raised)."""
        try:
            futures = [camera.slot.submit(command) for camera, command in commands()]
            if wait_futures(futures, COMMAND_TIMEOUT_S).not_done:
                self.diagnostics.count(f"{service}.timeout")
                return Reply(False, f"{service} did not finish within {COMMAND_TIMEOUT_S} s")
            results = [future.result() for future in futures]
            if check is not None:
                check(results)
        except ValueError as exc:
            outcome, text = "rejected", str(exc)
        except SlotClosed as exc:
            outcome, text = "unavailable", str(exc)
        except Exception as exc:  # an engine bug or an exhausted resource: the caller learns it, the node goes on
            outcome, text = "failed", f"{service} failed: {type(exc).__name__}: {exc}"
        else:
            self.diagnostics.count(f"{service}.accepted")
            return results
        self.diagnostics.count(f"{service}.{outcome}")
        return Reply(False, text)

    def _set_prompt(self, camera: _Camera, prompt: ConceptPrompt, keep_tracks: bool) -> ConceptPrompt:
        camera.engine.set_prompt(prompt, keep_tracks=keep_tracks)
        labels = np.asarray(prompt.box_labels, bool)
        camera.exemplars = (int(labels.sum()), int((~labels).sum()))
        return prompt

    # -- worker ------------------------------------------------------------------------------------
    def _work(self, camera: _Camera) -> None:
        commands: list[tuple[Callable[[], Any], Future]] = []
        try:
            while not self._stop.is_set():
                camera.busy = None
                commands, pending = camera.slot.take()
                for command, future in commands:
                    self._run_command(camera, command, future)
                if pending is not None:
                    self._process(camera, pending.message, pending.received_at)
        except BaseException as exc:  # errors are handled per frame and command; this (SystemExit, ...) ends us
            camera.ended = f"{type(exc).__name__}: {exc}"
            reason = f"the worker of {camera.name} stopped ({camera.ended})"
            if camera.busy is not None and camera.busy[0] != "command":  # the frame in hand is lost: count it
                self.diagnostics.rejected(camera.name, "worker_stopped", camera.ended)
            camera.slot.close(reason)  # services answer at once until the watchdog restarts it
            for _, future in commands:
                if not future.done():
                    future.set_exception(SlotClosed(reason))
            log.error("%s", reason)
        finally:
            camera.busy = None

    def _run_command(self, camera: _Camera, command: Callable[[], Any], future: Future) -> None:
        camera.busy = ("command", time.monotonic())
        try:
            result = command()
        except Exception as exc:  # reported to the waiting service; unexpected ones logged too
            if not isinstance(exc, ValueError):
                log.exception("command on %s failed", camera.name)
            future.set_exception(exc)
        else:
            future.set_result(result)

    def _process(self, camera: _Camera, message: Any, received_at: float) -> None:
        """Decode one image, step the engine, build and publish the outputs. An exception in any stage drops
        the frame, counted under a reason, and the worker goes on with the next one."""
        try:
            camera.busy = ("decode", time.monotonic())
            rgb = self._decode(message, self.settings.input.max_image_pixels)
            frame = Frame(
                image=rgb,
                stamp_ns=time_to_ns(message.header.stamp),
                frame_id=str(message.header.frame_id),
                camera=camera.name,
            )
            if camera.depth is not None:
                camera.depth.want(frame.stamp_ns)  # depth arriving while the engine runs pairs too
            camera.busy = ("engine", time.monotonic())
            instances = camera.engine.step(frame)
            camera.image_size, camera.stamp_ns = rgb.shape[:2], frame.stamp_ns
            camera.busy = ("output", time.monotonic())
            outputs = self._outputs(camera, rgb, frame, instances)
            camera.busy = ("publish", time.monotonic())
            for kind, out in outputs:
                if kind == "instances":
                    out.latency_ms = (time.monotonic() - received_at) * 1e3
                self._publish(kind, out)
        except Exception as exc:  # no input and no failing stage may stop the camera
            self._drop(camera, _drop_reason(camera.busy[0], exc), exc)
            return
        published = outputs[-1][1]  # the InstanceArray
        self.diagnostics.published(camera.name, published.latency_ms, len(published.instances))
        camera.slot.answered()
        camera.restarts, camera.ended = 0, ""

    def _outputs(self, camera: _Camera, rgb: np.ndarray, frame: Frame, instances: Any) -> list[tuple[str, Any]]:
        """The messages of one processed frame as (kind, message), in publishing order: instances last."""
        outputs = []
        if self.settings.output.overlay:
            outputs.append(
                (
                    "overlay",
                    image_message(
                        rgb_to_image_fields(overlay_image(rgb, instances), "bgr8"), frame.stamp_ns, frame.frame_id
                    ),
                )
            )
        if self.settings.output.label_image:
            outputs.append(
                (
                    "labels",
                    image_message(
                        rgb_to_image_fields(label_image(instances), "mono16"), frame.stamp_ns, frame.frame_id
                    ),
                )
            )
        positive, negative = camera.exemplars
        instance_array = instances_to_message(
            instances,
            dropped_frames=camera.slot.dropped,
            num_positive_exemplars=positive,
            num_negative_exemplars=negative,
            missed_frames=camera.gaps.missed,
        )
        outputs.append(("detections", detections_2d_message(instance_array)))
        if camera.depth is not None:
            outputs += self._outputs_3d(camera, rgb.shape[:2], instances, instance_array)
        outputs.append(("instances", instance_array))
        return outputs

    def _outputs_3d(
        self, camera: _Camera, image_size: tuple[int, int], instances: Any, instance_array: Any
    ) -> list[tuple[str, Any]]:
        """The 3D outputs of one frame; none (counted, with the reason) when its 3D cannot be computed."""
        with_points = self.settings.output.point_cloud
        try:
            located = self._locate(camera, image_size, instances, with_points)
        except Exception as exc:  # bad depth input or a failing 3D step: the 2D outputs go on without it
            reason = exc.reason if isinstance(exc, NoDepth3D) else "error"
            text = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            count = self.diagnostics.depth_dropped(camera.name, reason, text)
            if _is_sparse(count):
                log.warning(
                    "%s: a frame without 3D (%s, %d so far): %s",
                    camera.name,
                    reason,
                    count,
                    text,
                    exc_info=None if isinstance(exc, ValueError) else exc,
                )
            return []
        ids = np.asarray(to_host(instances.ids))
        add_3d_to_instances(instance_array, ids, located)
        outputs = [("detections_3d", detections_3d_message(instance_array, ids, located))]
        if with_points:
            outputs.append(("points", point_cloud_message(instance_array, ids, located)))
        self.diagnostics.depth_located(camera.name, len(instance_array.instances) - len(outputs[0][1].detections))
        return outputs

    def _locate(self, camera: _Camera, image_size: tuple[int, int], instances: Any, with_points: bool) -> Instances3D:
        """The 3D of the frame's instances from the depth image paired with it; ``NoDepth3D`` if it has none."""
        paired = camera.depth.take()
        depth_topic, info_topic = self.depth_topics[camera.name]
        if paired.depth is None:
            raise NoDepth3D(
                "no_depth",
                f"no depth image on {depth_topic} within "
                f"{self.settings.depth.max_stamp_diff_ms:g} ms of the colour image's stamp",
            )
        if paired.camera_info is None:
            raise NoDepth3D("no_camera_info", f"no CameraInfo received on {info_topic} yet")
        return locate_from_messages(
            paired.depth,
            paired.camera_info,
            image_size,
            instances,
            self.settings,
            with_points,
            (depth_topic, info_topic),
        )

    def _drop(self, camera: _Camera, reason: str, error: Exception) -> None:
        text = str(error) if isinstance(error, ValueError) else f"{type(error).__name__}: {error}"
        count = self.diagnostics.rejected(camera.name, reason, text)
        if _is_sparse(count):
            log.warning(
                "%s: dropped a frame (%s, %d so far): %s",
                camera.name,
                reason,
                count,
                text,
                exc_info=None if isinstance(error, ValueError) else error,
            )

    # -- diagnostics and watchdog ------------------------------------------------------------------
    def _report(self) -> None:
        """Run the watchdog every tick; publish ``/diagnostics`` once a period, and at once when a camera's
        problem changes (so that a stall shows within the watchdog time)."""
        output = self.settings.output
        tick = min(output.diagnostics_period_s, output.stall_timeout_s / 10)
        next_report = time.monotonic() + output.diagnostics_period_s
        while not self._stop.wait(tick):
            try:
                changed = self._watch()
                if changed or time.monotonic() >= next_report:
                    next_report = time.monotonic() + output.diagnostics_period_s
                    self._publish("diagnostics", self._diagnostics_message())
            except Exception as exc:  # e.g. a failed publish: the watchdog must keep running
                if _is_sparse(self.diagnostics.count("diagnostics.error")):
                    log.warning("diagnostics failed: %s", exc, exc_info=exc)

    def _diagnostics_message(self) -> Any:
        received = {name: c.slot.received for name, c in self.cameras.items()}
        dropped = {name: c.slot.dropped for name, c in self.cameras.items()}
        engine = {
            name: vars(c.engine.counters) for name, c in self.cameras.items() if hasattr(c.engine, "counters")
        }  # e.g. lost tracker workers (placement: objects)
        missed = {name: (c.gaps.missed, c.gaps.period_ns) for name, c in self.cameras.items()}
        depth = {name: c.depth.received for name, c in self.cameras.items() if c.depth is not None}
        return self.diagnostics.message(time.time_ns(), received, dropped, engine, missed, depth)

    def _watch(self) -> bool:
        """Restart ended workers, and record each camera's problem in the diagnostics; True if one changed."""
        now = time.monotonic()
        changed = False
        for camera in self.cameras.values():
            if camera.worker is not None and not camera.worker.is_alive() and not camera.dead:
                self._restart(camera)
            changed |= self.diagnostics.set_problem(camera.name, self._problem(camera, now))
        return changed

    def _restart(self, camera: _Camera) -> None:
        """A new worker for a camera whose worker ended, with the same engine, tracks and slot; after
        ``WORKER_RESTARTS`` restarts without an output the camera is dead and its services answer so."""
        with self._lifecycle:
            if self._stop.is_set():
                return
            if camera.restarts >= WORKER_RESTARTS:
                camera.dead = True
                camera.slot.close(
                    f"camera {camera.name} is dead: {_dead_reason(camera)}; restart the node "
                    "(or deactivate and activate it)"
                )
                log.error("%s is dead: %s", camera.name, _dead_reason(camera))
                return
            camera.restarts += 1
            self.diagnostics.worker_restarted(camera.name)
            camera.slot.reopen()
            self._start_worker(camera)
        log.warning(
            "%s: worker stopped (%s); restarted with its engine and tracks (%d of %d)",
            camera.name,
            camera.ended,
            camera.restarts,
            WORKER_RESTARTS,
        )

    def _problem(self, camera: _Camera, now: float) -> str:
        """Why the camera is an ERROR ("" when it is not): dead, or an image waited ``stall_timeout_s``."""
        if camera.dead:
            return f"dead: {_dead_reason(camera)}"
        timeout = self.settings.output.stall_timeout_s
        since = camera.slot.unanswered_since
        if since is None or now - since < timeout:
            return ""
        waited = f"no output for {now - since:.1f} s after an image"
        busy = camera.busy
        if busy is not None and now - busy[1] >= timeout:
            return f"{waited}: busy in {busy[0]} for {now - busy[1]:.1f} s"
        if camera.ended:
            return f"{waited}: its worker stopped ({camera.ended}), restarted {camera.restarts} time(s)"
        if now - (camera.slot.last_received_at or 0.0) >= timeout:
            return ""  # the camera went quiet after images that got no output: nothing waits now
        last = self.diagnostics.last_error(camera.name) or "none processed yet"
        return f"{waited}: every image failed; last: {last}"


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
