"""COCO run-length encoding of binary masks, as published in ``sam3_ros/Instance.mask_rle``, and ``RleMasks``,
masks held as their counts.

Counts alternate background/foreground runs over the mask in column-major order, starting with a
background run (length 0 if the first pixel is set); ``pycocotools`` reads them after
``frPyObjects({"size": [h, w], "counts": counts}, h, w)``. This numpy version is the reference the
CUDA kernel (``sam3_ros.kernels``) must match.
"""

from __future__ import annotations

import numpy as np


def encode(masks: np.ndarray) -> list[np.ndarray]:
    """Encode (N, H, W) boolean masks; returns one uint32 counts array per mask."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (N, H, W), got shape {masks.shape}")
    n, h, w = masks.shape
    flat = masks.astype(bool).transpose(0, 2, 1).reshape(n, h * w)  # column-major per mask
    out = []
    for row in flat:
        # Run boundaries are where the value changes; a leading 1 gives an empty background run.
        change = np.flatnonzero(row[1:] != row[:-1]) + 1
        edges = np.concatenate(([0], change, [row.size]))
        counts = np.diff(edges).astype(np.uint32)
        if row.size and row[0]:
            counts = np.concatenate((np.zeros(1, np.uint32), counts))
        out.append(counts)
    return out


def decode(counts: np.ndarray, height: int, width: int) -> np.ndarray:
    """Decode one counts array to an (H, W) boolean mask."""
    counts = np.asarray(counts, dtype=np.int64)
    if counts.sum() != height * width:
        raise ValueError(f"RLE counts sum to {int(counts.sum())}, expected {height}*{width}={height * width}")
    values = np.arange(len(counts)) % 2 == 1
    flat = np.repeat(values, counts)
    return flat.reshape(width, height).T.copy()


def bbox(counts: np.ndarray, height: int, width: int) -> np.ndarray:
    """xyxy box (x_max, y_max exclusive) of an RLE mask; zeros if empty."""
    mask = decode(counts, height, width)
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return np.zeros(4, np.float32)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


class RleMasks:
    """(N, H, W) boolean masks held as their COCO RLE counts (one uint32 array per mask, as ``encode`` gives).

    ``np.asarray`` (or ``dense()``) decodes them; ``counts[i]`` is what a message carries."""

    def __init__(self, counts: list[np.ndarray], size: tuple[int, int]):
        self.counts = list(counts)
        self.size = (int(size[0]), int(size[1]))

    def __len__(self) -> int:
        return len(self.counts)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.counts), *self.size)

    def dense(self) -> np.ndarray:
        """The masks as an (N, H, W) bool array."""
        out = np.zeros(self.shape, bool)
        for mask, counts in zip(out, self.counts):
            mask[...] = decode(counts, *self.size)
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self.dense() if dtype is None else self.dense().astype(dtype)
