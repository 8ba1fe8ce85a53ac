"""Hypothesis strategies for random camera messages: ``sensor_msgs/Image`` with any encoding, size, step
and data length the wire allows, and ``CompressedImage`` with corrupt, truncated or resized JPEG/PNG data.
Shared by the node-logic fuzz and the DDS-direct one."""

import struct
import zlib

import numpy as np
from hypothesis import strategies as st

from sam3_ros.codec.image import IMAGE_ENCODINGS, rgb_to_compressed
from sam3_ros.pipeline.messages import compressed_message, image_message

UINT32 = 2**32 - 1
# sensor_msgs/image_encodings.hpp: bytes per pixel of the encodings the codec decodes
BYTES_PER_PIXEL = {
    "rgb8": 3,
    "bgr8": 3,
    "rgba8": 4,
    "bgra8": 4,
    "mono8": 1,
    "8uc1": 1,
    "mono16": 2,
    "16uc1": 2,
    "yuv422": 2,
    "uyvy": 2,
    "yuv422_yuy2": 2,
    "yuyv": 2,
}
ENCODINGS = (*IMAGE_ENCODINGS, "yuv999", "bayer_rggb8", "32FC1", "16SC1", "RGB8", "", "rgb8 ")
FORMATS = (
    "jpeg",
    "png",
    "rgb8; jpeg compressed bgr8",
    "bgr8; png compressed ",
    "16UC1; compressedDepth png",
    "jpg",
    "tiff",
    "",
)
MAX_DATA = 64 * 64 * 4 + 64  # largest exact-size image data drawn: 64x64 at 4 bytes per pixel, plus padding
SIDES = st.one_of(st.integers(1, 64), st.integers(0, 64), st.integers(0, UINT32))  # mostly small, or anything
TEXT = st.binary(max_size=16).map(lambda raw: raw.decode("utf-8", "replace"))  # one draw: faster than st.text


def _bytes(seed: int, length: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, length, dtype=np.uint8)


@st.composite
def raw_images(draw):
    """A ``sensor_msgs/Image``: half well-formed (a known encoding, rows of its size plus padding, the
    declared data), half anything the wire allows (known and unknown encodings, any uint32 size and step,
    data of the declared size or of any other length)."""
    if draw(st.booleans()):
        encoding = draw(st.sampled_from(sorted(BYTES_PER_PIXEL)))
        height, width = draw(st.integers(1, 48)), draw(st.integers(1, 48))
        step = width * BYTES_PER_PIXEL[encoding] + draw(st.integers(0, 8))
        length = step * height
    else:
        encoding = draw(st.one_of(st.sampled_from(ENCODINGS), TEXT))
        height, width = draw(SIDES), draw(SIDES)
        row = min(width * draw(st.integers(1, 4)), UINT32)
        step = draw(st.one_of(st.just(row), st.integers(row, min(row + 8, UINT32)), st.integers(0, UINT32)))
        declared = step * height
        length = draw(
            st.one_of(st.just(declared), st.integers(0, 4096)) if declared <= MAX_DATA else st.integers(0, 4096)
        )
    fields = {
        "height": height,
        "width": width,
        "encoding": encoding,
        "is_bigendian": draw(st.integers(0, 255)),
        "step": step,
        "data": _bytes(draw(st.integers(0, UINT32)), length),
    }
    return image_message(fields, 0, "fuzz")


def _png_with_size(png: bytes, width: int, height: int) -> bytes:
    """The PNG with its header (IHDR) claiming another size, checksum fixed so that decoders read on."""
    ihdr = png[12:17] + struct.pack(">II", width, height) + png[25:29]
    return png[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + png[33:]


def _jpeg_with_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The JPEG with its frame header (SOF0) claiming another size."""
    sof = jpeg.find(b"\xff\xc0")
    return jpeg[: sof + 5] + struct.pack(">HH", height, width) + jpeg[sof + 9 :]


@st.composite
def compressed_images(draw):
    """A ``sensor_msgs/CompressedImage``: a real JPEG or PNG, then intact, truncated, with bytes flipped,
    claiming another size, or replaced by junk (with or without the signature); any format string."""
    kind = draw(st.sampled_from(("jpeg", "png")))
    seed = draw(st.integers(0, UINT32))
    h, w = draw(st.integers(1, 32)), draw(st.integers(1, 32))
    rgb = _bytes(seed, h * w * 3).reshape(h, w, 3)
    data = rgb_to_compressed(rgb, kind)
    change = draw(st.sampled_from(("intact", "truncated", "flipped", "resized", "signature_and_junk", "junk", "empty")))
    if change == "truncated":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif change == "flipped":
        flips = np.random.default_rng(seed).integers(0, len(data), draw(st.integers(1, 8)))
        data = np.frombuffer(data, np.uint8).copy()
        data[flips] ^= _bytes(seed + 1, len(flips)) | 1
        data = data.tobytes()
    elif change == "resized":
        size = draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFFFF))
        data = _png_with_size(data, *size) if kind == "png" else _jpeg_with_size(data, *size)
    elif change == "signature_and_junk":
        data = data[:8] + _bytes(seed, draw(st.integers(0, 512))).tobytes()
    elif change == "junk":
        data = _bytes(seed, draw(st.integers(1, 512))).tobytes()
    elif change == "empty":
        data = b""
    fmt = draw(st.one_of(st.just(kind), st.sampled_from(FORMATS), TEXT))
    return compressed_message(data, fmt, 0, "fuzz")


def camera_messages():
    """Either kind, half and half."""
    return st.one_of(raw_images(), compressed_images())
