"""A tracker worker process: a ``BatchedTracker`` and its own ``MemoryBank`` for the objects it owns.

Commands arrive on a pipe from the coordinator as ``(name, kwargs)`` and run in order; tensors move
through the process group (``group.Collectives``). Slots are the coordinator's global slot numbers, so
a worker's bank has room for every object (after a failure one worker may hold them all). A failed
collective means a peer (or the coordinator) is gone: the worker then skips commands until the
coordinator forms the group again; any other error ends the process (the coordinator sees it exit and
moves its objects). It exits when the pipe closes (the coordinator ended, even killed).
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from multiprocessing.connection import Connection

import numpy as np
import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass
class WorkerSpec:
    """Everything a worker needs to build its part (plain data: it crosses a process spawn)."""

    model: str
    device: str
    dtype: str  # torch dtype name, e.g. "float32"
    image_size: int
    low_res: int  # side of the low-res masks (tracker output, detector masks)
    settings: dict  # EngineSettings.to_dict()
    backend: str  # torch.distributed backend of the group
    store_host: str
    store_port: int
    timeout_s: float


class Shard:
    """The worker's state and one method per command."""

    def __init__(self, spec: WorkerSpec, conn: Connection):
        from ...settings import EngineSettings
        from ..engine import memory_bank_options
        from ..loading import load_model
        from ..memory_bank import MemoryBank
        from ..tracker import BatchedTracker
        from .group import Collectives

        self.conn = conn
        self.device, self.dtype = torch.device(spec.device), getattr(torch, spec.dtype)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        settings = EngineSettings.from_dict(spec.settings)
        tracker_model = load_model(spec.model, self.device, self.dtype, spec.image_size).model.tracker_model
        self.bank = MemoryBank(
            settings.tracking.max_objects, **memory_bank_options(settings, tracker_model, self.device, self.dtype)
        )
        self.tracker = BatchedTracker(tracker_model, self.bank)
        self.backend, self.timeout_s = spec.backend, spec.timeout_s
        self.store = dist.TCPStore(
            spec.store_host, spec.store_port, is_master=False, timeout=datetime.timedelta(seconds=spec.timeout_s)
        )
        self.comm = Collectives(self.device, spec.backend)
        self.side = spec.low_res
        self.held: set[int] = set()  # slots in use
        self.feats: list[torch.Tensor] = []
        self.pos: list[torch.Tensor] = []
        self.tracked: tuple[list[int], dict] | None = None  # slots and outputs of the last propagate

    # -- group and bookkeeping -------------------------------------------------------------------
    def group(self, generation: int, rank: int, world: int, keep: list[int]) -> None:
        """Join the group's new generation; forget any object the coordinator no longer places here."""
        from .group import join

        join(self.store, generation, rank, world, self.backend, self.timeout_s)
        self.free(sorted(self.held - set(keep)))
        self.tracked = None

    def free(self, slots: list[int]) -> None:
        slots = [s for s in slots if s in self.held]  # a slot placed here but never started is not held
        self.bank.free(slots)
        self.held -= set(slots)

    def clear(self) -> None:
        self.bank.clear()
        self.held.clear()

    def tensor_bytes(self) -> None:
        self.conn.send(self.bank.tensor_bytes())

    # -- per frame ---------------------------------------------------------------------------------
    def features(self, shapes: list[tuple[int, ...]]) -> None:
        """Receive the frame's tracker features: the feature maps, then the last positional encoding."""
        sizes = [int(np.prod(s)) for s in shapes]
        flat = self.comm.broadcast(torch.empty(sum(sizes), dtype=self.dtype, device=self.comm.device))
        parts = [p.view(s).to(self.device) for p, s in zip(flat.split(sizes), shapes)]
        self.feats, self.pos = parts[:-1], [parts[-1]]

    def propagate(self, frame: int, slots: list[int], pad: int) -> None:
        """Track ``slots`` into ``frame``; send low-res mask logits and object scores to the coordinator."""
        rows = None
        if slots:
            out = self.tracker.propagate(self.feats, self.pos, slots, frame)
            self.tracked = (list(slots), out)
            rows = torch.cat([out["object_score_logits"].flatten(1), out["low_res"].flatten(1)], dim=1)
        self.comm.gather_rows(rows, pad, 1 + self.side * self.side, self.dtype)

    def remember_tracked(
        self, frame: int, slots: list[int], conditioning: list[bool], binarize: bool, pad: int, given: bool
    ) -> None:
        """Write ``frame``'s memory of tracked ``slots`` from the last propagate; with ``given``, the
        masks and scores the coordinator decided on arrive by scatter (else the propagated ones)."""
        received = self.comm.scatter_rows(None, pad, 1 + self.side * self.side, self.dtype) if given else None
        if not slots:
            return
        tracked_slots, out = self.tracked
        rows = torch.tensor([tracked_slots.index(s) for s in slots], device=self.device)
        out = {k: v[rows] for k, v in out.items()}
        high_res = scores = None
        if received is not None:
            block = received[: len(slots)].to(self.device)
            scores, high_res = block[:, :1], block[:, 1:].reshape(len(slots), 1, self.side, self.side)
        self.tracker.remember(
            self.feats,
            slots,
            frame,
            out,
            np.asarray(conditioning, bool),
            binarize,
            high_res=high_res,
            object_score_logits=scores,
        )

    def start_from_masks(self, frame: int, slots: list[int], pad: int) -> None:
        """New objects in ``slots`` from binary low-res masks (scattered): conditioning memory."""
        side = self.side
        received = self.comm.scatter_rows(None, pad, side * side, self.dtype)
        if not slots:
            return
        self.bank.claim(slots)
        self.held |= set(slots)
        masks = received[: len(slots)].to(self.device).reshape(len(slots), 1, side, side) > 0
        out = self.tracker.from_masks(self.feats, masks)
        self.tracker.remember(self.feats, slots, frame, out, np.ones(len(slots), bool), binarize=True)

    def start_from_points(self, frame: int, slot: int, new: bool, points, labels, box) -> None:
        """Start (``new``) or refine object ``slot`` from clicks; answers with its low-res mask logits."""
        if new:
            self.bank.claim([slot])
            self.held.add(slot)
        to = dict(device=self.device)
        out = self.tracker.from_points(
            self.feats,
            self.pos,
            None if new else slot,
            frame,
            points.to(dtype=self.dtype, **to),
            labels.to(**to),
            None if box is None else box.to(dtype=self.dtype, **to),
        )
        self.tracker.remember(self.feats, [slot], frame, out, np.ones(1, bool), binarize=True)
        self.conn.send(out["low_res"].float().cpu())

    def probe(self, feature_numel: int, pad: int, width: int) -> None:
        """The collectives of one frame on dummy data (communication alone, for the benchmark)."""
        self.comm.broadcast(torch.empty(feature_numel, dtype=self.dtype, device=self.comm.device))
        self.comm.gather_rows(None, pad, width, self.dtype)
        self.comm.scatter_rows(None, pad, width, self.dtype)


def main(spec: WorkerSpec, conn: Connection) -> None:
    """Process entry point: build the shard, say ready, run commands until told to close."""
    from .group import CollectiveError, leave

    torch.set_grad_enabled(False)
    shard = Shard(spec, conn)
    conn.send("ready")
    broken = False
    while True:
        try:
            name, kwargs = conn.recv()
        except (EOFError, OSError):  # the coordinator is gone
            break
        if name == "close":
            break
        if broken and name != "group":
            continue  # this command belonged to a generation that failed
        try:
            with torch.inference_mode():
                getattr(shard, name)(**kwargs)
            broken = False
        except (CollectiveError, dist.DistError) as exc:  # a peer died, or the coordinator left the group
            log.info("worker on %s: %s failed (%s); waiting for the group to re-form", spec.device, name, exc)
            broken = True
        # any other error ends the process: the coordinator sees it exit and moves its objects elsewhere
    leave()
