"""The reference's pieces that cannot run here, computed on the host: the ``cv-utils`` hub kernel's functions
(``CvUtilsOnHost``) and torchvision's ``masks_to_boxes`` against brute force written from their sources'
rules; then transformers' own NMS and hole filling with the port plugged in, against the engine's."""

from collections import deque

import numpy as np
import pytest
import torch
from transformers.models.sam3_video import modeling_sam3_video as reference_module

from sam3_ros.engine.mask_ops import fill_holes
from sam3_ros.engine.transformers_loop import CvUtilsOnHost, cv_utils_on_host, masks_to_boxes_inclusive
from sam3_ros.kernels.torch_ops import mask_nms


def _brute_components(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """8-connected flood fill; label = 1 + the smallest 2x2 block origin index the component touches."""
    h, w = image.shape
    labels, counts = np.zeros((h, w), np.int32), np.zeros((h, w), np.int32)
    seen = np.zeros((h, w), bool)
    for start in zip(*np.nonzero(image)):
        if seen[start]:
            continue
        seen[start] = True
        queue, members = deque([start]), []
        while queue:
            r, c = queue.popleft()
            members.append((r, c))
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    y, x = r + dr, c + dc
                    if 0 <= y < h and 0 <= x < w and image[y, x] and not seen[y, x]:
                        seen[y, x] = True
                        queue.append((y, x))
        label = 1 + min((r // 2) * 2 * w + (c // 2) * 2 for r, c in members)
        for r, c in members:
            labels[r, c], counts[r, c] = label, len(members)
    return labels, counts


@pytest.mark.parametrize("h, w, density", [(2, 2, 0.5), (8, 6, 0.4), (16, 24, 0.55), (32, 32, 0.3), (4, 50, 0.6)])
def test_cc_2d_matches_brute_force(h, w, density):
    g = torch.Generator().manual_seed(h * 100 + w)
    inputs = (torch.rand(5, 1, h, w, generator=g) < density).to(torch.uint8)
    inputs[0] = 0
    inputs[1] = 1
    labels, counts = CvUtilsOnHost.cc_2d(inputs, get_counts=True)
    assert labels.dtype == counts.dtype == torch.int32 and labels.shape == inputs.shape
    for i in range(len(inputs)):
        want_labels, want_counts = _brute_components(inputs[i, 0].numpy())
        np.testing.assert_array_equal(labels[i, 0].numpy(), want_labels)
        np.testing.assert_array_equal(counts[i, 0].numpy(), want_counts)
    assert not CvUtilsOnHost.cc_2d(inputs, get_counts=False)[1].any()


def test_cc_2d_refuses_what_the_kernel_refuses():
    with pytest.raises(ValueError, match="even"):
        CvUtilsOnHost.cc_2d(torch.zeros(1, 1, 3, 4, dtype=torch.uint8), True)
    with pytest.raises(ValueError, match="uint8"):
        CvUtilsOnHost.cc_2d(torch.zeros(1, 1, 4, 4), True)
    with pytest.raises(ValueError, match="shape"):
        CvUtilsOnHost.cc_2d(torch.zeros(1, 4, 4, dtype=torch.uint8), True)


@pytest.mark.parametrize("n", [0, 1, 2, 7, 40])
def test_generic_nms_matches_brute_force(n):
    g = torch.Generator().manual_seed(n)
    iou = torch.round(torch.rand(n, n, generator=g) * 4) / 4  # values exactly at the threshold
    iou = torch.maximum(iou, iou.T)
    scores = torch.round(torch.rand(n, generator=g) * 3) / 3  # ties: lower index first
    order = sorted(range(n), key=lambda i: (-float(scores[i]), i))
    kept = []
    for i in order:
        if all(float(iou[k, i]) <= 0.5 for k in kept):
            kept.append(i)
    got = CvUtilsOnHost.generic_nms(iou, scores, 0.5, use_iou_matrix=True)
    assert got.dtype == torch.long and got.tolist() == kept
    with pytest.raises(ValueError, match="use_iou_matrix"):
        CvUtilsOnHost.generic_nms(torch.zeros(n, 4), scores, 0.5, use_iou_matrix=False)


def test_masks_to_boxes_inclusive():
    masks = torch.zeros(3, 6, 8, dtype=torch.bool)
    masks[0, 1:4, 2:7] = True
    masks[1, 5, 0] = True
    boxes = masks_to_boxes_inclusive(masks)
    assert boxes.tolist() == [[2, 1, 6, 3], [0, 5, 0, 5], [0, 0, 0, 0]]  # last pixel's column and row; empty: 0
    assert masks_to_boxes_inclusive(masks[:0]).shape == (0, 4)


@pytest.mark.parametrize("density, max_area", [(0.2, 4), (0.5, 8), (0.5, 64), (0.8, 16), (1.0, 8)])
def test_hole_filling_equals_transformers(density, max_area):
    g = torch.Generator().manual_seed(int(density * 10) + max_area)
    logits = torch.rand(5, 1, 48, 40, generator=g) - (1 - density)
    logits[1] = torch.where(logits[1] > 0, logits[1], -logits[1])  # one mask all foreground
    logits[2, 0, 10:30, 5:35] = torch.rand(20, 30, generator=g) + 0.01  # a blob with noise around it
    with cv_utils_on_host():
        filled = reference_module.fill_holes_in_mask_scores(logits, max_area=max_area)
    assert torch.equal(filled, fill_holes(logits, max_area))


def test_transformers_postprocessing_runs_with_the_port_and_equals_the_engines():
    without_port = reference_module.cv_utils_kernel
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(6, 1, 32, 32, generator=g)  # noise: many small holes and sprinkles
    with cv_utils_on_host():
        filled = reference_module.fill_holes_in_mask_scores(logits, max_area=8)
    assert not torch.equal(filled, logits)  # not skipped, as it is without the kernel
    assert torch.equal(filled, fill_holes(logits, 8))
    masks = torch.rand(20, 16, 16, generator=g) > 0.3
    probs = torch.rand(20, generator=g)
    with cv_utils_on_host():
        keep = reference_module.nms_masks(probs, masks.float() * 2 - 1, prob_threshold=0.2, iou_threshold=0.4)
    valid = probs > 0.2
    assert keep.sum() < valid.sum()
    assert torch.equal(keep, valid & mask_nms(masks & valid[:, None, None], probs, 0.4))
    assert reference_module.cv_utils_kernel is without_port  # put back after the block
