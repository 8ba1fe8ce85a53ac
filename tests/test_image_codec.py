"""sensor_msgs Image / CompressedImage decoding to RGB, and every malformed input -> ValueError."""

import re

import numpy as np
import pytest

from sam3_ros.codec import image as codec
from sam3_ros.interfaces import typestore

TYPES = typestore().types
RNG = np.random.default_rng(5)
RGB = RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8)


def image_msg(pixels: np.ndarray, encoding: str, step: int | None = None, bigendian: bool = False, pad: int = 0):
    """A rosbags sensor_msgs/Image holding ``pixels`` (H, W[, C]) with optional row padding."""
    h, w = pixels.shape[:2]
    rows = np.ascontiguousarray(pixels).view(np.uint8).reshape(h, -1)
    rows = np.concatenate([rows, np.zeros((h, pad), np.uint8)], axis=1)
    header = TYPES["std_msgs/msg/Header"](stamp=TYPES["builtin_interfaces/msg/Time"](sec=1, nanosec=2), frame_id="cam")
    return TYPES["sensor_msgs/msg/Image"](
        header=header,
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=int(bigendian),
        step=rows.shape[1] if step is None else step,
        data=rows.reshape(-1),
    )


def compressed_msg(data: bytes, fmt: str):
    header = TYPES["std_msgs/msg/Header"](stamp=TYPES["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id="")
    return TYPES["sensor_msgs/msg/CompressedImage"](header=header, format=fmt, data=np.frombuffer(data, np.uint8))


@pytest.mark.parametrize(
    "encoding,pixels",
    [
        ("rgb8", RGB),
        ("bgr8", RGB[..., ::-1]),
        ("rgba8", np.concatenate([RGB, np.full((6, 8, 1), 7, np.uint8)], axis=2)),
        ("bgra8", np.concatenate([RGB[..., ::-1], np.full((6, 8, 1), 7, np.uint8)], axis=2)),
    ],
)
def test_color_encodings_decode_to_the_same_rgb(encoding, pixels):
    assert np.array_equal(codec.image_to_rgb(image_msg(pixels, encoding)), RGB)
    # Row padding (step > width * bytes per pixel) is skipped.
    assert np.array_equal(codec.image_to_rgb(image_msg(pixels, encoding, pad=5)), RGB)


def test_mono8_is_replicated_to_three_channels():
    grey = RGB[..., 0]
    out = codec.image_to_rgb(image_msg(grey, "mono8"))
    assert out.shape == (6, 8, 3) and all(np.array_equal(out[..., c], grey) for c in range(3))


@pytest.mark.parametrize("bigendian", [False, True])
def test_mono16_is_stretched_min_to_max(bigendian):
    depth = np.linspace(1000, 1510, 48).reshape(6, 8).astype(np.uint16)
    stored = depth.astype(">u2" if bigendian else "<u2")
    out = codec.image_to_rgb(image_msg(stored, "mono16", bigendian=bigendian))
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255
    assert np.all(np.diff(out[..., 0].reshape(-1).astype(int)) >= 0)  # order preserved
    flat = codec.image_to_rgb(image_msg(np.full((2, 2), 300, np.uint16), "mono16"))
    assert not flat.any()


def _rgb_to_yuv(rgb):
    """BT.601 limited range, the inverse of what the codec applies."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    return y, u, v


@pytest.mark.parametrize("encoding", ["yuv422", "uyvy", "yuv422_yuy2", "yuyv"])
def test_yuv422_round_trips_within_rounding(encoding):
    # Chroma is shared by pixel pairs: use pairs of equal colour so the round trip is exact up to rounding.
    rgb = np.repeat(RNG.integers(30, 220, (4, 3, 3)), 2, axis=1).astype(np.uint8)
    y, u, v = _rgb_to_yuv(rgb)
    y0, y1, uu, vv = y[:, 0::2], y[:, 1::2], u[:, 0::2], v[:, 0::2]
    uyvy = encoding in ("yuv422", "uyvy")
    quads = np.stack([uu, y0, vv, y1] if uyvy else [y0, uu, y1, vv], axis=2)
    packed = np.round(quads).astype(np.uint8).reshape(4, -1)
    msg = image_msg(packed, encoding)
    msg.width = 6
    assert np.abs(codec.image_to_rgb(msg).astype(int) - rgb).max() <= 3


def test_yuv422_matches_opencv():
    cv2 = pytest.importorskip("cv2")
    packed = RNG.integers(16, 236, (4, 16), dtype=np.uint8)
    msg = image_msg(packed, "yuyv")
    msg.width = 8
    ours = codec.image_to_rgb(msg).astype(int)
    theirs = cv2.cvtColor(packed.reshape(4, 8, 2), cv2.COLOR_YUV2RGB_YUYV).astype(int)
    assert np.abs(ours - theirs).max() <= 2


@pytest.mark.parametrize(
    "fmt,exact",
    [
        ("jpeg", False),
        ("png", True),
        ("bgr8; jpeg compressed bgr8", False),
        ("rgb8; png compressed rgb8", True),
        ("", True),
    ],
)
def test_compressed_images_decode(fmt, exact):
    smooth = np.clip(np.add.outer(np.arange(16) * 8, np.arange(24) * 5), 0, 255).astype(np.uint8)
    rgb = np.stack([smooth, smooth[::-1], 255 - smooth], axis=2)
    data = codec.rgb_to_compressed(rgb, "png" if exact else "jpeg")
    out = codec.compressed_to_rgb(compressed_msg(data, fmt))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    error = np.abs(out.astype(int) - rgb)
    assert error.max() == 0 if exact else error.mean() < 4


def test_encode_fields_round_trip():
    for encoding in ("rgb8", "bgr8"):
        assert np.array_equal(codec.image_to_rgb(image_msg_from_fields(codec.rgb_to_image_fields(RGB, encoding))), RGB)
    labels = np.arange(48, dtype=np.uint16).reshape(6, 8) * 1000
    fields = codec.rgb_to_image_fields(labels, "mono16")
    assert fields["step"] == 16 and np.array_equal(fields["data"].view("<u2").reshape(6, 8), labels)


def image_msg_from_fields(fields):
    header = TYPES["std_msgs/msg/Header"](stamp=TYPES["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id="")
    return TYPES["sensor_msgs/msg/Image"](header=header, **fields)


def _truncated_jpeg():
    return codec.rgb_to_compressed(RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8), "jpeg")


@pytest.mark.parametrize(
    "make,expected",
    [
        (lambda: image_msg(RGB, "bayer_rggb8"), "unsupported image encoding 'bayer_rggb8'"),
        (lambda: image_msg(RGB, "32FC1"), "unsupported image encoding"),
        (
            lambda: image_msg_from_fields(
                {
                    "height": 0,
                    "width": 8,
                    "encoding": "rgb8",
                    "is_bigendian": 0,
                    "step": 24,
                    "data": np.zeros(0, np.uint8),
                }
            ),
            "zero size",
        ),
        (lambda: image_msg(RGB, "rgb8", step=20), "step 20 is smaller than width 8"),
        (lambda: image_msg(RGB, "rgb8", step=30), "expected step 30 x height 6 = 180"),
        (lambda: image_msg(RGB[:, :7], "yuyv"), "even width"),
    ],
)
def test_bad_images_raise_value_error_naming_the_problem(make, expected):
    with pytest.raises(ValueError, match=re.escape(expected)):
        codec.image_to_rgb(make())


def test_data_shorter_than_declared_is_rejected():
    msg = image_msg(RGB, "rgb8")
    msg.data = msg.data[:-1]
    with pytest.raises(ValueError, match="data has 143 bytes"):
        codec.image_to_rgb(msg)


def test_too_many_pixels_is_rejected_before_decoding():
    with pytest.raises(ValueError, match="exceeds the limit of 40"):
        codec.image_to_rgb(image_msg(RGB, "rgb8"), max_pixels=40)
    png = codec.rgb_to_compressed(RGB, "png")
    with pytest.raises(ValueError, match="exceeds the limit of 40"):
        codec.compressed_to_rgb(compressed_msg(png, "png"), max_pixels=40)


@pytest.mark.parametrize(
    "make,expected",
    [
        (lambda: compressed_msg(_truncated_jpeg()[:-40], "jpeg"), "cannot decode jpeg"),
        (lambda: compressed_msg(_truncated_jpeg()[:300], "jpeg"), "cannot decode jpeg"),
        (lambda: compressed_msg(b"", "jpeg"), "no data"),
        (lambda: compressed_msg(b"hello world", "jpeg"), "bad signature"),
        (lambda: compressed_msg(codec.rgb_to_compressed(RGB, "png"), "jpeg"), "format says jpeg but the data is png"),
        (lambda: compressed_msg(_truncated_jpeg(), "tiff"), "unsupported compressed format 'tiff'"),
        (lambda: compressed_msg(_truncated_jpeg(), "16UC1; compressedDepth png"), "unsupported compressed format"),
    ],
)
def test_bad_compressed_images_raise_value_error(make, expected):
    with pytest.raises(ValueError, match=expected):
        codec.compressed_to_rgb(make())


def test_encoders_reject_wrong_arrays():
    with pytest.raises(ValueError, match="RGB uint8"):
        codec.rgb_to_image_fields(RGB.astype(np.float32))
    with pytest.raises(ValueError, match="mono16 needs"):
        codec.rgb_to_image_fields(RGB, "mono16")
    with pytest.raises(ValueError, match="unsupported compressed format"):
        codec.rgb_to_compressed(RGB, "webp")
