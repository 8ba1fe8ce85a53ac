"""Camera images <-> RGB uint8 arrays: ``sensor_msgs/Image`` fields and ``CompressedImage`` data.

Works on plain fields (height, width, encoding, step, data, ...), so any message class with those
attributes (rosbags dataclasses, rclpy messages) can be passed in; nothing here imports ROS. Every
malformed input raises ``ValueError`` naming what was wrong, before any large allocation.

Encodings follow ``sensor_msgs/image_encodings.hpp``: ``yuv422`` is UYVY byte order and
``yuv422_yuy2`` is YUYV; ``uyvy`` and ``yuyv`` are accepted as aliases (cameras publish both names).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

# Default cap on decoded pixels (the node passes ``input.max_image_pixels``).
MAX_PIXELS = 4096 * 4096

# encoding -> (bytes per pixel, channel order). Packed YUV 4:2:2 is 2 bytes per pixel.
_LAYOUTS = {
    "rgb8": (3, "rgb"),
    "bgr8": (3, "bgr"),
    "rgba8": (4, "rgba"),
    "bgra8": (4, "bgra"),
    "mono8": (1, "mono"),
    "8uc1": (1, "mono"),
    "mono16": (2, "mono16"),
    "16uc1": (2, "mono16"),
    "yuv422": (2, "uyvy"),
    "uyvy": (2, "uyvy"),
    "yuv422_yuy2": (2, "yuyv"),
    "yuyv": (2, "yuyv"),
}
IMAGE_ENCODINGS = tuple(_LAYOUTS)
COMPRESSED_FORMATS = ("jpeg", "png")
_MAGIC = {"jpeg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n"}


def _check_size(height: int, width: int, max_pixels: int) -> None:
    if height <= 0 or width <= 0:
        raise ValueError(f"image has zero size ({width}x{height})")
    if height * width > max_pixels:
        raise ValueError(f"image of {width}x{height} = {height * width} pixels exceeds the limit of {max_pixels}")


def pixel_rows(msg: Any, bytes_per_pixel: int, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The (height, width x bytes_per_pixel) uint8 pixel rows of a ``sensor_msgs/Image`` (a view of its data,
    row padding left out), after checking its size, step and data length (ValueError naming the problem)."""
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    _check_size(height, width, max_pixels)
    if step < width * bytes_per_pixel:
        raise ValueError(
            f"step {step} is smaller than width {width} x {bytes_per_pixel} bytes per pixel for {msg.encoding}"
        )
    data = (
        np.frombuffer(memoryview(msg.data), np.uint8)
        if not isinstance(msg.data, np.ndarray)
        else msg.data.view(np.uint8).reshape(-1)
    )
    if data.size != step * height:
        raise ValueError(f"data has {data.size} bytes, expected step {step} x height {height} = {step * height}")
    return data.reshape(height, step)[:, : width * bytes_per_pixel]


