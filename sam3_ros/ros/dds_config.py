"""Cyclone DDS configuration of the DDS-direct participant: socket buffers that hold full-resolution frames.

A best-effort image of several MB arrives as thousands of UDP fragments in one burst; when the socket's
receive buffer (Linux default ~208 KB) overflows before Cyclone's receive thread drains it, one lost
fragment loses the whole image, and nothing above the middleware sees it. The participant therefore asks
for a receive buffer as large as the largest expected frame (the kernel's own accounting doubles it, so
about two frames fit) and sends large UDP messages (64 KB instead of 14.7 KB: ~50x fewer fragments for the
receiving side to reassemble).

The kernel caps every socket at ``net.core.rmem_max``; Cyclone then continues with what it got. This
module reads that limit so the node can say, at start, what to run when the buffer cannot be had.

Our settings come first in the configuration list and the user's ``CYCLONEDDS_URI`` (files and/or XML
fragments, comma-separated) after it: Cyclone applies the sources in order, so anything the user sets wins.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

RMEM_MAX_PATH = Path("/proc/sys/net/core/rmem_max")
MIB = 1 << 20
# Cyclone's largest UDP message and data fragment (defaults 14720 B and 1344 B): one 1080p rgb8 image is
# ~100 messages instead of ~4,600 fragments. Receivers accept any fragment size, so peers need not match.
MAX_MESSAGE_BYTES = 65500
FRAGMENT_BYTES = 65000


def receive_buffer_bytes(largest_frame_bytes: int) -> int:
    """The socket receive buffer to ask for: the largest frame, rounded up to whole MiB."""
    return -(-int(largest_frame_bytes) // MIB) * MIB


def kernel_receive_buffer_limit(path: Path = RMEM_MAX_PATH) -> int | None:
    """``net.core.rmem_max`` in bytes: the largest receive buffer an unprivileged socket option can set
    (None where it cannot be read, e.g. not Linux)."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class ReceiveBuffer:
    """The socket receive buffer the participant asks for, and what the kernel allows."""

    largest_frame_bytes: int
    wanted: int  # bytes asked for (SO_RCVBUF)
    limit: int | None  # net.core.rmem_max; None where unknown

    @classmethod
    def for_frames(cls, largest_frame_bytes: int, limit: int | None = None) -> "ReceiveBuffer":
        """The buffer for frames up to ``largest_frame_bytes``; ``limit`` defaults to this kernel's."""
        limit = kernel_receive_buffer_limit() if limit is None else limit
        return cls(int(largest_frame_bytes), receive_buffer_bytes(largest_frame_bytes), limit)

    @property
    def granted(self) -> int:
        """What the sockets get: the wanted size, capped by the kernel limit."""
        return self.wanted if self.limit is None else min(self.wanted, self.limit)

    @property
    def short(self) -> bool:
        """True when the kernel limit is below the wanted size (large best-effort frames will be lost)."""
        return self.granted < self.wanted

    def advice(self) -> str:
        """One line for the log and /diagnostics: what is short, what to run, what loss to expect."""
        return (
            f"socket receive buffer capped at {self.granted / MIB:.1f} MiB by net.core.rmem_max, "
            f"{self.wanted / MIB:.0f} MiB wanted for {self.largest_frame_bytes / 1e6:.1f} MB frames: run "
            f"`sudo sysctl -w net.core.rmem_max={self.wanted}` (persist it in /etc/sysctl.d/) and restart; "
            "until then expect best-effort images of that size to be lost in bursts whenever the node falls "
            "behind (with Cyclone's default 1 MiB, every 1920x1080 rgb8 frame was); they are counted as "
            "missed_in_transport"
        )

    def cyclone_fragment(self) -> str:
        """Our settings as a Cyclone XML fragment (any domain id). Only ``max`` is set: Cyclone asks for it
        and keeps whatever the kernel grants, so a low limit degrades instead of failing to start."""
        return (
            '<CycloneDDS><Domain Id="any"><General>'
            f"<MaxMessageSize>{MAX_MESSAGE_BYTES}B</MaxMessageSize><FragmentSize>{FRAGMENT_BYTES}B</FragmentSize>"
            f'</General><Internal><SocketReceiveBufferSize max="{self.wanted}B"/></Internal></Domain></CycloneDDS>'
        )


def participant_config(buffer: ReceiveBuffer, user_config: str | None = None) -> str:
    """The configuration string for ``dds_create_domain``: our fragment, then the user's sources
    (``CYCLONEDDS_URI`` by default), which override ours where they set the same thing."""
    user_config = os.environ.get("CYCLONEDDS_URI", "") if user_config is None else user_config
    return ",".join(part for part in (buffer.cyclone_fragment(), user_config.strip()) if part)
