"""Bounded per-object tracker memory in preallocated tensors, one slot per tracked object.

Each slot holds exactly what SAM 3's tracker reads for an object (``Sam3TrackerVideoModel``):
- the spatial memories of its most recent conditioning frames (``max_cond`` of them),
- a ring of the spatial memories of the last ``num_maskmem - 1`` frames,
  each entry either the memory encoder's features (tokens, mem_dim) in bf16 or, with
  ``entry_shape``, what the tracker derives from them once (its memory attention's keys and values),
- the object pointers of those conditioning frames and a ring of the last ``max_pointers - 1`` frames.
Slots are reused after ``free``; nothing grows with the stream length.

On CUDA the bank is written only on its own stream (``writer``: memory encoding runs there too, see
``BatchedTracker.remember``), so frame t's memory encoding overlaps frame t+1's encoder; ``gather``
makes the reading stream wait for those writes first (a GPU-side wait).
"""

from __future__ import annotations

import numpy as np
import torch

from .streams import SideStream, upload

_NEVER = -(2**40)  # frame index of an empty ring entry (never inside any window)


def take_slots(free: list[int], count: int) -> list[int]:
    """Pop ``count`` slots from a free list kept in descending order (so the lowest slots go first)."""
    if count > len(free):
        raise RuntimeError(f"memory bank full: {count} slots requested, {len(free)} free")
    return [free.pop() for _ in range(count)]


