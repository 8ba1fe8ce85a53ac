"""The dispatch module on CPU: references, RLE round trip through pycocotools, the no-GPU error."""

import numpy as np
import pytest
import torch
from pycocotools import mask as coco

from sam3_ros.codec import rle
from sam3_ros.kernels import ops, torch_ops
from sam3_ros.kernels.nvrtc import KernelsUnavailable


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU path")
def test_no_gpu_is_a_clear_error():
    from sam3_ros.kernels.launch import function

    with pytest.raises(KernelsUnavailable, match="no CUDA device"):
        function(0, "mask_iou", "pair_iou")
    assert "no CUDA device" in ops.kernel_status(torch.device("cuda"))


def test_ops_on_cpu_tensors_are_the_references():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(5, 9, 7, generator=g) > 0.5, torch.rand(3, 9, 7, generator=g) > 0.5
    scores = torch.rand(5, generator=g)
    assert torch.equal(ops.mask_iou(a, b), torch_ops.mask_iou(a, b))
    assert torch.equal(ops.mask_nms(a, scores, 0.3), torch_ops.mask_nms(a, scores, 0.3))
    iou = torch_ops.mask_iou(a, b)
    plan = ops.merge_plan(
        iou, scores, torch.ones(3, dtype=torch.bool), torch.zeros(3, dtype=torch.long), torch.tensor([1])
    )
    assert all(
        torch.equal(x, y)
        for x, y in zip(
            plan,
            torch_ops.merge_plan(
                iou, scores, torch.ones(3, dtype=torch.bool), torch.zeros(3, dtype=torch.long), torch.tensor([1])
            ),
        )
    )
    groups = torch.tensor([0, 1, 0, 0, -1])
    assert torch.equal(ops.exclusive_masks(a, scores, groups), torch_ops.exclusive_masks(a, scores, groups))
    assert ops.kernel_status(torch.device("cpu")) == "cpu is not a CUDA device"


def _coco_decode(counts, h, w):
    return coco.decode(coco.frPyObjects({"size": [h, w], "counts": [int(c) for c in counts]}, h, w))


@pytest.mark.parametrize("shape", [(0, 5, 5), (1, 1, 1), (3, 65, 7), (2, 1, 130), (2, 130, 1)])
def test_rle_encode_round_trips_through_pycocotools(shape):
    rng = np.random.default_rng(sum(shape))
    masks = torch.from_numpy(rng.random(shape) > 0.7)
    if shape[0] > 1:
        masks[0] = True  # all full: starts with an empty background run
        masks[1] = False
    encoded = ops.rle_encode(masks)
    assert len(encoded) == shape[0]
    for mask, counts in zip(masks.numpy(), encoded):
        assert counts.dtype == np.uint32
        assert np.array_equal(_coco_decode(counts, *mask.shape), mask)
    assert [c.tolist() for c in encoded] == [c.tolist() for c in rle.encode(masks.numpy())]
    with pytest.raises(ValueError, match=r"must be \(N, H, W\)"):
        ops.rle_encode(masks.view(-1))
