"""The published masks computed inside each object's box (``engine.mask_runs.output_masks``) are exactly the
dense definition's: every mask upsampled to the frame with ``F.interpolate``, thresholded, boxed, made
pixel-exclusive per concept and run-length encoded (what the engine computed before, ``dense_output_masks``).

Compared: boxes bit for bit and RLE counts element for element, on random logits (noise, blobs, exact
zeros and halves, duplicated objects, tied and non-positive scores, several concepts and click-created
objects), on sizes up and down, and on the engine's own outputs frame by frame (``InstanceArray`` contents).
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sam3_ros.codec import rle
from sam3_ros.engine import ConceptPrompt, Frame, load_engine, load_model
from sam3_ros.engine import engine as engine_module
from sam3_ros.engine import mask_runs
from sam3_ros.pipeline.messages import instances_to_message
from sam3_ros.settings import Settings


def blobs(rng, n, h, w, radius=0.3):
    ys, xs = np.mgrid[0:h, 0:w]
    out = np.empty((n, h, w), np.float32)
    for i in range(n):
        cy, cx = rng.random(2) * [h, w]
        r = 1 + rng.random() * radius * min(h, w)
        out[i] = (r - np.hypot(ys - cy, xs - cx)) * rng.random()
    return out


def random_logits(rng, kind, n, h, w):
    if kind == "noise":
        return (rng.standard_normal((n, h, w)) * 1e-3).astype(np.float32)
    if kind == "halves":  # exact zeros and values on the weights' grid: crossings exactly on rows
        return (np.round(rng.standard_normal((n, h, w)) * 2) / 2).astype(np.float32)
    logits = blobs(rng, n, h, w)
    if kind == "duplicates":
        logits[: n // 2] = logits[0]
    return logits


def same(got, want):
    (got_boxes, got_masks), (want_boxes, want_masks) = got, want
    return (
        torch.equal(got_boxes.cpu(), want_boxes.cpu())
        and got_masks.size == want_masks.size
        and len(got_masks) == len(want_masks)
        and all(np.array_equal(a, b) for a, b in zip(got_masks.counts, want_masks.counts))
    )


def case(rng, kind, n, h, w):
    logits = torch.from_numpy(random_logits(rng, kind, n, h, w))
    scores = torch.from_numpy((np.round(rng.random(n) * 4) / 4 - 0.25).astype(np.float32))  # ties, <= 0
    groups = torch.from_numpy(rng.integers(-1, 2, n))
    return logits, scores, groups


@pytest.mark.parametrize(
    "in_size, out_size",
    [
        ((32, 32), (720, 1280)),
        ((288, 288), (1080, 1920)),
        ((17, 23), (120, 97)),
        ((288, 288), (96, 128)),
        ((5, 300), (90, 40)),
    ],
)
def test_the_emulated_upsampling_is_torchs(in_size, out_size):
    logits = (np.random.default_rng(sum(out_size)).standard_normal((2, *in_size)) * 10).astype(np.float32)
    expected = F.interpolate(torch.from_numpy(logits)[:, None], size=out_size, mode="bilinear", align_corners=False)[
        :, 0
    ].numpy()
    assert np.array_equal(mask_runs.upsample_exact(logits, out_size).view(np.int32), expected.view(np.int32))
    assert mask_runs.emulation_matches_torch(in_size, out_size)


@pytest.fixture(params=[1, 3], ids=["one-pass", "three-passes"])
def column_passes(request, monkeypatch):
    """The box path in one pass over the columns, or in three at once (threads), for any amount of work."""
    monkeypatch.setattr(mask_runs, "host_passes", lambda: request.param)
    monkeypatch.setattr(mask_runs, "MIN_PARALLEL_PAIRS", 0)
    return request.param


def test_column_passes_cover_the_frame_and_split_the_work_evenly():
    first_col, cols, bands = np.array([0, 100, 600]), np.array([1280, 200, 400]), np.array([32, 32, 16])
    ranges = mask_runs._column_ranges(first_col, cols, bands, 1280, 2)
    assert ranges[0, 0] == 0 and ranges[-1, 1] == 1280 and np.array_equal(ranges[1:, 0], ranges[:-1, 1])
    work = [
        32 * (b - a) + 32 * max(0, min(b, 300) - max(a, 100)) + 16 * max(0, min(b, 1000) - max(a, 600))
        for a, b in ranges
    ]
    assert len(ranges) == 2 and abs(work[0] - work[1]) <= 80, ranges  # even to within a column
    assert len(mask_runs._column_ranges(first_col, cols, bands, 1280, 1)) == 1
    small = mask_runs._column_ranges(first_col, np.array([10, 10, 10]), bands, 1280, 4)
    assert small.tolist() == [[0, 1280]]  # too little work for a second pass


CONCURRENT_CAMERAS = """
import sys, threading
import numba, numpy as np, torch
from sam3_ros.engine import mask_runs

