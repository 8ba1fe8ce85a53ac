"""Latest-wins frame slot: one per camera, so a slow engine never builds a backlog.

The transport ``put``s every received image; the camera's worker ``take``s the newest one. An image
replaced before it was taken is dropped and counted. The slot also carries the worker's command
queue (service requests run on the worker, between frames), so one wait covers both, and remembers
since when an image has waited for an output (``unanswered_since``), which the node's watchdog reads.
A closed slot (the node stops, or the camera's worker is gone) refuses commands at once with the reason.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable


SHUTTING_DOWN = "the node is shutting down"


class SlotClosed(RuntimeError):
    """A command was refused because no worker serves the slot; the message says why."""


@dataclass
class Pending:
    """A received image waiting for the worker: the message and when it arrived (monotonic seconds)."""

    message: Any
    received_at: float


class LatestSlot:
    """Holds at most one pending image (newest wins) and a queue of commands for the worker."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: Pending | None = None
        self._commands: deque[tuple[Callable[[], Any], Future]] = deque()
        self._closed: str | None = None  # why the slot is closed; None while a worker serves it
        self.received = 0  # images put
        self.dropped = 0  # images replaced by a newer one before processing
        self.last_received_at: float | None = None  # monotonic time of the latest image
        self.unanswered_since: float | None = None  # arrival of the oldest image not followed by an output

    def put(self, message: Any) -> None:
        """Offer a new image; a pending older one is dropped (counted)."""
        with self._cond:
            now = time.monotonic()
            self.received += 1
            if self._pending is not None:
                self.dropped += 1
            self._pending = Pending(message, now)
            self.last_received_at = now
            if self.unanswered_since is None:
                self.unanswered_since = now
            self._cond.notify()

    def answered(self) -> None:
        """An output was published: only an image still pending now waits for one."""
        with self._cond:
            self.unanswered_since = None if self._pending is None else self._pending.received_at

    def submit(self, command: Callable[[], Any]) -> Future:
        """Queue ``command`` to run on the worker before its next image; its result arrives in the future."""
        future: Future = Future()
        with self._cond:
            if self._closed is not None:
                future.set_exception(SlotClosed(self._closed))
                return future
            self._commands.append((command, future))
            self._cond.notify()
        return future

    def take(self, timeout: float | None = None) -> tuple[list[tuple[Callable[[], Any], Future]], Pending | None]:
        """Wait for commands or an image; returns (commands, newest image or None). Both empty once closed."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._closed is not None or self._commands or self._pending is not None, timeout
            )
            if self._closed is not None:
                return [], None
            commands = list(self._commands)
            self._commands.clear()
            pending, self._pending = self._pending, None
            return commands, pending

    def close(self, reason: str = SHUTTING_DOWN) -> None:
        """Wake the worker, make every later ``take`` return nothing, and refuse queued and later commands
        with ``SlotClosed(reason)``. Images are still counted (and the newest kept) while closed."""
        with self._cond:
            self._closed = reason
            refused, self._commands = list(self._commands), deque()
            self._cond.notify_all()
        for _, future in refused:
            future.set_exception(SlotClosed(reason))

    def reopen(self) -> None:
        """Serve the slot again (a new worker took over): commands are accepted, images taken."""
        with self._cond:
            self._closed = None