def image_to_rgb(msg: Any, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode a ``sensor_msgs/Image`` (anything with its fields) to a new RGB uint8 (H, W, 3) array."""
    height, width = int(msg.height), int(msg.width)
    encoding = str(msg.encoding).lower()
    if encoding not in _LAYOUTS:
        raise ValueError(f"unsupported image encoding {msg.encoding!r}; supported: {', '.join(IMAGE_ENCODINGS)}")
    bpp, order = _LAYOUTS[encoding]
    rows = pixel_rows(msg, bpp, max_pixels)
    if order in ("uyvy", "yuyv") and width % 2:
        raise ValueError(f"{encoding} needs an even width, got {width}")
    if order == "mono16":
        big = bool(getattr(msg, "is_bigendian", False))
        return _stretch_to_rgb(rows.copy().view(">u2" if big else "<u2").reshape(height, width))
    if order in ("uyvy", "yuyv"):
        return _yuv422_to_rgb(rows.reshape(height, width // 2, 4), order)
    pixels = rows.reshape(height, width, bpp)
    if order == "mono":
        return np.repeat(pixels, 3, axis=2)
    rgb = pixels[..., [2, 1, 0]] if order.startswith("bgr") else pixels[..., :3]
    return np.require(rgb, requirements=["C", "W"])  # an owned, writable copy: the message buffer is read-only


def _stretch_to_rgb(values: np.ndarray) -> np.ndarray:
    """16-bit single channel -> 8-bit grey: min..max stretched to 0..255 (depth/IR cameras use a
    small part of the 16-bit range, so a fixed >>8 would be black); a flat image maps to 0."""
    lo, hi = int(values.min()), int(values.max())
    scaled = ((values.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1)) + 0.5).astype(np.uint8)
    return np.repeat(scaled[..., None], 3, axis=2)


def _yuv422_to_rgb(quads: np.ndarray, order: str) -> np.ndarray:
    """Packed 4:2:2 (H, W/2, 4 bytes) -> RGB, BT.601 limited range (as OpenCV and cv_bridge)."""
    quads = quads.astype(np.float32)
    if order == "uyvy":
        u, y0, v, y1 = (quads[..., i] for i in range(4))
    else:
        y0, u, y1, v = (quads[..., i] for i in range(4))
    h, half = quads.shape[:2]
    y = np.stack([y0, y1], axis=2).reshape(h, half * 2) - 16.0
    u = np.repeat(u, 2, axis=1) - 128.0
    v = np.repeat(v, 2, axis=1) - 128.0
    rgb = np.stack([1.164 * y + 1.596 * v, 1.164 * y - 0.392 * u - 0.813 * v, 1.164 * y + 2.017 * u], axis=2)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def compressed_format(fmt: str, data: bytes) -> str:
    """``jpeg`` or ``png`` from a ``CompressedImage.format`` string (e.g. ``"bgr8; jpeg compressed bgr8"``)
    and the data's signature, which must agree; ValueError otherwise."""
    text = str(fmt).lower()
    named = [name for name, keys in (("jpeg", ("jpeg", "jpg")), ("png", ("png",))) if any(k in text for k in keys)]
    if "compresseddepth" in text.replace(" ", "") or (text.strip() and not named):
        raise ValueError(f"unsupported compressed format {fmt!r}; supported: {', '.join(COMPRESSED_FORMATS)}")
    sniffed = next((name for name, magic in _MAGIC.items() if bytes(data[: len(magic)]) == magic), None)
    if sniffed is None:
        raise ValueError(
            f"compressed data ({len(data)} bytes) is not a {named[0] if named else 'JPEG or PNG'} "
            "stream (bad signature)"
        )
    if named and named[0] != sniffed:
        raise ValueError(f"format says {named[0]} but the data is {sniffed}")
    return sniffed


def compressed_to_rgb(msg: Any, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (jpeg or png) to an RGB uint8 (H, W, 3) array."""
    from PIL import Image as PILImage  # pillow is a dependency; imported here to keep imports light

    data = bytes(msg.data) if not isinstance(msg.data, np.ndarray) else msg.data.tobytes()
    if not data:
        raise ValueError("compressed image has no data (zero size)")
    kind = compressed_format(msg.format, data)
    try:
        with PILImage.open(io.BytesIO(data)) as image:
            _check_size(image.height, image.width, max_pixels)  # header only: nothing decoded yet
            image.load()
            return np.array(image.convert("RGB"))
    except (OSError, SyntaxError, PILImage.DecompressionBombError) as exc:  # truncated or corrupt stream
        raise ValueError(f"cannot decode {kind} data ({len(data)} bytes): {exc}") from None


def rgb_to_image_fields(rgb: np.ndarray, encoding: str = "rgb8") -> dict:
    """``sensor_msgs/Image`` fields (no header) for an RGB uint8 image, as rgb8, bgr8 or mono8.

    A (H, W) uint16 array with ``encoding="mono16"`` is published as is (label images)."""
    rgb = np.asarray(rgb)
    if encoding == "mono16":
        if rgb.ndim != 2 or rgb.dtype != np.uint16:
            raise ValueError(f"mono16 needs a (H, W) uint16 array, got {rgb.dtype} {rgb.shape}")
        pixels = rgb.astype("<u2")
    else:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 (H, W, 3) array, got {rgb.dtype} {rgb.shape}")
        if encoding == "rgb8":
            pixels = rgb
        elif encoding == "bgr8":
            pixels = rgb[..., ::-1]
        elif encoding == "mono8":
            pixels = (rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) + 0.5).astype(np.uint8)
        else:
            raise ValueError(f"cannot encode to {encoding!r}; use rgb8, bgr8, mono8 or mono16")
    h, w = pixels.shape[:2]
    data = np.ascontiguousarray(pixels).view(np.uint8).reshape(-1)
    return {
        "height": h,
        "width": w,
        "encoding": encoding,
        "is_bigendian": 0,
        "step": data.size // max(h, 1),
        "data": data,
    }


def rgb_to_compressed(rgb: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> bytes:
    """JPEG or PNG bytes of an RGB uint8 image (for cameras, bags and tests)."""
    from PIL import Image as PILImage

    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) array, got {rgb.dtype} {rgb.shape}")
    if fmt not in COMPRESSED_FORMATS:
        raise ValueError(f"unsupported compressed format {fmt!r}; supported: {', '.join(COMPRESSED_FORMATS)}")
    out = io.BytesIO()
    PILImage.fromarray(rgb).save(
        out, "JPEG" if fmt == "jpeg" else "PNG", **({"quality": quality} if fmt == "jpeg" else {})
    )
    return out.getvalue()
