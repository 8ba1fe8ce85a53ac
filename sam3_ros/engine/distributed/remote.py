"""The engine's tracker and memory bank, stood in for by the workers that hold the objects.

``ShardedBank`` and ``RemoteTracker`` offer the calls ``Engine`` makes on ``MemoryBank`` and
``BatchedTracker``, so the engine's frame loop (detector, merge planning, output) runs unchanged on the
coordinator while every object's tracking and memory live on its worker. Per frame:
features broadcast -> each worker tracks its objects -> low-res masks and object scores gathered ->
the merge is planned here -> each worker gets its part of the plan (which masks become memory,
re-conditioning, new objects with their detector masks, removals) and applies it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..memory_bank import take_slots
from ..placement import least_loaded
from .pool import WorkerPool


class ShardedBank:
    """Global object slots (the engine indexes its per-object state with them) and the worker owning each."""

    def __init__(self, capacity: int, pool: WorkerPool):
        self.capacity, self.pool = capacity, pool
        self.owner: dict[int, int] = {}  # slot -> worker id
        self._free = list(range(capacity - 1, -1, -1))  # descending, as take_slots wants

    @property
    def free_slots(self) -> int:
        return len(self._free)

    def allocate(self, count: int) -> list[int]:
        """``count`` slots, each placed on the worker with the fewest objects at that moment."""
        slots = take_slots(self._free, count)
        self._place(slots)
        return slots

    def free(self, slots: list[int]) -> None:
        for worker, part in zip(self.pool.workers, self.split(slots)):
            if part:
                self.pool.send(worker, "free", slots=part)
        for slot in slots:
            self.owner.pop(slot, None)
        self._free.extend(slots)

    def clear(self) -> None:
        self.pool.send_each("clear", [{} for _ in self.pool.workers])
        self.owner.clear()
        self._free = list(range(self.capacity - 1, -1, -1))

    def tensor_bytes(self) -> int:
        """Bytes of the memory banks of all workers."""
        self.pool.send_each("tensor_bytes", [{} for _ in self.pool.workers])
        return sum(int(self.pool.receive(worker)) for worker in self.pool.workers)

    # -- placement -----------------------------------------------------------------------------------
    def split(self, slots: list[int]) -> list[list[int]]:
        """``slots`` per worker (rank order), each list in the order given."""
        rank = {worker.id: i for i, worker in enumerate(self.pool.workers)}
        parts: list[list[int]] = [[] for _ in self.pool.workers]
        for slot in slots:
            if self.owner.get(slot) in rank:
                parts[rank[self.owner[slot]]].append(slot)
        return parts

    def owned(self) -> dict[int, list[int]]:
        """Worker id -> its slots."""
        out: dict[int, list[int]] = {}
        for slot, worker in sorted(self.owner.items()):
            out.setdefault(worker, []).append(slot)
        return out

    def orphans(self) -> list[int]:
        """Slots whose worker is gone, in slot order."""
        alive = {worker.id for worker in self.pool.workers}
        return sorted(slot for slot, worker in self.owner.items() if worker not in alive)

    def _place(self, slots: list[int]) -> None:
        loads = {worker.id: 0 for worker in self.pool.workers}
        for worker in self.owner.values():
            if worker in loads:
                loads[worker] += 1
        for slot in slots:
            self.owner[slot] = least_loaded(loads)
            loads[self.owner[slot]] += 1

    def replace(self, slots: list[int]) -> None:
        """Place ``slots`` (orphans) again, least-loaded over the current workers."""
        self._place(slots)


class _OnWorkers:
    """Stands for a propagate output's tensors that stay on the workers (high-res masks, pointers).

    The engine selects rows of every output tensor (``{k: v[rows]}``); workers find rows by slot, so
    selecting here changes nothing."""

    def __getitem__(self, rows: Any) -> "_OnWorkers":
        return self


@dataclass
class _Start:
    """A tracker start the engine asked for before it had slots: run by the slots' workers in ``remember``."""

    masks: torch.Tensor | None = None  # (N, 1, h, w) bool, for detections
    clicks: dict = field(default_factory=dict)  # slot (None = new), points, labels, box, for add_points


