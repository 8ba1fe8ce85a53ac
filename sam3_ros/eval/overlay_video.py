"""An overlay video: camera frames with each instance's mask in its id's colour, its id and phrase."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from ..codec import rle

ALPHA = 0.55  # mask opacity


def id_color(obj_id: int) -> tuple[int, int, int]:
    """A bright RGB colour that stays the same for an id (golden-ratio hue steps)."""
    import colorsys

    r, g, b = colorsys.hsv_to_rgb((obj_id * 0.618033988749895) % 1.0, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def draw(rgb: np.ndarray, msg) -> np.ndarray:
    """The frame with the InstanceArray ``msg`` drawn on it (RGB uint8); ``msg`` None draws nothing."""
    import cv2

    out = rgb.copy()
    if msg is None:
        return out
    h, w = out.shape[:2]
    shown = []
    for inst in msg.instances:
        if (int(inst.mask_height), int(inst.mask_width)) != (h, w):
            raise ValueError(f"instance {inst.id} mask is {inst.mask_width}x{inst.mask_height}, frame is {w}x{h}")
        mask = rle.decode(inst.mask_rle, h, w)
        if mask.any():
            color = np.array(id_color(int(inst.id)), np.float32)
            out[mask] = (out[mask] * (1 - ALPHA) + color * ALPHA).astype(np.uint8)
            shown.append(inst)
    for inst in shown:  # labels last, so no mask covers them
        x0, y0 = int(inst.box[0]), int(inst.box[1])
        label = f"{inst.id} {inst.concept}".strip()
        cv2.putText(
            out, label, (x0, max(10, y0 - 2)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, id_color(int(inst.id)), 1, cv2.LINE_AA
        )
    return out


def write_video(path: str | Path, frames: Iterable[tuple[np.ndarray, object]], fps: float) -> int:
    """Write (RGB frame, InstanceArray or None) pairs to an mp4 (codec mp4v, no ffmpeg needed); returns frames."""
    import cv2

    path, writer, count = Path(path), None, 0
    try:
        for rgb, msg in frames:
            if writer is None:
                h, w = rgb.shape[:2]
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
                if not writer.isOpened():
                    raise ValueError(f"cannot open a video writer for {path}")
            writer.write(np.ascontiguousarray(draw(rgb, msg)[..., ::-1]))
            count += 1
    finally:
        if writer is not None:
            writer.release()
    return count
