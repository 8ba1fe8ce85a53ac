"""``keep_freed_frames``: after it, glibc serves a frame-sized block from the heap and keeps it there once freed
(read back with glibc's own ``mallinfo2``), instead of mapping and unmapping it per frame."""

import ctypes
import ctypes.util

import numpy as np
import pytest

from sam3_ros.ros.host_memory import keep_freed_frames


class MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def mallinfo() -> MallInfo2:
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("not glibc 2.33 or later")
    libc.mallinfo2.restype = MallInfo2
    return libc.mallinfo2()


def test_a_freed_frame_stays_in_the_heap_for_the_next_one():
    mallinfo()  # skips without glibc
    assert keep_freed_frames()
    frame_bytes = 1920 * 1080 * 3
    before = mallinfo()
    frame = np.ones(frame_bytes, np.uint8)  # written: its pages are in use
    during = mallinfo()
    assert during.hblkhd == before.hblkhd  # not a block mapped of its own
    assert during.uordblks - before.uordblks >= frame_bytes  # from the heap
    del frame
    after = mallinfo()
    assert after.arena == during.arena and after.fordblks - during.fordblks >= 0.99 * frame_bytes  # kept, free