class RemoteTracker:
    """``BatchedTracker``'s calls, run by the workers owning each slot."""

    def __init__(self, pool: WorkerPool, bank: ShardedBank, side: int, dtype: torch.dtype, device: torch.device):
        self.pool, self.bank, self.side, self.dtype, self.device = pool, bank, side, dtype, device
        self.last_masks = torch.zeros(bank.capacity, side, side, dtype=torch.bool, device=device)
        self._offered: tuple[list, list] | None = None  # features of the frame being processed
        self._shared: list | None = None  # the features the workers hold
        self._pending: tuple[list[int], list[list[int]], int, int] | None = None  # a started propagate

    # -- features -----------------------------------------------------------------------------------
    def offer(self, feats: list[torch.Tensor], pos: list[torch.Tensor]) -> None:
        """The features later calls will name; sent to the workers when first needed."""
        self._offered = (feats, pos)

    def regrouped(self) -> None:
        """The group re-formed: workers hold no features and no propagate is under way."""
        self._shared = self._pending = None

    def _share(self, feats: list[torch.Tensor]) -> None:
        if self._shared is feats:
            return
        offered, pos = self._offered
        if offered is not feats:
            raise RuntimeError("RemoteTracker: features used before they were offered")
        tensors = [*feats, pos[-1]]
        shapes = [tuple(t.shape) for t in tensors]
        self.pool.send_each("features", [{"shapes": shapes} for _ in self.pool.workers])
        self.pool.collective(self.pool.comm.broadcast, torch.cat([t.reshape(-1).to(self.dtype) for t in tensors]))
        self._shared = feats

    # -- tracking -----------------------------------------------------------------------------------
    def start_propagate(self, feats: list[torch.Tensor], pos: list[torch.Tensor], slots: list[int], frame: int) -> None:
        """Have the workers track ``slots`` into ``frame`` now; ``propagate`` collects the results."""
        self._share(feats)
        parts = self.bank.split(slots)
        pad = max(len(part) for part in parts)
        self.pool.send_each("propagate", [{"frame": frame, "slots": part, "pad": pad} for part in parts])
        self._pending = (list(slots), parts, pad, frame)

    def propagate(self, feats: list[torch.Tensor], pos: list[torch.Tensor], slots: list[int], frame: int) -> dict:
        """Low-res mask logits (N, 1, h, w) and object score logits (N, 1) of ``slots`` at ``frame``."""
        if self._pending is None or self._pending[0] != list(slots) or self._pending[3] != frame:
            self.start_propagate(feats, pos, slots, frame)
        slots, parts, pad, _ = self._pending
        self._pending = None
        blocks = self.pool.collective(self.pool.comm.gather_rows, None, pad, 1 + self.side**2, self.dtype)
        where = {slot: rank * pad + j for rank, part in enumerate(parts) for j, slot in enumerate(part)}
        rows = torch.cat(blocks)[torch.tensor([where[s] for s in slots])].to(self.device)
        return {
            "low_res": rows[:, 1:].reshape(len(slots), 1, self.side, self.side),
            "object_score_logits": rows[:, :1],
            "on_workers": _OnWorkers(),
        }

    def abandon(self) -> None:
        """Collect and drop a started propagate (the frame failed here before asking for its results): the
        workers are waiting in that gather, and the next collective must not meet them there."""
        if self._pending is not None:
            _, _, pad, _ = self._pending
            self._pending = None
            self.pool.collective(self.pool.comm.gather_rows, None, pad, 1 + self.side**2, self.dtype)

    def from_masks(self, feats: list[torch.Tensor], masks: torch.Tensor) -> _Start:
        return _Start(masks=masks)

    def from_points(
        self,
        feats,
        pos,
        slot: int | None,
        frame: int,
        points: torch.Tensor,
        labels: torch.Tensor,
        box: torch.Tensor | None,
    ) -> _Start:
        return _Start(
            clicks={
                "slot": slot,
                "points": points.cpu(),
                "labels": labels.cpu(),
                "box": None if box is None else box.cpu(),
            }
        )

    def remember(
        self,
        feats,
        slots: list[int],
        frame: int,
        out: dict | _Start,
        conditioning: np.ndarray,
        binarize: bool,
        high_res: torch.Tensor | None = None,
        object_score_logits=None,
    ) -> None:
        """Memory of ``frame`` for ``slots``: started objects (``_Start``), or tracked ones from their last
        propagate, with the masks and scores the merge chose when given."""
        if not slots:
            return
        self._share(feats)
        if isinstance(out, _Start) and out.masks is not None:
            self._start_from_masks(slots, frame, out.masks)
        elif isinstance(out, _Start):
            self._start_from_clicks(slots[0], frame, out.clicks)
        else:
            self._remember_tracked(slots, frame, conditioning, binarize, high_res, object_score_logits)

    def respawn(self, slots: list[int], frame: int) -> None:
        """Start ``slots`` again (on their new workers) from their last masks at ``frame``."""
        self._share(self._offered[0])
        self._start_from_masks(slots, frame, self.last_masks[torch.tensor(slots)][:, None])

    # -- internals -----------------------------------------------------------------------------------
    def _remember_tracked(self, slots, frame, conditioning, binarize, high_res, object_score_logits) -> None:
        parts = self.bank.split(slots)
        flags = dict(zip(slots, np.asarray(conditioning, bool).tolist()))
        args = [
            {"frame": frame, "slots": part, "conditioning": [flags[s] for s in part], "binarize": binarize}
            for part in parts
        ]
        if high_res is None:  # nothing to send: workers use what they propagated
            for worker, part, kw in zip(self.pool.workers, parts, args):
                if part:
                    self.pool.send(worker, "remember_tracked", pad=0, given=False, **kw)
            return
        rows = torch.cat([object_score_logits.reshape(len(slots), 1), high_res.reshape(len(slots), -1)], dim=1)
        pad = max(len(part) for part in parts)
        self.pool.send_each("remember_tracked", [{**kw, "pad": pad, "given": True} for kw in args])
        self.pool.collective(
            self.pool.comm.scatter_rows, self._rows_of(rows, slots, parts), pad, rows.shape[1], self.dtype
        )
        self._record(slots, high_res > 0)

    def _start_from_masks(self, slots: list[int], frame: int, masks: torch.Tensor) -> None:
        parts = self.bank.split(slots)
        pad = max(len(part) for part in parts)
        self.pool.send_each("start_from_masks", [{"frame": frame, "slots": part, "pad": pad} for part in parts])
        rows = masks.reshape(len(slots), -1)
        self.pool.collective(
            self.pool.comm.scatter_rows, self._rows_of(rows, slots, parts), pad, self.side**2, self.dtype
        )
        self._record(slots, masks)

    def _start_from_clicks(self, slot: int, frame: int, clicks: dict) -> None:
        (worker,) = [w for w, part in zip(self.pool.workers, self.bank.split([slot])) if part]
        self.pool.send(
            worker,
            "start_from_points",
            frame=frame,
            slot=slot,
            new=clicks["slot"] is None,
            points=clicks["points"],
            labels=clicks["labels"],
            box=clicks["box"],
        )
        low_res = self.pool.receive(worker)
        self._record([slot], low_res.to(self.device) > 0)

    @staticmethod
    def _rows_of(rows: torch.Tensor, slots: list[int], parts: list[list[int]]) -> list[torch.Tensor]:
        index = {slot: i for i, slot in enumerate(slots)}
        return [rows[torch.tensor([index[s] for s in part], dtype=torch.long)] for part in parts]

    def _record(self, slots: list[int], masks: torch.Tensor) -> None:
        """Keep the last mask of each object: what it is re-started from if its worker dies."""
        self.last_masks[torch.tensor(slots)] = masks.reshape(len(slots), self.side, self.side).to(self.device)
