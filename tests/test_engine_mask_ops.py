"""Mask post-processing against scipy's connected-component labelling."""

import numpy as np
import pytest
import scipy.ndimage as ndimage
import torch

from sam3_ros.engine.mask_ops import (
    components_by_pooling,
    components_on_host,
    connected_components,
    fill_holes,
    logits_to_masks,
    masks_to_boxes,
)

EIGHT = np.ones((3, 3), int)


@pytest.mark.parametrize("components", [components_by_pooling, components_on_host, connected_components])
@pytest.mark.parametrize("density", [0.0, 0.3, 0.55, 0.7, 1.0])
def test_component_areas_match_scipy(density, components):
    g = torch.Generator().manual_seed(int(density * 100))
    mask = torch.rand(3, 1, 23, 31, generator=g) < density
    mask[1, 0, 5:20, 3] = True  # a long thin component (many propagation steps)
    labels, areas = components(mask)
    for b in range(3):
        ref, n = ndimage.label(mask[b, 0].numpy(), structure=EIGHT)
        sizes = ndimage.sum(mask[b, 0].numpy(), ref, range(n + 1)).astype(np.int32)
        np.testing.assert_array_equal(areas[b, 0].numpy(), sizes[ref] * mask[b, 0].numpy())
        for k in range(1, n + 1):  # one label per scipy component, distinct across components
            assert len(np.unique(labels[b, 0].numpy()[ref == k])) == 1
        assert len(np.unique(labels[b, 0].numpy()[ref > 0])) == n


def test_fill_holes_fills_small_holes_and_removes_small_sprinkles():
    logits = torch.full((1, 1, 12, 12), -5.0)
    logits[0, 0, 2:9, 2:9] = 5.0
    logits[0, 0, 5, 5] = -5.0  # a 1-pixel hole
    logits[0, 0, 11, 11] = 5.0  # a 1-pixel sprinkle
    out = fill_holes(logits, max_area=2)[0, 0]
    assert out[5, 5] > 0 and out[11, 11] < 0
    assert torch.equal(out[2:9, 2:9] > 0, torch.ones(7, 7, dtype=torch.bool))
    assert torch.equal(fill_holes(logits, 0), logits)


def test_boxes_and_upsampling():
    masks = torch.zeros(2, 6, 8, dtype=torch.bool)
    masks[0, 1:3, 2:5] = True
    assert masks_to_boxes(masks).tolist() == [[2.0, 1.0, 5.0, 3.0], [0.0, 0.0, 0.0, 0.0]]
    up = logits_to_masks(torch.tensor([[[1.0, -1.0], [-1.0, -1.0]]]), (4, 4))
    assert up.shape == (1, 4, 4) and up[0, 0, 0] and not up[0, 3, 3]
