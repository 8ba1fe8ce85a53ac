"""The host resize of a frame gives torch's ``F.interpolate`` values (bilinear, antialiased) bit for bit, whatever the
frame's shape, in one pass or several at once, and falls back to torch where this build sums otherwise."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sam3_ros.engine import frame_resize, preprocess
from sam3_ros.engine.host_kernels import numba_threads


def _frame(height: int, width: int, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _torch_resize(image: np.ndarray, size: int) -> np.ndarray:
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    resized = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return resized[0].permute(1, 2, 0).numpy()


def _bits(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values).view(np.int32)


@pytest.mark.parametrize(
    "height, width, size",
    [
        (720, 1280, 112),
        (96, 128, 56),
        (56, 40, 112),
        (123, 457, 112),
        (17, 1000, 64),
        (480, 640, 1008),
        (112, 640, 112),
        (1, 300, 112),
    ],
    ids=["720p", "small", "upscale", "odd", "one-block", "to-1008", "height-kept", "one-row"],
)
@pytest.mark.parametrize("passes", [1, 3])
def test_the_values_are_torchs_bit_for_bit(monkeypatch, height, width, size, passes):
    monkeypatch.setattr(frame_resize, "host_passes", lambda: passes)
    image = _frame(height, width)
    ours = frame_resize.resize_frame(image, size)
    assert ours is not None and ours.shape == (size, size, 3)
    assert np.array_equal(_bits(ours), _bits(_torch_resize(image, size)))


def test_a_frame_resized_while_another_kernel_holds_numbas_threads_is_the_same():
    image = _frame(200, 300)
    with numba_threads() as held:
        assert held
        in_turn = frame_resize.resize_frame(image, 112)
    assert np.array_equal(_bits(in_turn), _bits(frame_resize.resize_frame(image, 112)))


def test_the_windows_and_weights_are_torchs_filter():
    axis = frame_resize.resize_axis(1280, 112)
    assert axis.first[0] == 0 and axis.first[-1] + axis.size[-1] == 1280
    assert np.all(np.diff(axis.first) > 0) and axis.size.min() >= 17 and axis.size.max() <= 24
    np.testing.assert_allclose(axis.taps.sum(axis=1), 1.0, atol=1e-5)
    for j in (0, 55, 111):  # a tent over the window: rises to its middle, falls after, zero past the window
        taps = axis.taps[j, : axis.size[j]]
        peak = int(taps.argmax())
        assert np.all(np.diff(taps[: peak + 1]) >= 0) and np.all(np.diff(taps[peak:]) <= 0)
        assert not axis.taps[j, axis.size[j] :].any()


def test_a_build_that_sums_otherwise_is_resized_by_torch(monkeypatch):
    """Where the kernel's sums differ from torch's (another build, another CPU), the frames of that shape go to
    torch: the pixels stay torch's."""
    honest = frame_resize._resize
    monkeypatch.setattr(frame_resize, "_resize", lambda image, size: np.nextafter(honest(image, size), np.inf))
    frame_resize.resize_matches_torch.cache_clear()
    try:
        image = _frame(90, 160)
        assert frame_resize.resize_frame(image, 56) is None
        x = torch.from_numpy(image).permute(2, 0, 1)[None]
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
        expected = torch.from_numpy(_torch_resize(image, 56)).permute(2, 0, 1)[None].clamp(0, 255).round()
        assert torch.equal(preprocess.resize_uint8(x, 56), expected.to(torch.uint8))
    finally:
        frame_resize.resize_matches_torch.cache_clear()
