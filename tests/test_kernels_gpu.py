"""CUDA kernels == references on fresh random inputs (GPU only).

Every ``torch.empty`` on the GPU is poisoned (bytes 0xA5) during these tests, so an output element a
kernel forgets to write shows up as a mismatch. Inputs are drawn from a fresh seed, printed on failure.
"""

import os

import numpy as np
import pytest
import torch
from test_kernels_merge import CONFIGS, random_merge_case

from sam3_ros.codec import rle
from sam3_ros.kernels import cuda_ops, ops, reference

pytestmark = pytest.mark.gpu
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def poisoned_empty(monkeypatch):
    real_empty = torch.empty

    def empty(*args, **kwargs):
        tensor = real_empty(*args, **kwargs)
        if tensor.is_cuda and tensor.numel():
            tensor.view(-1).view(torch.uint8).fill_(0xA5)
        return tensor

    monkeypatch.setattr(torch, "empty", empty)


@pytest.fixture
def gen():
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"seed {seed}")  # shown by pytest when the test fails
    return torch.Generator().manual_seed(seed)


def _masks(gen, n, h, w, kind="mixed"):
    """Blobs, noise, empty and full masks (host, bool)."""
    if kind == "noise":
        return torch.rand(n, h, w, generator=gen) > 0.5
    ys, xs = torch.arange(h)[:, None], torch.arange(w)[None, :]
    out = torch.zeros(n, h, w, dtype=torch.bool)
    for i in range(n):
        cy, cx = float(torch.rand(1, generator=gen)) * h, float(torch.rand(1, generator=gen)) * w
        ry, rx = 1 + float(torch.rand(1, generator=gen)) * h / 3, 1 + float(torch.rand(1, generator=gen)) * w / 3
        out[i] = ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 <= 1
    if kind == "mixed" and n >= 4:
        out[0] = False
        out[1] = True
        out[2] = torch.rand(h, w, generator=gen) > 0.5
        out[3] = out[4 % n]  # a duplicate: IoU exactly 1
    return out


def _same(kernel, ref):
    kernel = kernel.cpu()
    if kernel.dtype == torch.bool:  # compare bytes: a poisoned (unwritten) bool is neither 0 nor 1
        return torch.equal(kernel.view(torch.uint8), ref.cpu().view(torch.uint8))
    return kernel.dtype == ref.dtype and torch.equal(kernel, ref.cpu())


@pytest.mark.parametrize("n, m, h, w", [(0, 3, 8, 8), (1, 1, 1, 1), (5, 7, 13, 17), (17, 33, 31, 29),
                                        (64, 200, 288, 288), (200, 200, 288, 288)])
def test_mask_iou(gen, n, m, h, w):
    a, b = _masks(gen, n, h, w), _masks(gen, m, h, w)
    expected = reference.mask_iou(a, b)
    assert _same(cuda_ops.mask_iou(a.to(CUDA), b.to(CUDA)), expected)
    a_gpu = a.to(CUDA)
    assert _same(cuda_ops.mask_iou(a_gpu, a_gpu), reference.mask_iou(a, a))


@pytest.mark.parametrize("n, h, w", [(1, 5, 5), (2, 7, 3), (50, 64, 64), (200, 288, 288), (700, 24, 24)])
def test_mask_nms(gen, n, h, w):
    masks = _masks(gen, n, h, w)
    scores = torch.round(torch.rand(n, generator=gen) * 8) / 8  # ties
    for threshold in (0.0, 0.1, 0.5):
        expected = reference.mask_nms(masks, scores, threshold)
        assert _same(cuda_ops.mask_nms(masks.to(CUDA), scores.to(CUDA), threshold), expected)


@pytest.mark.parametrize("n", [1, 3, 64, 200, 1000])
def test_nms_from_iou(gen, n):
    iou = torch.round(torch.rand(n, n, generator=gen) * 4) / 4  # values exactly at the threshold
    scores = torch.round(torch.rand(n, generator=gen) * 5) / 5
    assert _same(cuda_ops.nms_from_iou(iou.to(CUDA), scores.to(CUDA), 0.5), reference.nms_from_iou(iou, scores, 0.5))


@pytest.mark.parametrize("n, m, prompts", [(0, 0, 1), (0, 5, 1), (7, 0, 1), (1, 1, 1), (200, 64, 1), (200, 64, 3),
                                           (1000, 300, 2)])
@pytest.mark.parametrize("config", range(len(CONFIGS)))
def test_merge_plan(gen, n, m, prompts, config):
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
    case = random_merge_case(seed, n, m, prompts)
    iou, scores, nonempty, alive, next_id, det_prompt, trk_prompt = case
    for prompt_args in ((det_prompt, trk_prompt), (None, None)):
        expected = reference.merge_plan(iou, scores, nonempty, alive, next_id, CONFIGS[config], *prompt_args)
        on_gpu = [t.to(CUDA) if t is not None else None for t in (iou, scores, nonempty, alive, next_id, *prompt_args)]
        plan = cuda_ops.merge_plan(*on_gpu[:5], CONFIGS[config], *on_gpu[5:])
        for name, got, want in zip(plan._fields, plan, expected):
            assert _same(got, want), name


@pytest.mark.parametrize("n, h, w, kind", [(1, 1, 1, "noise"), (3, 65, 7, "noise"), (2, 1, 130, "noise"),
                                           (2, 130, 1, "noise"), (6, 64, 64, "mixed"), (4, 720, 1280, "mixed"),
                                           (2, 1080, 1920, "noise")])
def test_rle_encode(gen, n, h, w, kind):
    masks = _masks(gen, n, h, w, kind)
    got = cuda_ops.rle_encode(masks.to(CUDA))
    want = rle.encode(masks.numpy())
    assert len(got) == n
    for k, (g, e) in enumerate(zip(got, want)):
        assert g.dtype == np.uint32 and np.array_equal(g, e), k


def test_kernels_run_on_the_current_stream(gen):
    a = _masks(gen, 40, 96, 96).to(CUDA)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        iou = cuda_ops.mask_iou(a, a)
        keep = cuda_ops.nms_from_iou(iou, torch.linspace(1, 0, 40, device=CUDA), 0.3)
    side.synchronize()
    assert _same(iou, reference.mask_iou(a.cpu(), a.cpu()))
    assert _same(keep, reference.nms_from_iou(iou.cpu(), torch.linspace(1, 0, 40), 0.3))


def test_ops_dispatches_to_the_kernels(gen):
    a = _masks(gen, 8, 32, 32).to(CUDA)
    assert _same(ops.mask_iou(a, a), reference.mask_iou(a.cpu(), a.cpu()))
    assert ops.kernel_status(a.device) is None
    assert [c.tolist() for c in ops.rle_encode(a.float())] == [c.tolist() for c in rle.encode(a.cpu().numpy())]
