"""The encoder's pixels are made as transformers' SAM 3 image processor makes them: an antialiased bilinear resize of
the uint8 image to uint8 (torchvision's ``resize``), then (x - 127.5) / 127.5."""

import numpy as np
import torch
import torch.nn.functional as F

from sam3_ros.engine import frame_resize, preprocess
from sam3_ros.engine.preprocess import to_pixels


def _frame(height: int, width: int) -> torch.Tensor:
    rng = np.random.default_rng(0)
    return torch.from_numpy(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_pixels_lie_on_the_uint8_grid_and_follow_the_float_resize():
    image = _frame(720, 1280)
    pixels = to_pixels(image, 112, torch.float32)
    levels = pixels * 127.5 + 127.5
    assert pixels.shape == (1, 3, 112, 112)
    assert torch.equal(levels, levels.round()) and levels.min() >= 0 and levels.max() <= 255
    # the float resize it replaces, rounded: torch's uint8 kernel stays within one level of it
    exact = F.interpolate(image.permute(2, 0, 1)[None].float(), size=(112, 112), mode="bilinear", antialias=True)
    assert (levels - exact.round()).abs().max() <= 1


def test_the_kernel_follows_torchvisions_rule_on_the_cpu_capability(monkeypatch):
    # torchvision resizes uint8 in uint8 only where the capability's name contains "AVX2": not on AVX512
    x = _frame(96, 128).permute(2, 0, 1)[None]
    uint8_kernel = F.interpolate(x, size=(56, 56), mode="bilinear", antialias=True)
    float_path = F.interpolate(x.float(), size=(56, 56), mode="bilinear", antialias=True).clamp(0, 255).round()
    for capability, expected in (("AVX2", uint8_kernel), ("AVX512", float_path), ("DEFAULT", float_path)):
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda name=capability: name)
        assert torch.equal(preprocess.resize_uint8(x, 56), expected.to(torch.uint8)), capability
    assert not torch.equal(uint8_kernel, float_path.to(torch.uint8))  # the two paths do differ


def test_without_avx2_the_float_path_rounds_to_uint8(monkeypatch):
    image = _frame(96, 128)
    fast = to_pixels(image, 56, torch.float32)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "DEFAULT")
    slow = to_pixels(image, 56, torch.float32)
    assert ((fast - slow).abs() * 127.5).max() <= 1.0 + 1e-4
    assert preprocess.resize_uint8(image.permute(2, 0, 1)[None], 56).dtype == torch.uint8


def test_a_frame_of_the_model_size_is_only_normalized():
    image = _frame(56, 56)
    pixels = to_pixels(image, 56, torch.float32)
    assert torch.equal(pixels[0], (image.permute(2, 0, 1).float() - 127.5) / 127.5)


def test_the_compiled_float_path_gives_the_values_of_its_tensor_steps(monkeypatch):
    """On the CPU the float path's resize, rounding and normalization run as one compiled pass: the same values as
    ``resize_uint8`` and the normalization as tensor operations."""
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    for height, width, size in ((720, 1280, 112), (97, 203, 56), (60, 40, 72)):
        image = _frame(height, width)
        steps = (preprocess.resize_uint8(image.permute(2, 0, 1)[None], size).float() - 127.5) / 127.5
        pixels = to_pixels(image, size, torch.float32)
        assert pixels.shape == steps.shape and torch.equal(pixels, steps), (height, width, size)
        assert frame_resize.normalized_frame(image.numpy(), size) is not None  # the compiled pass ran
        assert to_pixels(image, size, torch.bfloat16).dtype == torch.bfloat16
