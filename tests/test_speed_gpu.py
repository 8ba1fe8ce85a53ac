"""GPU-only checks of the single-device speed work (skipped without CUDA): no host sync inside ``step``
but the plan read, the async memory bank computes what the synchronous one does, compiled == eager."""

import numpy as np
import pytest
import torch

from sam3_ros.engine import ConceptPrompt, Frame, load_engine, load_model
from sam3_ros.engine.backends import make_encoder
from sam3_ros.settings import Settings

pytestmark = pytest.mark.gpu
SIZE = 112


def settings(**overrides) -> Settings:
    base = {
        "model": "tiny-random",
        "devices": ["cuda"],
        "image_size": SIZE,
        "precision": "fp32",
        "backend": "eager",
        "detection.score_threshold": 0.0,
        "detection.new_object_threshold": 0.0,
        "tracking.assoc_iou_threshold": 1.0,
        "tracking.max_objects": 6,
        # hole filling labels connected components until they converge: a data-dependent loop that
        # reads a flag back every 8 steps (engine/mask_ops.py); everything else must be sync-free
        "tracking.hole_fill_area": 0,
    }
    return Settings.default({**base, **overrides})


def frames(n, h=120, w=160):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 80, (h, w, 3), dtype=np.uint8)
    for t in range(n):
        image = base.copy()
        image[30:70, 10 + 3 * t : 50 + 3 * t] = (220, 40, 40)
        yield Frame(image, stamp_ns=t + 1)


@pytest.fixture(scope="module")
def loaded():
    return load_model("tiny-random", torch.device("cuda"), torch.float32, SIZE)


def test_step_syncs_with_the_host_only_for_the_plan(loaded):
    engine = load_engine(settings(), loaded)
    # phrases of one token count: transformers checks a padded text mask on the device (see
    # tests/test_step_host_reads.py, which finds the data-dependent reads on CPU)
    engine.set_prompt(ConceptPrompt(phrases=["red box", "blue box"]))
    stream = list(frames(12))
    for frame in stream[:3]:  # first calls: text embeddings, cuBLAS handles, pinned-memory pools
        engine.step(frame)
    assert engine.live_ids, "the test needs tracked objects (memory encoding, tracker, merge)"
    torch.cuda.set_sync_debug_mode("error")
    try:
        for frame in stream[3:]:
            out = engine.step(frame)  # raises RuntimeError on any synchronizing CUDA call
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert len(out) > 0 and set(out.timings_ms) >= {"preprocess", "encoder", "detector", "tracker", "merge"}
    assert all(ms >= 0 for ms in out.timings_ms.values())  # CUDA-event times, read after the step


def test_memory_encoding_on_its_stream_computes_the_synchronous_result(loaded):
    outputs = []
    for side_stream in (True, False):
        engine = load_engine(settings(), loaded)
        if not side_stream:
            engine.bank.writer.stream = None  # memory encoding inline on the main stream
        engine.set_prompt(ConceptPrompt(phrases=["red box"]))
        outputs.append([engine.step(frame) for frame in frames(10)])
    for a, b in zip(*outputs):
        assert a.ids.tolist() == b.ids.tolist()
        assert [c.tolist() for c in a.masks.counts] == [c.tolist() for c in b.masks.counts]
        torch.testing.assert_close(a.scores, b.scores)


def test_compile_backend_matches_eager_on_cuda(loaded):
    cuda = torch.device("cuda")
    eager = make_encoder("eager", loaded.model, cuda, torch.float32, SIZE)
    compiled = make_encoder("compile", loaded.model, cuda, torch.float32, SIZE)
    x = torch.rand(1, 3, SIZE, SIZE, device=cuda) * 2 - 1
    first = compiled(x)
    second = compiled(x * 0.5)  # a replay must not overwrite the previous call's outputs
    for a, b in zip(eager(x).tracker_feats, first.tracker_feats):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-3)
    for a, b in zip(eager(x * 0.5).tracker_feats, second.tracker_feats):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-3)
    for a, b in zip(eager(x).tracker_feats, first.tracker_feats):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-3)
