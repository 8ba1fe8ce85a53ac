"""No data-dependent host reads in ``Engine.step`` but the plan, checked on CPU.

On a GPU every read of a tensor's value by the host (``.item()``, ``bool(t)``, ``torch.equal``,
``nonzero``, ...) waits for the GPU. A torch dispatch mode sees those ops on CPU too, so this test
catches them in ``make test``; the GPU test (tests/test_speed_gpu.py) adds host<->device copies, which
only exist there. The plan is read with ``read_to_host`` (numpy, no aten op), so it is not counted.
"""

import traceback
from collections import Counter

import numpy as np
import pytest
from torch.utils._python_dispatch import TorchDispatchMode

from sam3_ros.engine import ConceptPrompt, Frame, load_engine, load_model
from sam3_ros.settings import Settings

SIZE = 56
HOST_READS = {
    "aten::_local_scalar_dense",
    "aten::item",
    "aten::is_nonzero",
    "aten::equal",
    "aten::nonzero",
    "aten::nonzero_static",
    "aten::masked_select",
    "aten::_unique2",
    "aten::unique_consecutive",
}


class HostReads(TorchDispatchMode):
    """Counts ops whose result the host must read from the device, by op and calling line."""

    def __init__(self):
        super().__init__()
        self.seen: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func._schema.name in HOST_READS:
            caller = next(f for f in reversed(traceback.extract_stack()[:-1]) if "/torch/" not in f.filename)
            self.seen[f"{func._schema.name} at {caller.filename.rsplit('/', 1)[-1]}:{caller.lineno}"] += 1
        return func(*args, **(kwargs or {}))


@pytest.fixture(scope="module")
def loaded():
    return load_model("tiny-random", image_size=SIZE)


def run_steps(loaded, phrases, **overrides):
    settings = Settings.default(
        {
            "model": "tiny-random",
            "devices": ["cpu"],
            "image_size": SIZE,
            "detection.score_threshold": 0.0,
            "detection.new_object_threshold": 0.0,
            "tracking.assoc_iou_threshold": 1.0,
            "tracking.max_objects": 6,
            "tracking.keep_alive_frames": 1,
            **overrides,
        }
    )  # objects start and expire on every frame
    engine = load_engine(settings, loaded)
    engine.set_prompt(ConceptPrompt(phrases=phrases))
    rng = np.random.default_rng(0)
    frames = [Frame(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), stamp_ns=t) for t in range(6)]
    engine.step(frames[0])  # first step of a prompt: its text embeddings
    probe = HostReads()
    with probe:
        for frame in frames[1:]:
            engine.step(frame)
    assert engine.counters.objects_created > 6 and engine.counters.objects_expired > 0  # every path ran
    return probe.seen


def test_steps_read_nothing_back_but_the_plan(loaded):
    assert run_steps(loaded, ["cup", "box"], **{"tracking.hole_fill_area": 0}) == Counter()


def test_the_probe_sees_the_reads_that_remain(loaded):
    # known, documented host read: transformers checks a padded text mask on the device in each attention
    # layer that reads the text (prompts whose phrases have different token counts). On a device, hole
    # filling labels connected components until they converge (engine/mask_ops.py); on the CPU scipy
    # labels them in host memory, which the probe does not see (nothing to wait for there).
    seen = run_steps(loaded, ["cup", "red box"], **{"tracking.hole_fill_area": 16})
    assert any("masking_utils.py" in where for where in seen), seen
