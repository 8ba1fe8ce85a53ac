"""Torch references of the kernels against brute force."""

import numpy as np
import pytest
import torch

from sam3_ros.kernels.torch_ops import mask_iou, mask_nms, nms_from_iou


def _brute_iou(a, b):
    out = np.zeros((len(a), len(b)), np.float32)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            union = np.logical_or(x, y).sum()
            out[i, j] = np.logical_and(x, y).sum() / union if union else 0.0
    return out


@pytest.mark.parametrize("n, m, h, w", [(0, 3, 5, 5), (1, 1, 1, 1), (4, 6, 7, 9), (5, 5, 16, 3)])
def test_mask_iou_matches_brute_force(n, m, h, w):
    g = torch.Generator().manual_seed(n * 31 + m)
    a, b = torch.rand(n, h, w, generator=g) > 0.5, torch.rand(m, h, w, generator=g) > 0.5
    if n:
        a[0] = False  # an empty mask
    if m > 1:
        b[1] = True  # a full mask
    np.testing.assert_allclose(mask_iou(a, b).numpy(), _brute_iou(a.numpy(), b.numpy()), atol=1e-6)


def _brute_nms(masks, scores, thr):
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    kept = []
    for i in order:
        if all(_brute_iou(masks[i : i + 1], masks[k : k + 1])[0, 0] <= thr for k in kept):
            kept.append(i)
    return np.isin(np.arange(len(scores)), kept)


@pytest.mark.parametrize("seed", range(5))
def test_mask_nms_matches_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(12, 20, 20, dtype=torch.bool)
    for i in range(12):  # overlapping boxes so suppression happens
        x, y = torch.randint(0, 12, (2,), generator=g).tolist()
        masks[i, y : y + 8, x : x + 8] = True
    scores = torch.rand(12, generator=g)
    scores[3] = scores[5]  # a tie
    keep = mask_nms(masks, scores, 0.3)
    assert np.array_equal(keep.numpy(), _brute_nms(masks.numpy(), scores.tolist(), 0.3))


def test_mask_nms_empty_and_size_mismatch():
    assert mask_nms(torch.zeros(0, 4, 4, dtype=torch.bool), torch.zeros(0), 0.5).shape == (0,)
    with pytest.raises(ValueError, match="sizes differ"):
        mask_iou(torch.zeros(1, 4, 4, dtype=torch.bool), torch.zeros(1, 4, 5, dtype=torch.bool))


@pytest.mark.parametrize("case", ["all_empty", "all_full", "one_mask", "odd_size"])
def test_mask_iou_edge_cases(case):
    g = torch.Generator().manual_seed(7)
    a = {
        "all_empty": torch.zeros(3, 4, 6, dtype=torch.bool),
        "all_full": torch.ones(3, 4, 6, dtype=torch.bool),
        "one_mask": torch.rand(1, 5, 3, generator=g) > 0.5,
        "odd_size": torch.rand(7, 13, 1, generator=g) > 0.3,
    }[case]
    b = torch.rand(5, *a.shape[1:], generator=g) > 0.5
    np.testing.assert_allclose(mask_iou(a, b).numpy(), _brute_iou(a.numpy(), b.numpy()), atol=1e-6)
    np.testing.assert_allclose(mask_iou(a, a).numpy(), _brute_iou(a.numpy(), a.numpy()), atol=1e-6)


def test_mask_nms_edge_cases():
    empty = torch.zeros(4, 5, 5, dtype=torch.bool)
    assert mask_nms(empty, torch.rand(4), 0.5).all()  # empty masks overlap nothing
    full = torch.ones(4, 5, 5, dtype=torch.bool)
    scores = torch.tensor([0.2, 0.9, 0.9, 0.1])
    assert mask_nms(full, scores, 0.5).tolist() == [False, True, False, False]  # tie: lower index wins
    assert mask_nms(full[:1], scores[:1], 0.5).tolist() == [True]
    assert mask_nms(full, torch.full((4,), 0.5), 0.5).tolist() == [True, False, False, False]


def _brute_nms_from_iou(iou, scores, thr):
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    kept = []
    for i in order:
        if all(iou[k][i] <= thr for k in kept):
            kept.append(i)
    return [i in kept for i in range(len(scores))]


@pytest.mark.parametrize("n", [0, 1, 2, 9, 70])
def test_nms_from_iou_matches_brute_force(n):
    g = torch.Generator().manual_seed(n)
    iou = torch.rand(n, n, generator=g)
    iou = torch.round(iou * 4) / 4  # many values exactly at the threshold
    scores = torch.round(torch.rand(n, generator=g) * 5) / 5  # many ties
    keep = nms_from_iou(iou, scores, 0.5)
    assert keep.tolist() == _brute_nms_from_iou(iou.tolist(), scores.tolist(), 0.5)
    with pytest.raises(ValueError, match="IoU matrix"):
        nms_from_iou(torch.zeros(n, n + 1), scores, 0.5)
