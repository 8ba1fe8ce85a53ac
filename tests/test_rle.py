"""COCO RLE codec against pycocotools on random and edge-case masks."""

import numpy as np
import pytest
from pycocotools import mask as coco

from sam3_ros.codec import rle


def _coco_decode(counts, h, w):
    return coco.decode(coco.frPyObjects({"size": [h, w], "counts": [int(c) for c in counts]}, h, w))


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 7, 9), (2, 48, 64), (1, 1, 100), (1, 100, 1)])
def test_round_trip_random(shape):
    rng = np.random.default_rng(sum(shape))
    masks = rng.random(shape) > 0.6
    for mask, counts in zip(masks, rle.encode(masks)):
        assert counts.dtype == np.uint32 and counts.sum() == mask.size
        assert np.array_equal(_coco_decode(counts, *mask.shape), mask)
        assert np.array_equal(rle.decode(counts, *mask.shape), mask)


def test_edge_cases():
    empty, full = np.zeros((1, 4, 5), bool), np.ones((1, 4, 5), bool)
    assert rle.encode(empty)[0].tolist() == [20]
    assert rle.encode(full)[0].tolist() == [0, 20]  # starts with an empty background run
    corner = np.zeros((1, 4, 5), bool)
    corner[0, 3, 4] = True  # last pixel in column-major order
    assert rle.encode(corner)[0].tolist() == [19, 1]
    assert rle.encode(np.zeros((0, 4, 5), bool)) == []
    assert rle.bbox(rle.encode(corner)[0], 4, 5).tolist() == [4, 3, 5, 4]


def test_matches_pycocotools_encoder():
    rng = np.random.default_rng(1)
    masks = rng.random((4, 30, 20)) > 0.5
    ours = [rle.encode(m[None])[0] for m in masks]
    theirs = coco.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    for counts, ref in zip(ours, theirs):
        assert coco.frPyObjects({"size": [30, 20], "counts": counts.tolist()}, 30, 20)["counts"] == ref["counts"]


def test_bad_input():
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        rle.encode(np.zeros((4, 5), bool))
    with pytest.raises(ValueError, match="sum to"):
        rle.decode(np.array([3, 4], np.uint32), 4, 5)
