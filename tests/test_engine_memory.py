"""Bounded memory: a long stream holds the same tensors as a short one.

Runs the full ``Engine.step`` (not the bank alone) on tiny-random at 28 px input with NMS and hole
filling off (tested elsewhere), which keeps 2,000 frames with 8 objects to well under a minute of CPU.
"""

import gc
import os

import numpy as np
import pytest

from sam3_ros.engine import ConceptPrompt, Frame, load_engine
from sam3_ros.settings import Settings


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc for RSS")
def test_memory_is_constant_over_2000_frames_with_8_objects():
    settings = Settings.default(
        {
            "model": "tiny-random",
            "devices": ["cpu"],
            "image_size": 28,
            "tracking.max_objects": 8,
            "detection.score_threshold": 0.0,
            "detection.new_object_threshold": 0.0,
            "detection.nms_iou_threshold": 0.0,
            "tracking.assoc_iou_threshold": 1.0,
            "tracking.track_assoc_iou_threshold": 0.0,
            "tracking.hole_fill_area": 0,
            "tracking.keep_alive_frames": 100000,
            "tracking.at_max_objects": "refuse_new",  # the same 8 objects
        }
    )
    engine = load_engine(settings)
    engine.set_prompt(ConceptPrompt(phrases=["thing"]))
    frames = [np.random.default_rng(i).integers(0, 255, (24, 32, 3), dtype=np.uint8) for i in range(16)]
    counts = set()
    bytes_at, rss_at = {}, {}
    for t in range(2000):
        out = engine.step(Frame(frames[t % len(frames)], stamp_ns=t))
        if t >= 10:
            counts.add(len(out))
        if t + 1 in (50, 2000):
            gc.collect()
            bytes_at[t + 1], rss_at[t + 1] = engine.tensor_bytes(), rss_bytes()
    assert counts == {8}
    assert engine.live_ids == list(range(1, 9))  # the same 8 objects all along
    assert bytes_at[2000] == bytes_at[50]
    growth = (rss_at[2000] - rss_at[50]) / rss_at[50]
    assert growth < 0.05, f"RSS grew {growth:.1%} from frame 50 to 2000"


@pytest.mark.parametrize(
    "keep,objects,kept", [("auto", 64, True), ("auto", 4096, False), ("always", 4096, True), ("never", 64, False)]
)
def test_memories_keep_their_keys_and_values_while_that_fits_the_budget(keep, objects, kept):
    # tiny-random keeps 655 KB of keys and values per object (10 entries): 1 GiB holds ~1,600 objects
    import torch

    from sam3_ros.engine import load_model
    from sam3_ros.engine.engine import memory_bank_options
    from sam3_ros.engine.memory_bank import MemoryBank

    tracker = load_model("tiny-random").model.tracker_model
    settings = Settings.default(
        {"model": "tiny-random", "memory.keep_keys_values": keep, "tracking.max_objects": objects}
    )
    options = memory_bank_options(settings, tracker, torch.device("cpu"), torch.float32)
    assert ("entry_shape" in options) == kept
    bank = MemoryBank(2, **options)
    assert bank.derived_entries == kept
    assert bank.recent_feat.shape[2:] == ((2, 64, 128) if kept else (64, 64))