torch.set_num_threads(2)
rng = np.random.default_rng(0)
logits = torch.from_numpy((rng.standard_normal((8, 32, 32)) * 1e-3).astype(np.float32))
scores, groups = torch.from_numpy(rng.random(8).astype(np.float32)), torch.from_numpy(rng.integers(0, 2, 8))
want = mask_runs.dense_output_masks(logits, scores, groups, (720, 1280))
results = []

def camera():
    for _ in range(20):
        results.append(mask_runs.output_masks(logits, scores, groups, (720, 1280)))

threads = [threading.Thread(target=camera) for _ in range(2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
boxes, masks = want
same = all(
    torch.equal(b, boxes) and all(np.array_equal(x, y) for x, y in zip(m.counts, masks.counts)) for b, m in results
)
print(numba.threading_layer(), len(results), same)
"""


@pytest.mark.parametrize("layer", ["default", "workqueue"])
def test_cameras_on_threads_share_the_parallel_passes_safely(layer, tmp_path):
    """Two engines' output stages at once, as the node runs cameras, with the passes on numba's threads: numba's
    workqueue layer aborts the process when two threads use it at once, so one stage at a time uses them. Every
    result is the dense definition's, and numba's default choice is never omp (a second OpenMP runtime beside
    torch's changed the engine's results)."""
    env = {**os.environ, "NUMBA_THREADING_LAYER": layer, "NUMBA_CACHE_DIR": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-c", CONCURRENT_CAMERAS], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    started, count, same = run.stdout.split()
    assert (count, same) == ("40", "True")
    assert started in ("tbb", "workqueue")


@pytest.mark.parametrize("kind", ["noise", "blobs", "halves", "duplicates"])
@pytest.mark.parametrize("seed", range(3))
def test_box_runs_equal_the_dense_definition(kind, seed, monkeypatch, column_passes):
    rng = np.random.default_rng([seed, len(kind)])
    dense = mask_runs.dense_output_masks
    called = []
    monkeypatch.setattr(mask_runs, "dense_output_masks", lambda *a: called.append(1) or dense(*a))
    for _ in range(12):
        h, w = (int(v) for v in rng.integers(2, 40, 2))
        height, width = (int(v) for v in rng.integers(65, 400, 2))  # height + width > 128
        logits, scores, groups = case(rng, kind, int(rng.integers(1, 12)), h, w)
        assert same(
            mask_runs.output_masks(logits, scores, groups, (height, width)),
            dense(logits, scores, groups, (height, width)),
        ), (h, w, height, width)
    assert not called  # every case went through the box path


@pytest.mark.parametrize(
    "n, low, size", [(16, 32, (720, 1280)), (6, 288, (480, 640)), (4, 288, (100, 120)), (9, 40, (1080, 1920))]
)
def test_box_runs_at_camera_sizes(n, low, size, column_passes):
    rng = np.random.default_rng(n)
    for kind in ("noise", "blobs"):
        logits, scores, groups = case(rng, kind, n, low, low)
        assert same(
            mask_runs.output_masks(logits, scores, groups, size),
            mask_runs.dense_output_masks(logits, scores, groups, size),
        )


def edge_case_logits(h, w):
    """Objects at the limits of the box path: the whole frame, one source cell (in a corner, at the last row and
    column, inside), a line along the border, values near the smallest the box path takes (across values that
    cancel to tiny or zero), and nothing."""
    out = np.full((8, h, w), -1.0, np.float32)
    out[0] = 1.0
    out[1, 0, 0] = 0.5
    out[2, h - 1, w - 1] = 2.0
    out[3, h // 2, w // 3] = 1e-3
    out[4, :, w - 1] = 0.25
    scale = np.float32(2.0**-55)
    out[5] = scale * np.where(np.add.outer(np.arange(h), np.arange(w)) % 2, 1, -1)
    out[6] = 0.0
    out[6, h // 3 : h // 3 + 2, 1:3] = scale
    return out  # out[7]: no positive value


@pytest.mark.parametrize("low, size", [((32, 32), (720, 1280)), ((288, 288), (100, 120)), ((7, 9), (97, 301))])
def test_box_runs_at_the_edges(low, size, monkeypatch, column_passes):
    dense = mask_runs.dense_output_masks
    called = []
    monkeypatch.setattr(mask_runs, "dense_output_masks", lambda *a: called.append(1) or dense(*a))
    logits = torch.from_numpy(edge_case_logits(*low))
    for scores, groups in (
        (torch.linspace(1.0, 0.2, 8), torch.zeros(8, dtype=torch.long)),  # all of one concept, ranked
        (torch.ones(8), torch.arange(8)),  # each its own
    ):
        assert same(mask_runs.output_masks(logits, scores, groups, size), dense(logits, scores, groups, size))
    assert not called


def test_where_the_box_path_is_not_exact_the_dense_one_runs(monkeypatch):
    rng = np.random.default_rng(5)
    logits, scores, groups = case(rng, "blobs", 5, 20, 20)
    tiny, tiny_negative = logits.clone(), logits.clone()
    tiny[0, 3, 3] = 1e-30  # products of such logits can underflow: the runs argument does not hold
    tiny_negative[2, 19, 0] = -1e-30
    host = []
    with monkeypatch.context() as patch:
        patch.setattr(mask_runs, "_column_runs", lambda *a: host.append(1))  # the box path's loop
        # height + width <= 128: another kernel
        for values, size in ((tiny, (300, 200)), (tiny_negative, (300, 200)), (logits, (60, 60))):
            assert same(
                mask_runs.output_masks(values, scores, groups, size),
                mask_runs.dense_output_masks(values, scores, groups, size),
            )
    assert not host
    empty = mask_runs.output_masks(torch.zeros(0, 8, 8), torch.zeros(0), torch.zeros(0, dtype=torch.long), (90, 160))
    assert empty[0].shape == (0, 4) and len(empty[1]) == 0


def test_rle_masks_decode_to_their_masks():
    masks = np.random.default_rng(0).random((3, 7, 9)) > 0.5
    held = rle.RleMasks(rle.encode(masks), (7, 9))
    assert held.shape == (3, 7, 9) and len(held) == 3
    assert np.array_equal(np.asarray(held), masks) and np.asarray(held, np.uint8).dtype == np.uint8


def test_the_engine_publishes_what_the_dense_definition_gives(monkeypatch):
    """Two engines on the same weights and frames, one with the dense definition: the same InstanceArrays."""
    settings = Settings.default(
        {
            "devices": ["cpu"],
            "tracking.max_objects": 8,
            "detection.score_threshold": 0.0,
            "detection.new_object_threshold": 0.0,
            "tracking.assoc_iou_threshold": 1.0,
            "tracking.track_assoc_iou_threshold": 0.0,
            "tracking.keep_alive_frames": 1000,
        }
    )
    loaded = load_model("tiny-random")
    ours, dense = load_engine(settings, loaded), load_engine(settings, loaded)
    for engine in (ours, dense):
        engine.set_prompt(ConceptPrompt(phrases=["red box", "blue box"]))
    rng = np.random.default_rng(0)
    background = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    for t in range(6):
        frame = background.copy()
        frame[40 + 5 * t : 120 + 5 * t, 60:160] = (220, 30, 30)
        a = instances_to_message(ours.step(Frame(frame, stamp_ns=t + 1)))
        with monkeypatch.context() as patch:
            patch.setattr(engine_module, "output_masks", mask_runs.dense_output_masks)
            b = instances_to_message(dense.step(Frame(frame, stamp_ns=t + 1)))
        assert a.num_hidden_objects == b.num_hidden_objects and len(a.instances) == len(b.instances) > 0
        for x, y in zip(a.instances, b.instances):
            assert (x.id, x.concept, x.score, x.age, x.detected) == (y.id, y.concept, y.score, y.age, y.detected)
            assert np.array_equal(x.box, y.box) and np.array_equal(x.mask_rle, y.mask_rle)


def test_the_exact_emulation_of_a_fused_multiply_add_gives_the_same_masks(monkeypatch):
    """Without the CPU's FMA instruction (or where the compiler did not emit it) the kernel emulates it exactly."""
    a, c = np.float32(1 + 2.0**-12), np.float32(-1.0)  # a * a + c: 2^-11 + 2^-24 with one rounding, 2^-11 with two
    assert mask_runs.hardware_fma() == (mask_runs.fused_multiply_add(a, a, c) == np.float32(2.0**-11 + 2.0**-24))
    rng = np.random.default_rng(7)
    cases = [case(rng, kind, 9, 32, 32) for kind in ("noise", "blobs", "halves")]
    monkeypatch.setattr(mask_runs, "hardware_fma", lambda: False)
    for logits, scores, groups in cases:
        assert same(
            mask_runs.output_masks(logits, scores, groups, (720, 1280)),
            mask_runs.dense_output_masks(logits, scores, groups, (720, 1280)),
        )
