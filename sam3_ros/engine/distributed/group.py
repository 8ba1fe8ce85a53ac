"""The data plane of object sharding: one ``torch.distributed`` process group, rank 0 = coordinator.

NCCL between GPUs (one rank per GPU), gloo on CPU or when ranks share a GPU. Every collective is rooted at
rank 0 (broadcast from it, gather and scatter through it), so a worker talks only to the coordinator. Rows
of different workers are padded to the same count (gloo's gather and scatter need equal sizes). When a peer
dies the group is left (``leave``) and formed again, under a new generation prefix of the same store, by the
survivors.
"""

from __future__ import annotations

import datetime
import os
import time

import torch
import torch.distributed as dist


class CollectiveError(RuntimeError):
    """A collective failed: a peer died, left the group, or did not answer within the timeout."""


def backend_for(devices: list[torch.device]) -> str:
    """``nccl`` when every rank has a GPU of its own; otherwise ``gloo`` (NCCL refuses two ranks on one GPU,
    so ranks sharing a GPU, or on CPU, stage their tensors through host memory)."""
    indices = [d.index if d.index is not None else 0 for d in devices]
    distinct_gpus = all(d.type == "cuda" for d in devices) and len(set(indices)) == len(indices)
    return "nccl" if distinct_gpus else "gloo"


def join(store: dist.Store, generation: int, rank: int, world: int, backend: str, timeout_s: float) -> None:
    """Join generation ``generation`` of the group (blocks until all ``world`` ranks joined)."""
    leave()
    if backend == "nccl":  # a lost peer must abort the communicator, not tear the process down (torch's default)
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "2")
    dist.init_process_group(
        backend,
        store=dist.PrefixStore(f"generation{generation}", store),
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=timeout_s),
    )


def leave() -> None:
    """Leave the current group, if any (a dead peer's connections are closed, waiting peers get an error)."""
    if dist.is_initialized():
        dist.destroy_process_group()


class Collectives:
    """Rank-0-rooted collectives on ``device``'s communication device, with time spent in them."""

    def __init__(self, device: torch.device, backend: str):
        self.device = device if backend == "nccl" else torch.device("cpu")  # where the collectives want tensors
        self.elapsed_s = 0.0  # wall time inside collectives since the last ``take_elapsed_ms``

    def take_elapsed_ms(self) -> float:
        """Milliseconds spent in collectives since the last call."""
        ms, self.elapsed_s = self.elapsed_s * 1e3, 0.0
        return ms

    def _timed(self, call, *args, **kwargs) -> None:
        start = time.perf_counter()
        try:
            if self.device.type == "cuda":
                with torch.cuda.device(self.device):  # NCCL works on the current device
                    call(*args, **kwargs)
            else:
                call(*args, **kwargs)
            self.elapsed_s += time.perf_counter() - start
            return
        except RuntimeError as exc:
            reason = str(exc).splitlines()[0][:200]
        # raised outside the except block: the failed call's frames hold the process group (and so its
        # connections), and must not stay alive in the exception's context, or ``leave`` closes nothing
        raise CollectiveError(reason)

    def broadcast(self, flat: torch.Tensor) -> torch.Tensor:
        """Rank 0's ``flat`` on every rank (others pass a buffer of the right size and dtype)."""
        flat = flat.to(self.device).contiguous()
        self._timed(dist.broadcast, flat, 0)
        return flat

    def gather_rows(self, rows: torch.Tensor | None, pad: int, width: int, dtype: torch.dtype) -> list[torch.Tensor]:
        """Each worker's ``rows`` (n <= pad, width) padded to ``pad``; rank 0 gets the workers' blocks
        (rank order, its own left out), workers get []."""
        block = torch.zeros(pad, width, dtype=dtype, device=self.device)
        if rows is not None and len(rows):
            block[: len(rows)] = rows.reshape(len(rows), width).to(self.device, dtype)
        if dist.get_rank() != 0:
            self._timed(dist.gather, block, None, 0)
            return []
        blocks = [torch.empty_like(block) for _ in range(dist.get_world_size())]
        self._timed(dist.gather, block, blocks, 0)
        return blocks[1:]

    def scatter_rows(self, parts: list[torch.Tensor] | None, pad: int, width: int, dtype: torch.dtype) -> torch.Tensor:
        """Rank 0 sends worker r its ``parts[r - 1]`` (n <= pad rows of ``width``); workers get (pad, width)."""
        out = torch.empty(pad, width, dtype=dtype, device=self.device)
        if dist.get_rank() != 0:
            self._timed(dist.scatter, out, None, 0)
            return out
        blocks = [out]
        for part in parts:
            block = torch.zeros(pad, width, dtype=dtype, device=self.device)
            if len(part):
                block[: len(part)] = part.reshape(len(part), width).to(self.device, dtype)
            blocks.append(block)
        self._timed(dist.scatter, out, blocks, 0)
        return out
