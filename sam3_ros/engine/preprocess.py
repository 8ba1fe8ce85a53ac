"""Frame validation and preprocessing on the model's device (uint8 HxWx3 in, normalized NCHW out), as transformers'
SAM 3 image processor preprocesses."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .frame_resize import normalized_frame, resize_frame
from .types import Frame


def frame_tensor(frame: Frame, device: torch.device, max_pixels: int) -> torch.Tensor:
    """The frame's image as a uint8 (H, W, 3) tensor on ``device``; ``ValueError`` if it is not one."""
    if not isinstance(frame, Frame):
        raise ValueError(f"step() expects a Frame, got {type(frame).__name__}")
    image = frame.image
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ValueError(f"frame image must be uint8, got {image.dtype}")
        _check_shape(image.shape, max_pixels)
        if device.type == "cuda":  # one copy into pinned memory, so the upload does not wait on the host
            staged = torch.empty(image.shape, dtype=torch.uint8, pin_memory=True)
            staged.numpy()[...] = image
            image = staged
        else:  # decoded ROS messages are read-only buffers; torch tensors must own writable memory
            writable = image.flags.writeable and image.flags.c_contiguous
            image = torch.from_numpy(image if writable else np.array(image, order="C"))
    elif torch.is_tensor(image):
        if image.dtype != torch.uint8:
            raise ValueError(f"frame image must be uint8, got {image.dtype}")
        _check_shape(tuple(image.shape), max_pixels)
        if device.type == "cuda" and not image.is_cuda:
            image = image.pin_memory()  # a pageable source would make the copy wait on the host
    else:
        raise ValueError(f"frame image must be a numpy array or torch tensor, got {type(image).__name__}")
    return image.to(device, non_blocking=True)


def _check_shape(shape: tuple[int, ...], max_pixels: int) -> None:
    if len(shape) != 3 or shape[2] != 3:
        raise ValueError(f"frame image must be H x W x 3 (RGB), got shape {tuple(shape)}")
    h, w = int(shape[0]), int(shape[1])
    if h == 0 or w == 0:
        raise ValueError(f"frame image is empty ({h} x {w})")
    if h * w > max_pixels:
        raise ValueError(f"frame image has {h * w} pixels, more than input.max_image_pixels={max_pixels}")


def to_pixels(image: torch.Tensor, size: int, dtype: torch.dtype) -> torch.Tensor:
    """uint8 (H, W, 3) -> (1, 3, size, size) in ``dtype`` as transformers' SAM 3 image processor makes it: resized
    with antialiased bilinear interpolation to uint8 (torchvision's ``resize``), then rescaled and normalized in
    one step to [-1, 1] ((x - 127.5) / 127.5: mean 0.5 and std 0.5 fused with the 1/255 rescale)."""
    x = image.permute(2, 0, 1)[None]  # NCHW over the frame's channels-last memory: no copy
    if x.shape[-2:] != (size, size):
        if x.device.type == "cpu" and _float_path(x):
            pixels = normalized_frame(image.numpy(), size)  # the resize and the steps below in one compiled pass
            if pixels is not None:
                return torch.from_numpy(pixels)[None].to(dtype)
        x = resize_uint8(x, size)
    return ((x.float() - 127.5) / 127.5).to(dtype)


def _float_path(x: torch.Tensor) -> bool:
    """Whether torchvision resizes ``x`` in float32 (see ``resize_uint8``)."""
    return x.device.type != "cpu" or "AVX2" not in torch.backends.cpu.get_cpu_capability()


def resize_uint8(x: torch.Tensor, size: int) -> torch.Tensor:
    """(1, 3, H, W) uint8 -> (1, 3, size, size) uint8, bilinear with antialiasing, as torchvision resizes: torch's
    uint8 kernel where torch dispatches its AVX2 kernels (0.4 ms for 1280x720 -> 112), elsewhere in float32, rounded
    and clamped back to uint8. Torchvision's test is the capability's name, so a CPU where torch dispatches AVX512
    kernels takes the float path too; the two paths differ by one level on about 1% of pixels, and following
    torchvision keeps the pixels those of transformers' image processor on the same machine. On the CPU the float
    path's values come from ``frame_resize`` (torch's own, 1.6-3x faster) where they match this torch build."""
    if not _float_path(x):
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    values = resize_frame(x[0].permute(1, 2, 0).numpy(), size) if x.device.type == "cpu" else None
    if values is not None:
        y = torch.from_numpy(values).permute(2, 0, 1)[None].contiguous()  # F.interpolate's output is contiguous
    else:
        y = F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return y.clamp_(0, 255).round_().to(torch.uint8)