class MemoryBank:
    """Preallocated memory for up to ``capacity`` objects; all state lives on ``device``."""

    def __init__(
        self,
        capacity: int,
        *,
        num_maskmem: int,
        max_cond: int,
        max_pointers: int,
        tokens: int,
        mem_dim: int,
        hidden: int,
        device: torch.device,
        dtype: torch.dtype,
        entry_shape: tuple[int, ...] | None = None,
    ):
        self.capacity, self.num_maskmem, self.max_cond, self.max_pointers = (
            capacity,
            num_maskmem,
            max_cond,
            max_pointers,
        )
        self.recent = max(num_maskmem - 1, 1)
        self.pointer_ring = max(max_pointers - 1, 1)
        kw = dict(device=device)
        self.writer = SideStream(torch.device(device))
        # spatial memories are stored in bf16, as the reference does (it casts back before attention); what the
        # tracker derives from them (``entry_shape``) in the compute dtype
        entry, entry_dtype = (entry_shape, dtype) if entry_shape else ((tokens, mem_dim), torch.bfloat16)
        self.derived_entries = entry_shape is not None
        self.cond_feat = torch.zeros(capacity, max_cond, *entry, dtype=entry_dtype, **kw)
        self.cond_ptr = torch.zeros(capacity, max_cond, hidden, dtype=dtype, **kw)
        self.cond_frame = torch.full((capacity, max_cond), _NEVER, dtype=torch.long, **kw)
        self.cond_valid = torch.zeros(capacity, max_cond, dtype=torch.bool, **kw)
        self.recent_feat = torch.zeros(capacity, self.recent, *entry, dtype=entry_dtype, **kw)
        self.recent_frame = torch.full((capacity, self.recent), _NEVER, dtype=torch.long, **kw)
        self.ring_ptr = torch.zeros(capacity, self.pointer_ring, hidden, dtype=dtype, **kw)
        self.ring_frame = torch.full((capacity, self.pointer_ring), _NEVER, dtype=torch.long, **kw)
        self.mem_pos = torch.zeros(tokens, mem_dim, dtype=dtype, **kw)  # identical for every memory entry
        self._cond_count = np.zeros(capacity, dtype=np.int64)  # host: conditioning entries in use per slot
        self._free = list(range(capacity - 1, -1, -1))

    # -- slots -------------------------------------------------------------------------------------
    @property
    def free_slots(self) -> int:
        return len(self._free)

    def allocate(self, count: int) -> list[int]:
        """Take ``count`` empty slots (host bookkeeping only)."""
        return take_slots(self._free, count)

    def claim(self, slots: list[int]) -> None:
        """Take the given empty slots (for an owner that numbers the slots itself)."""
        taken = set(slots)
        if not taken <= set(self._free):
            raise RuntimeError(f"memory bank: slots {sorted(taken - set(self._free))} are not free")
        self._free = [s for s in self._free if s not in taken]

    def free(self, slots: list[int]) -> None:
        """Forget the objects in ``slots`` and make the slots reusable."""
        if not slots:
            return
        self._cond_count[slots] = 0
        with self.writer.run():
            index = upload(slots, self.cond_valid.device, torch.long)
            self.cond_valid[index] = False
            self.cond_frame[index] = _NEVER
            self.recent_frame[index] = _NEVER
            self.ring_frame[index] = _NEVER
        self._free.extend(slots)

    def clear(self) -> None:
        """Forget every object."""
        self._cond_count[:] = 0
        with self.writer.run():
            self.cond_valid.zero_()
            for frames in (self.cond_frame, self.recent_frame, self.ring_frame):
                frames.fill_(_NEVER)
        self._free = list(range(self.capacity - 1, -1, -1))

    # -- writing -----------------------------------------------------------------------------------
    def write(
        self,
        slots: list[int],
        frame: int,
        features: torch.Tensor,
        pointers: torch.Tensor,
        pos: torch.Tensor,
        conditioning: np.ndarray,
    ) -> None:
        """Store frame ``frame``'s memory of the objects in ``slots``.

        ``features`` (N, *entry) (entry: (tokens, mem_dim) or the bank's ``entry_shape``), ``pointers``
        (N, hidden), ``pos`` (tokens, mem_dim);
        ``conditioning`` (N,) bool marks entries that also become conditioning memory (prompted or
        re-conditioned frames), replacing that object's oldest conditioning entry when all are taken.
        """
        if not slots:
            return
        self._cond_count[slots] = np.minimum(self._cond_count[slots] + conditioning, self.max_cond)
        with self.writer.run((features, pointers, pos)):
            self._write(
                upload(slots, self.cond_valid.device, torch.long),
                frame,
                features,
                pointers,
                pos,
                upload(np.asarray(conditioning, dtype=bool), self.cond_valid.device),
            )

    def _write(
        self,
        slots: torch.Tensor,
        frame: int,
        features: torch.Tensor,
        pointers: torch.Tensor,
        pos: torch.Tensor,
        conditioning: torch.Tensor,
    ) -> None:
        self.mem_pos.copy_(pos)
        r, p = frame % self.recent, frame % self.pointer_ring
        features = features.to(self.recent_feat.dtype)
        self.recent_feat[slots, r] = features
        self.recent_frame[slots, r] = frame
        self.ring_ptr[slots, p] = pointers
        self.ring_frame[slots, p] = frame
        # conditioning: an object's first free entry if any (so entries in use form a prefix), else its
        # oldest one; objects not conditioned on this frame write their entry back unchanged
        age = torch.where(
            self.cond_valid[slots], self.cond_frame[slots], torch.full_like(self.cond_frame[slots], _NEVER)
        )
        target = age.argmin(dim=1)
        keep = ~conditioning
        old_feat, old_ptr = self.cond_feat[slots, target], self.cond_ptr[slots, target]
        old_frame, old_valid = self.cond_frame[slots, target], self.cond_valid[slots, target]
        self.cond_feat[slots, target] = torch.where(keep.view(-1, *[1] * (features.dim() - 1)), old_feat, features)
        self.cond_ptr[slots, target] = torch.where(keep[:, None], old_ptr, pointers)
        self.cond_frame[slots, target] = torch.where(keep, old_frame, torch.full_like(old_frame, frame))
        self.cond_valid[slots, target] = old_valid | conditioning

    # -- reading -----------------------------------------------------------------------------------
    def gather(self, slots: list[int], frame: int):
        """What the tracker reads at ``frame`` for ``slots``, padded to a common size with validity masks.

        Returns ``(features (N, K, *entry), temporal_index (N, K), feature_valid (N, K),
        pointers (N, P, hidden), pointer_offsets (N, P), pointer_valid (N, P))`` with
        ``K = C + num_maskmem - 1`` and ``P = C + max_pointers - 1``, where C is the most conditioning
        entries any of ``slots`` uses (a host-side count, so padding costs no sync). Conditioning
        memories use temporal index -1 (the reference's offset 0, read as ``encoding[0 - 1]``).
        """
        used = int(self._cond_count[slots].max())
        self.writer.join()
        slots = upload(slots, self.cond_valid.device, torch.long)
        cond_frame, cond_valid = self.cond_frame[slots, :used], self.cond_valid[slots, :used]
        recent_frame, ring_frame = self.recent_frame[slots], self.ring_frame[slots]

        def in_cond(frames: torch.Tensor) -> torch.Tensor:
            return ((frames[:, :, None] == cond_frame[:, None, :]) & cond_valid[:, None, :]).any(-1)

        recent_offset = frame - recent_frame
        recent_valid = (recent_offset >= 1) & (recent_offset <= self.num_maskmem - 1) & ~in_cond(recent_frame)
        features = torch.cat([self.cond_feat[slots, :used], self.recent_feat[slots]], dim=1)
        temporal_index = torch.cat(
            [
                torch.full_like(cond_frame, -1),  # the reference reads offset 0 as encoding[0 - 1]
                (recent_offset - 1).clamp(0, self.num_maskmem - 1),
            ],
            dim=1,
        )
        feature_valid = torch.cat([cond_valid, recent_valid], dim=1)

        ring_offset = frame - ring_frame
        ring_valid = (ring_offset >= 1) & (ring_offset <= self.max_pointers - 1) & ~in_cond(ring_frame)
        pointers = torch.cat([self.cond_ptr[slots, :used], self.ring_ptr[slots]], dim=1)
        pointer_offsets = torch.cat([frame - cond_frame, ring_offset], dim=1)
        pointer_valid = torch.cat([cond_valid & (cond_frame <= frame), ring_valid], dim=1)
        pointer_offsets = torch.where(pointer_valid, pointer_offsets, torch.zeros_like(pointer_offsets))
        return features, temporal_index, feature_valid, pointers, pointer_offsets, pointer_valid

    def tensor_bytes(self) -> int:
        """Bytes held by the bank's tensors (constant for the bank's lifetime)."""
        return sum(
            t.numel() * t.element_size()
            for t in (
                self.cond_feat,
                self.cond_ptr,
                self.cond_frame,
                self.cond_valid,
                self.recent_feat,
                self.recent_frame,
                self.ring_ptr,
                self.ring_frame,
                self.mem_pos,
            )
        )
