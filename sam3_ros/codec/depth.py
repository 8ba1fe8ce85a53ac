"""Depth images and pinhole intrinsics from their ROS messages, and depth arrays back to message fields.

A depth image follows REP 118: ``16UC1`` in millimetres or ``32FC1`` in metres, 0 or NaN where the sensor
has no value. ``sensor_msgs/CameraInfo`` gives the intrinsics (``k``: fx, fy, cx, cy, pixel centres at
integer coordinates). Works on plain fields, so rosbags dataclasses and rclpy messages both work; nothing
here imports ROS. Malformed input raises ``ValueError`` naming what was wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .image import MAX_PIXELS, pixel_rows

# encoding -> (little-endian dtype, metres per unit)
DEPTH_ENCODINGS = {"16UC1": ("<u2", 0.001), "32FC1": ("<f4", 1.0)}


def depth_to_array(msg: Any, *, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, float]:
    """A depth ``sensor_msgs/Image`` as a (H, W) array in its own unit (a view of the message's data, no copy)
    and the scale from that unit to metres (0.001 for ``16UC1``, 1 for ``32FC1``)."""
    encoding = str(msg.encoding)
    if encoding not in DEPTH_ENCODINGS:
        raise ValueError(f"unsupported depth encoding {encoding!r}; supported: 16UC1 (millimetres), 32FC1 (metres)")
    dtype, scale = DEPTH_ENCODINGS[encoding]
    dtype = np.dtype(dtype).newbyteorder(">" if getattr(msg, "is_bigendian", 0) else "<")
    rows = pixel_rows(msg, dtype.itemsize, max_pixels)
    return rows.view(dtype), scale


def depth_to_image_fields(depth: np.ndarray, encoding: str = "16UC1") -> dict:
    """``sensor_msgs/Image`` fields (no header) of a (H, W) depth array in metres: ``16UC1`` rounds to whole
    millimetres (values beyond 65.535 m and NaN become 0, "no depth"), ``32FC1`` keeps metres."""
    depth = np.asarray(depth, np.float64)
    if depth.ndim != 2:
        raise ValueError(f"expected a (H, W) depth array, got shape {depth.shape}")
    if encoding == "16UC1":
        millimetres = np.nan_to_num(np.rint(depth * 1000.0), nan=0.0)
        pixels = np.where((millimetres > 0) & (millimetres <= 65535), millimetres, 0).astype("<u2")
    elif encoding == "32FC1":
        pixels = depth.astype("<f4")
    else:
        raise ValueError(f"cannot encode depth as {encoding!r}; use 16UC1 or 32FC1")
    h, w = pixels.shape
    return {
        "height": h,
        "width": w,
        "encoding": encoding,
        "is_bigendian": 0,
        "step": w * pixels.itemsize,
        "data": np.ascontiguousarray(pixels).view(np.uint8).reshape(-1),
    }


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of an image of ``width`` x ``height`` pixels (pixel centres at integer coordinates):
    a pixel (u, v) at depth z is the point ((u - cx) z / fx, (v - cy) z / fy, z) of the optical frame."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_camera_info(cls, msg: Any) -> "Intrinsics":
        """From a ``sensor_msgs/CameraInfo``: ``k`` = [fx, 0, cx, 0, fy, cy, 0, 0, 1]. Lens distortion
        (``d``) is not applied: the image is taken as undistorted, as aligned depth cameras publish it."""
        k = [float(v) for v in np.asarray(msg.k, np.float64).reshape(-1)]
        if len(k) != 9:
            raise ValueError(f"CameraInfo k has {len(k)} values, expected 9")
        fx, fy, cx, cy = k[0], k[4], k[2], k[5]
        if not all(math.isfinite(v) for v in (fx, fy, cx, cy)):
            raise ValueError(f"CameraInfo k is not finite: fx {fx}, fy {fy}, cx {cx}, cy {cy}")
        if fx <= 0 or fy <= 0:
            raise ValueError(f"CameraInfo has a zero or negative focal length (fx {fx}, fy {fy}): not calibrated")
        return cls(fx, fy, cx, cy, int(msg.width), int(msg.height))

    def check_size(self, height: int, width: int) -> None:
        """ValueError if the calibration is for another image size (0 x 0: not stated, accepted)."""
        if (self.width or self.height) and (self.height, self.width) != (height, width):
            raise ValueError(f"CameraInfo is for {self.width}x{self.height} images, the image is {width}x{height}")

    def camera_info_fields(self) -> dict:
        """``sensor_msgs/CameraInfo`` fields (no header) of these intrinsics, without distortion."""
        k = np.array([self.fx, 0, self.cx, 0, self.fy, self.cy, 0, 0, 1], np.float64)
        p = np.array([self.fx, 0, self.cx, 0, 0, self.fy, self.cy, 0, 0, 0, 1, 0], np.float64)
        return {
            "height": self.height,
            "width": self.width,
            "distortion_model": "plumb_bob",
            "d": np.zeros(5),
            "k": k,
            "r": np.eye(3).reshape(-1),
            "p": p,
            "binning_x": 0,
            "binning_y": 0,
        }
