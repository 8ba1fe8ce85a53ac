"""Latest-wins frame slot: one per camera, so a slow engine never builds a backlog.

The transport ``put``s every received image; the camera's worker ``take``s the newest one. An image
replaced before it was taken is dropped and counted. The slot also carries the worker's command
queue (service requests run on the worker, between frames), so one wait covers both.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable


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
        self._closed = False
        self.received = 0  # images put
        self.dropped = 0  # images replaced by a newer one before processing

    def put(self, message: Any) -> None:
        """Offer a new image; a pending older one is dropped (counted)."""
        with self._cond:
            self.received += 1
            if self._pending is not None:
                self.dropped += 1
            self._pending = Pending(message, time.monotonic())
            self._cond.notify()

    def submit(self, command: Callable[[], Any]) -> Future:
        """Queue ``command`` to run on the worker before its next image; its result arrives in the future."""
        future: Future = Future()
        with self._cond:
            if self._closed:
                future.set_exception(RuntimeError("the node is shutting down"))
                return future
            self._commands.append((command, future))
            self._cond.notify()
        return future

    def take(self, timeout: float | None = None) -> tuple[list[tuple[Callable[[], Any], Future]], Pending | None]:
        """Wait for commands or an image; returns (commands, newest image or None). Both empty once closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._commands or self._pending is not None, timeout)
            commands = list(self._commands)
            self._commands.clear()
            pending, self._pending = self._pending, None
            if self._closed:
                for _, future in commands:
                    future.set_exception(RuntimeError("the node is shutting down"))
                return [], None
            return commands, pending

    def close(self) -> None:
        """Wake the worker and make every later ``take`` return nothing."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
