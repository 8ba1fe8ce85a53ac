"""The control plane of object sharding: spawning, commanding and supervising the worker processes.

One process per worker device (``spawn`` start method: safe with CUDA and threads), each with a pipe
for commands. The coordinator (rank 0, in the caller's process) owns the ``TCPStore`` the group is
formed on, so the store outlives any worker. A worker that exits is seen through its process sentinel;
one that stops answering, through the collectives' timeout. ``recover`` re-forms the group with the
survivors (starting a fresh worker only if none survived).
"""

from __future__ import annotations

import datetime
import logging
import multiprocessing as mp
import time
import weakref
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

import torch
import torch.distributed as dist

from .group import CollectiveError, Collectives, backend_for, join, leave
from .worker import WorkerSpec, main

log = logging.getLogger(__name__)

STORE_HOST = "127.0.0.1"  # workers run on this machine; across machines, ROS 2 is the distributed layer


class WorkerLost(RuntimeError):
    """A tracker worker died or stopped answering during a command; the pool must ``recover``."""


@dataclass
class _Worker:
    id: int  # stable for the worker's life (ranks change when the group re-forms)
    device: str
    process: Any  # multiprocessing Process
    conn: Connection


class WorkerPool:
    """Tracker workers on ``devices`` (one process each) and the coordinator's end of their group."""

    def __init__(
        self, template: dict, devices: list[str], coordinator: torch.device, timeout_s: float, start_timeout_s: float
    ):
        self._template, self._devices = template, list(devices)
        self.timeout_s, self.start_timeout_s = timeout_s, start_timeout_s
        self.backend = backend_for([coordinator, *(torch.device(d) for d in self._devices)])
        self.comm = Collectives(coordinator, self.backend)
        self.store = dist.TCPStore(
            STORE_HOST, 0, is_master=True, wait_for_workers=False, timeout=datetime.timedelta(seconds=timeout_s)
        )
        self._context = mp.get_context("spawn")
        self.workers: list[_Worker] = []
        self.generation = 0
        self._next_id = 0
        self._finalizer = weakref.finalize(self, _shut_down, self.workers)
        try:
            for device in self._devices:
                self._spawn(device)
            self._wait_ready(self.workers)
            self.form_group({})
        except BaseException:
            self.close()
            raise

    # -- processes -------------------------------------------------------------------------------
    def _spawn(self, device: str) -> _Worker:
        ours, theirs = self._context.Pipe()
        spec = WorkerSpec(
            device=device,
            backend=self.backend,
            store_host=STORE_HOST,
            store_port=self.store.port,
            timeout_s=self.timeout_s,
            **self._template,
        )
        process = self._context.Process(
            target=main, args=(spec, theirs), daemon=True, name=f"sam3-tracker-{self._next_id}"
        )
        process.start()
        theirs.close()
        worker = _Worker(self._next_id, device, process, ours)
        self._next_id += 1
        self.workers.append(worker)
        return worker

    def _wait_ready(self, workers: list[_Worker]) -> None:
        for worker in workers:
            try:
                answer = self.receive(worker, self.start_timeout_s)
            except WorkerLost as exc:
                raise RuntimeError(f"tracker worker on {worker.device} did not start: {exc}") from None
            if answer != "ready":
                raise RuntimeError(f"tracker worker on {worker.device} sent {answer!r} instead of ready")

    def dead(self) -> list[_Worker]:
        """Workers whose process has exited."""
        return [w for w in self.workers if not w.process.is_alive()]

    # -- commands ----------------------------------------------------------------------------------
    def send(self, worker: _Worker, name: str, **kwargs) -> None:
        """Queue command ``name`` on ``worker`` (a dead worker's pipe is ignored here: ``dead`` finds it)."""
        try:
            worker.conn.send((name, kwargs))
        except OSError:
            pass

    def send_each(self, name: str, kwargs: list[dict]) -> None:
        """Command ``name`` to every worker, in rank order, with its own arguments."""
        for worker, args in zip(self.workers, kwargs):
            self.send(worker, name, **args)

    def receive(self, worker: _Worker, timeout_s: float | None = None) -> Any:
        """The worker's next answer; WorkerLost if it exits or stays silent for the timeout."""
        ready = wait([worker.conn, worker.process.sentinel], self.timeout_s if timeout_s is None else timeout_s)
        if worker.conn in ready:
            try:
                return worker.conn.recv()
            except (EOFError, OSError):
                pass
        state = "exited" if not worker.process.is_alive() else "did not answer in time"
        raise WorkerLost(f"tracker worker {worker.id} on {worker.device} {state}")

    def collective(self, call, *args):
        """Run a ``Collectives`` call; a failure (a peer died, or timed out) becomes WorkerLost."""
        try:
            return call(*args)
        except CollectiveError as exc:
            reason = str(exc)
        raise WorkerLost(f"collective failed: {reason}")  # outside the except block: see Collectives._timed

    def probe(self, feature_numel: int, pad: int, width: int, dtype: torch.dtype) -> float:
        """Milliseconds for one frame's collectives (features broadcast, rows gathered and scattered) on
        dummy data of these sizes, with the workers doing nothing else: communication alone."""
        self.send_each("probe", [{"feature_numel": feature_numel, "pad": pad, "width": width} for _ in self.workers])
        start = time.perf_counter()
        self.collective(self.comm.broadcast, torch.empty(feature_numel, dtype=dtype))
        self.collective(self.comm.gather_rows, None, pad, width, dtype)
        empty = torch.empty(0, width, dtype=dtype)
        self.collective(self.comm.scatter_rows, [empty for _ in self.workers], pad, width, dtype)
        if self.comm.device.type == "cuda":
            torch.cuda.synchronize(self.comm.device)
        return (time.perf_counter() - start) * 1e3

    # -- the group ----------------------------------------------------------------------------------
    def form_group(self, owned: dict[int, list[int]]) -> None:
        """A new generation of the group with the current workers; each keeps only the slots in ``owned``."""
        self.generation += 1
        world = len(self.workers) + 1
        for rank, worker in enumerate(self.workers, start=1):
            self.send(
                worker, "group", generation=self.generation, rank=rank, world=world, keep=owned.get(worker.id, [])
            )
        try:
            join(self.store, self.generation, 0, world, self.backend, self.timeout_s)
        except RuntimeError as exc:  # a worker died while joining (the store waited for it in vain)
            raise WorkerLost(f"group generation {self.generation} did not form: {exc}") from None

    def recover(self, owned: dict[int, list[int]]) -> list[int]:
        """After a failure: drop dead workers, re-form the group with the others; returns the dead ids."""
        leave()  # closes our connections: survivors stuck in a collective get an error and wait for "group"
        if not self.dead():  # a failed collective may come just before the process exits
            wait([w.process.sentinel for w in self.workers], 1.0)
        dead = self.dead()
        for worker in dead:
            worker.conn.close()
            worker.process.join(1.0)
            self.workers.remove(worker)
            log.warning(
                "tracker worker %d on %s exited (code %s); its objects move to the other workers",
                worker.id,
                worker.device,
                worker.process.exitcode,
            )
        if not self.workers:
            self._wait_ready([self._spawn(self._devices[0])])
        self.form_group({w.id: owned.get(w.id, []) for w in self.workers})
        return [w.id for w in dead]

    def close(self) -> None:
        """Stop every worker (asking first, then terminating) and leave the group."""
        leave()
        self._finalizer()


def _shut_down(workers: list[_Worker]) -> None:
    for worker in workers:
        try:
            worker.conn.send(("close", {}))
        except OSError:
            pass
    for worker in workers:
        worker.process.join(2.0)
        if worker.process.is_alive():
            worker.process.terminate()
            worker.process.join(2.0)
        worker.conn.close()
    workers.clear()
