"""Images for people and tools: the colored overlay (``/sam3/overlay``) and the label image (``/sam3/labels``)."""

from __future__ import annotations

import colorsys

import numpy as np

from ..engine.types import Instances, to_host

ALPHA = 0.5  # mask opacity in the overlay


def color_of(object_id: int) -> tuple[int, int, int]:
    """A stable, well-separated RGB color per object id (golden-ratio hue steps)."""
    hue = (int(object_id) * 0.618033988749895) % 1.0
    return tuple(int(c * 255) for c in colorsys.hsv_to_rgb(hue, 0.85, 1.0))


def label_image(instances: Instances) -> np.ndarray:
    """(H, W) uint16: each pixel holds the id of the object covering it (0 = none; ids wrap at 65536).
    Where masks overlap, the higher id wins."""
    h, w = instances.image_size
    out = np.zeros((h, w), np.uint16)
    ids = np.asarray(to_host(instances.ids))
    masks = np.asarray(to_host(instances.masks), bool)
    for i in np.argsort(ids, kind="stable"):
        out[masks[i]] = np.uint16(int(ids[i]) & 0xFFFF)
    return out


def overlay_image(rgb: np.ndarray, instances: Instances) -> np.ndarray:
    """The RGB image with each mask tinted in its object's color, its box, and ``id concept score`` text."""
    from PIL import Image, ImageDraw  # pillow is a dependency; only needed when the overlay is on

    out = rgb.astype(np.float32)
    ids = np.asarray(to_host(instances.ids))
    masks = np.asarray(to_host(instances.masks), bool)
    for i, object_id in enumerate(ids):
        out[masks[i]] = (1 - ALPHA) * out[masks[i]] + ALPHA * np.array(color_of(object_id), np.float32)
    image = Image.fromarray(out.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    boxes = np.asarray(to_host(instances.boxes), np.float32)
    scores = np.asarray(to_host(instances.scores), np.float32)
    for i, (object_id, concept) in enumerate(zip(ids, instances.concepts)):
        x0, y0, x1, y1 = (float(v) for v in boxes[i])
        color = color_of(object_id)
        draw.rectangle([x0, y0, max(x1 - 1, x0), max(y1 - 1, y0)], outline=color)
        draw.text((x0 + 2, y0 + 1), f"{int(object_id)} {concept} {scores[i]:.2f}".replace("  ", " "), fill=color)
    return np.asarray(image)
