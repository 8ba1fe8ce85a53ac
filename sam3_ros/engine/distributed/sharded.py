"""``placement: objects``: one stream, its tracked objects sharded over worker processes.

The coordinator (this process, ``settings.devices[0]``) runs preprocessing, the encoder, the detector
and the merge planning; one worker process per further entry of ``settings.devices`` tracks the objects
placed on it (least-loaded when they start). The features go to the workers right after the encoder, so they
track while the detector runs here. A worker that dies is detected (process sentinel, or a failed or
timed-out collective), counted, and its objects start again on the other workers from their last masks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import torch

from ...settings import EngineSettings, Settings
from ..engine import Engine, EngineCounters, engine_settings, resolve_device, resolve_dtype
from ..loading import LoadedModel, load_model
from ..types import Frame, Instances
from .pool import WorkerLost, WorkerPool
from .remote import RemoteTracker, ShardedBank

log = logging.getLogger(__name__)

WORKER_TIMEOUT_S = 60.0  # a collective or answer slower than this counts as a lost worker
WORKER_START_TIMEOUT_S = 600.0  # model loading in a fresh process (large models on a busy machine)
RECOVERY_ATTEMPTS = 3


@dataclass
class ShardedCounters(EngineCounters):
    workers_lost: int = 0  # worker processes that exited or stopped answering
    objects_respawned: int = 0  # objects re-started on another worker from their last mask
    frames_failed: int = 0  # frames dropped because a worker was lost while they were processed


class ShardedEngine(Engine):
    """``Engine`` with its tracked objects on worker processes (one per ``worker_devices`` entry).

    One per process: the workers' group is the process's default ``torch.distributed`` group."""

    bank: ShardedBank
    tracker: RemoteTracker
    counters: ShardedCounters

    def __init__(
        self,
        loaded: LoadedModel,
        settings: EngineSettings,
        device: torch.device,
        dtype: torch.dtype,
        worker_devices: list[str],
        timeout_s: float = WORKER_TIMEOUT_S,
    ):
        if not worker_devices:
            raise ValueError("ShardedEngine needs at least one worker device")
        self._worker_devices, self._timeout_s = list(worker_devices), timeout_s
        super().__init__(loaded, settings, device, dtype)
        self.counters = ShardedCounters()

    def _make_tracker(self, tracker_model) -> tuple[ShardedBank, RemoteTracker]:
        template = dict(
            model=self.settings.model,
            dtype=str(self.dtype).removeprefix("torch."),
            image_size=self.settings.image_size,
            low_res=self.low_res,
            settings=self.settings.to_dict(),
        )
        self.pool = WorkerPool(template, self._worker_devices, self.device, self._timeout_s, WORKER_START_TIMEOUT_S)
        bank = ShardedBank(self.settings.tracking.max_objects, self.pool)
        return bank, RemoteTracker(self.pool, bank, self.low_res, self.dtype, self.device)

    def _features_ready(self, feats, pos, frame: int) -> None:
        self.tracker.offer(feats, pos)
        live = list(self._objects.slots)
        if live:  # the workers track while the detector runs here
            self.tracker.start_propagate(feats, pos, live, frame)

    # -- the engine's surface, with supervision --------------------------------------------------
    def step(self, frame: Frame) -> Instances:
        """``Engine.step``; a worker lost during the frame drops it (RuntimeError) after recovery."""
        self._supervise()
        self.pool.comm.take_elapsed_ms()  # this frame's communication only (not the requests' since the last)
        try:
            result = super().step(frame)
        except WorkerLost as exc:
            self.counters.frames_failed += 1
            self._recover()
            raise RuntimeError(f"frame dropped: {exc}") from None
        except Exception:
            try:
                self.tracker.abandon()
            except WorkerLost:
                self._recover()
            raise
        result.timings_ms["comm"] = self.pool.comm.take_elapsed_ms()  # inside the tracker and merge stages
        return result

    def add_points(self, obj_id, points, labels, box=None) -> int:
        self._supervise()
        if self._last is not None:
            self.tracker.offer(*self._last[:2])
        try:
            return super().add_points(obj_id, points, labels, box)
        except WorkerLost as exc:
            self._recover()
            raise RuntimeError(f"add_points failed: {exc}; try again") from None

    @property
    def num_workers(self) -> int:
        return len(self.pool.workers)

    def worker_of(self, obj_id: int) -> int:
        """Id of the worker tracking object ``obj_id`` (ValueError if unknown)."""
        return self.bank.owner[self._slot_of(obj_id)]

    def objects_per_worker(self) -> dict[int, int]:
        """Worker id -> number of objects it tracks."""
        owned = self.bank.owned()
        return {w.id: len(owned.get(w.id, [])) for w in self.pool.workers}

    def frame_traffic(self, objects: int) -> dict[str, int]:
        """Sizes of one frame's collectives with ``objects`` tracked: elements of the features broadcast,
        rows per worker (padded), row width, and bytes through the coordinator. Needs a processed frame."""
        if self._last is None:
            raise ValueError("frame_traffic needs a processed frame first (call step)")
        feats, pos, _ = self._last
        numel = sum(t.numel() for t in feats) + pos[-1].numel()
        workers = self.num_workers
        pad, width = -(-objects // workers), 1 + self.low_res**2
        item = torch.empty(0, dtype=self.dtype).element_size()
        return {"feature_numel": numel, "pad": pad, "width": width, "bytes": item * workers * (numel + 2 * pad * width)}

    def probe_communication(self, objects: int) -> float:
        """Milliseconds of one frame's collectives alone (dummy data, ``frame_traffic`` sizes)."""
        sizes = self.frame_traffic(objects)
        return self.pool.probe(sizes["feature_numel"], sizes["pad"], sizes["width"], self.dtype)

    def close(self) -> None:
        """Stop the worker processes."""
        self.pool.close()

    # -- failures -------------------------------------------------------------------------------------
    def _supervise(self) -> None:
        if self.pool.dead():
            self._recover()

    def _recover(self) -> None:
        """Re-form the group without dead workers and re-start their objects from their last masks."""
        for _ in range(RECOVERY_ATTEMPTS):
            try:
                dead = self.pool.recover(self.bank.owned())
                self.counters.workers_lost += len(dead)
                self.tracker.regrouped()
                orphans = self.bank.orphans()
                if orphans:
                    self.bank.replace(orphans)
                    self.tracker.offer(*self._last[:2])
                    with torch.inference_mode():
                        self.tracker.respawn(orphans, self._frame)
                    self.counters.objects_respawned += len(orphans)
                return
            except WorkerLost as exc:
                log.warning("recovering from a lost tracker worker failed (%s); trying again", exc)
        raise RuntimeError(f"tracker workers could not be recovered after {RECOVERY_ATTEMPTS} attempts")


def load_sharded_engine(
    settings: EngineSettings | Settings, loaded: LoadedModel | None = None, timeout_s: float = WORKER_TIMEOUT_S
) -> ShardedEngine:
    """A ``ShardedEngine``: coordinator on ``settings.devices[0]``, one worker per further entry (at least two
    entries: ``[cuda:0, cuda:1, cuda:2]`` = detector on GPU 0, objects over GPUs 1 and 2).

    Workers load ``settings.model`` themselves: give a model that loads the same everywhere (a directory, or
    a seeded built-in)."""
    settings = engine_settings(settings)
    if len(settings.devices) < 2:
        raise ValueError("placement: objects needs at least two devices: the coordinator's, then the workers'")
    device = resolve_device(settings)
    dtype = resolve_dtype(settings, device)
    workers = [str(resolve_device(replace(settings, devices=[name]))) for name in settings.devices[1:]]
    loaded = loaded or load_model(settings.model, device, dtype, settings.image_size)
    return ShardedEngine(loaded, settings, device, dtype, workers, timeout_s)
