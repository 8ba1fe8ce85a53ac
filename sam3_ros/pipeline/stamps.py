"""Frames lost on the way in, estimated from the camera's own timing.

A best-effort image lost in the transport (a dropped UDP fragment, a full reader cache) never reaches
the node, so no counter of the node can see it. The camera's header stamps can: a camera publishes at a
steady period, so a gap of several periods between two received stamps means frames went missing.
The period is the median of the recent gaps between stamps (what the camera actually does, not what it
claims); a gap over ``GAP_PERIODS`` periods counts ``round(gap / period) - 1`` missed frames. A gap longer
than ``PAUSE_S`` and ``PAUSE_PERIODS`` periods is a paused or restarted camera, not loss: it is not
counted and the period is learned again. Stamps that do not increase (a replayed or reset clock) are ignored.
"""

from __future__ import annotations

import statistics
from collections import deque

GAP_PERIODS = 1.5  # a gap longer than this many periods has missing frames
PAUSE_PERIODS = 50  # ... unless it is this long (and PAUSE_S): the camera paused or restarted
PAUSE_S = 2.0
PERIOD_WINDOW = 31  # recent gaps whose median is the period (robust to the lost frames themselves)
MIN_GAPS = 3  # gaps seen before the period is trusted


class StampGaps:
    """Counts frames missing between the header stamps of one camera's received images (not thread-safe:
    one camera's images arrive on one transport thread)."""

    def __init__(self) -> None:
        self.missed = 0  # frames the camera published that never arrived (estimate, cumulative)
        self._last_ns: int | None = None
        self._gaps: deque[int] = deque(maxlen=PERIOD_WINDOW)
        self._period_ns: float | None = None

    @property
    def period_ns(self) -> float | None:
        """The camera's period as seen in its stamps (None until ``MIN_GAPS`` gaps were seen)."""
        return self._period_ns

    def add(self, stamp_ns: int) -> int:
        """Account for one received image's stamp; returns the frames found missing just before it."""
        last, self._last_ns = self._last_ns, stamp_ns if self._last_ns is None else max(self._last_ns, stamp_ns)
        if last is None or stamp_ns <= last:
            return 0
        gap = stamp_ns - last
        period = self._period_ns
        if period is not None and gap > max(PAUSE_S * 1e9, PAUSE_PERIODS * period):
            self._gaps.clear()  # a pause: learn the period again
            self._period_ns = None
            return 0
        self._gaps.append(gap)
        if len(self._gaps) >= MIN_GAPS:
            self._period_ns = float(statistics.median(self._gaps))
        if period is None or gap <= GAP_PERIODS * period:
            return 0
        missing = max(round(gap / period) - 1, 1)
        self.missed += missing
        return missing
