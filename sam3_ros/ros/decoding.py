"""Image decoding for the rclpy transport: our codec, with cv_bridge as the fallback where ROS has it.

Importable without rclpy (cv_bridge is imported only when an encoding needs it), so the fallback is
tested where ROS 2 is not installed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..pipeline.node import decode_image


def decode_with_cv_bridge(message: Any, max_pixels: int) -> np.ndarray:
    """Our codec first; cv_bridge (where installed) for encodings the codec does not know. Every image
    cv_bridge cannot convert raises ``ValueError``, as our codec's bad images do, so the node counts it
    as a bad image and goes on."""
    try:
        return decode_image(message, max_pixels)
    except ValueError as exc:
        if "unsupported image encoding" not in str(exc):
            raise
        try:
            from cv_bridge import CvBridge
        except ImportError:
            raise exc from None
        if int(message.height) * int(message.width) > max_pixels:
            raise ValueError(f"image of {message.width}x{message.height} pixels exceeds the limit of {max_pixels}")
        try:
            rgb = np.asarray(CvBridge().imgmsg_to_cv2(message, desired_encoding="rgb8"))
        except (TypeError, ValueError) as error:  # CvBridgeError is a TypeError; numpy's buffer checks raise either
            raise ValueError(f"cv_bridge cannot convert the {message.encoding!r} image: {error}") from error
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(
            f"cv_bridge gave a {rgb.dtype} {rgb.shape} array for the {message.encoding!r} image, not RGB uint8"
        )
    return rgb
