"""CUDA kernels == references on fresh random inputs: on a GPU, and on the CPU through an emulation.

Every test runs twice: ``cuda`` (marked ``gpu``: the real kernels through NVRTC and the driver) and
``emulated`` (the same ``kernels/*.cu`` sources and the same ``cuda_ops`` code, with the kernels compiled
by g++ against ``tests/cuda_emulation/cuda_emulation.h``, a CPU emulation of the CUDA execution model;
the largest sizes are left to the GPU). Every ``torch.empty`` is poisoned (bytes 0xA5) during these
tests, so an output element a kernel forgets to write shows up as a mismatch. Inputs come from a fresh
seed, printed on failure.
"""

import ctypes
import os
import re
import shutil
import subprocess
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from test_kernels_merge import CONFIGS, random_merge_case

from sam3_ros.codec import rle
from sam3_ros.kernels import cuda_ops, nvrtc, ops, torch_ops
from sam3_ros.kernels.launch import dims, kernel_arguments

EMULATION = Path(__file__).resolve().parent / "cuda_emulation"
EMULATED_MAX_WORK = 3e6  # pixels x masks beyond which a case is left to the GPU
CUDA = torch.device("cuda")  # of the tests marked gpu (skipped without a CUDA device)


@pytest.fixture(autouse=True)
def poisoned_empty(monkeypatch):
    real_empty = torch.empty

    def empty(*args, **kwargs):
        tensor = real_empty(*args, **kwargs)
        if tensor.numel():
            tensor.view(-1).view(torch.uint8).fill_(0xA5)
        return tensor

    monkeypatch.setattr(torch, "empty", empty)


@pytest.fixture(scope="session")
def emulated_kernels(tmp_path_factory):
    """{source name: ctypes library} of every kernels/*.cu built for the CPU emulation."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    build = tmp_path_factory.mktemp("cuda_emulation")
    probe = build / "probe.cpp"
    probe.write_text(
        "#include <barrier>\n#include <atomic>\nint main() { int x = 0; std::barrier<> b(1); "
        "return std::atomic_ref<int>(x).load(); }\n"
    )
    if subprocess.run(
        ["g++", "-std=c++20", "-pthread", str(probe), "-o", str(build / "probe")], capture_output=True
    ).returncode:
        pytest.skip("g++ lacks C++20 <barrier> / std::atomic_ref")
    libs = {}
    for source in nvrtc.kernel_sources():
        text = re.sub(
            r"extern __shared__ ([\w ]+?) (\w+)\[\];",
            r"\1* \2 = reinterpret_cast<\1*>(emu::block->dynamic_shared);",
            source.read_text(),
        )
        entries = "".join(
            f'extern "C" void emu_launch_{k}(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, '
            f"unsigned bz, std::size_t shared, void** args) "
            f"{{ emu::launch({k}, gx, gy, gz, bx, by, bz, shared, args); }}\n"
            for k in re.findall(r'extern "C" __global__ void (\w+)\(', text)
        )
        cpp, lib = build / f"{source.stem}.cpp", build / f"{source.stem}.so"
        cpp.write_text(f'#include "cuda_emulation.h"\n{text}\n{entries}')
        subprocess.run(
            ["g++", "-std=c++20", "-O1", "-shared", "-fPIC", "-pthread", f"-I{EMULATION}", str(cpp), "-o", str(lib)],
            check=True,
        )
        libs[source.stem] = ctypes.CDLL(str(lib))
    return libs


def _emulated_launch(libs, source, kernel, grid, block, args, device, shared_bytes=0):
    _values, pointers = kernel_arguments(kernel, args, device)
    getattr(libs[source], f"emu_launch_{kernel}")(*dims(grid), *dims(block), ctypes.c_size_t(shared_bytes), pointers)


@pytest.fixture(params=[pytest.param("cuda", marks=pytest.mark.gpu), "emulated"])
def backend(request, monkeypatch):
    """(device, work limit) with ``cuda_ops`` running on it."""
    if request.param == "cuda":
        return torch.device("cuda"), float("inf")
    libs = request.getfixturevalue("emulated_kernels")
    monkeypatch.setattr(cuda_ops, "launch", partial(_emulated_launch, libs))
    monkeypatch.setattr(cuda_ops, "_require_cuda", lambda *tensors: tensors[0].device)
    return torch.device("cpu"), EMULATED_MAX_WORK


def _fits(backend, work):
    if work > backend[1]:
        pytest.skip("too large for the CPU emulation; runs on a GPU")
    return backend[0]


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


@pytest.mark.parametrize(
    "n, m, h, w",
    [(0, 3, 8, 8), (1, 1, 1, 1), (5, 7, 13, 17), (17, 33, 31, 29), (64, 200, 288, 288), (200, 200, 288, 288)],
)
def test_mask_iou(backend, gen, n, m, h, w):
    device = _fits(backend, (n + m) * h * w)
    a, b = _masks(gen, n, h, w), _masks(gen, m, h, w)
    assert _same(cuda_ops.mask_iou(a.to(device), b.to(device)), torch_ops.mask_iou(a, b))
    a_dev = a.to(device)
    assert _same(cuda_ops.mask_iou(a_dev, a_dev), torch_ops.mask_iou(a, a))


@pytest.mark.parametrize("n, h, w", [(1, 5, 5), (2, 7, 3), (50, 64, 64), (200, 288, 288), (700, 24, 24)])
def test_mask_nms(backend, gen, n, h, w):
    device = _fits(backend, max(n * h * w, n * n * 64))
    masks = _masks(gen, n, h, w)
    scores = torch.round(torch.rand(n, generator=gen) * 8) / 8  # ties
    for threshold in (0.0, 0.1, 0.5):
        expected = torch_ops.mask_nms(masks, scores, threshold)
        assert _same(cuda_ops.mask_nms(masks.to(device), scores.to(device), threshold), expected)


@pytest.mark.parametrize("n", [1, 3, 64, 200, 700, 1000])  # from about 630 the bit matrix is in global memory
def test_nms_from_iou(backend, gen, n):
    device = _fits(backend, n * n * 4)
    iou = torch.round(torch.rand(n, n, generator=gen) * 4) / 4  # values exactly at the threshold
    scores = torch.round(torch.rand(n, generator=gen) * 5) / 5
    assert _same(
        cuda_ops.nms_from_iou(iou.to(device), scores.to(device), 0.5), torch_ops.nms_from_iou(iou, scores, 0.5)
    )


@pytest.mark.parametrize(
    "n, m, prompts", [(0, 0, 1), (0, 5, 1), (7, 0, 1), (1, 1, 1), (200, 64, 1), (200, 64, 3), (1000, 300, 2)]
)
@pytest.mark.parametrize("config", range(len(CONFIGS)))
def test_merge_plan(backend, gen, n, m, prompts, config):
    device = _fits(backend, n * m * 8)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
    case = random_merge_case(seed, n, m, prompts)
    iou, scores, nonempty, alive, next_id, det_prompt, trk_prompt = case
    for prompt_args in ((det_prompt, trk_prompt), (None, None)):
        expected = torch_ops.merge_plan(iou, scores, nonempty, alive, next_id, CONFIGS[config], *prompt_args)
        moved = [t.to(device) if t is not None else None for t in (iou, scores, nonempty, alive, next_id, *prompt_args)]
        plan = cuda_ops.merge_plan(*moved[:5], CONFIGS[config], *moved[5:])
        for name, got, want in zip(plan._fields, plan, expected):
            assert _same(got, want), name


@pytest.mark.parametrize(
    "n, h, w, groups",
    [(0, 5, 5, 1), (1, 1, 1, 1), (3, 7, 5, 1), (9, 33, 31, 3), (40, 64, 48, 5), (64, 720, 1280, 4), (300, 96, 96, 7)],
)
def test_exclusive_masks(backend, gen, n, h, w, groups):
    device = _fits(backend, n * h * w)
    masks = _masks(gen, n, h, w)
    scores = torch.round(torch.rand(n, generator=gen) * 4) / 4  # ties, and zeros (which keep no pixel)
    group = torch.randint(-1, groups - 1, (n,), generator=gen)  # -1: the engine's click-created objects
    got = cuda_ops.exclusive_masks(masks.to(device), scores.to(device), group.to(device))
    assert _same(got, torch_ops.exclusive_masks(masks, scores, group))


@pytest.mark.parametrize(
    "n, h, w, kind",
    [
        (1, 1, 1, "noise"),
        (3, 65, 7, "noise"),
        (2, 1, 130, "noise"),
        (2, 130, 1, "noise"),
        (6, 64, 64, "mixed"),
        (4, 720, 1280, "mixed"),
        (2, 1080, 1920, "noise"),
    ],
)
def test_rle_encode(backend, gen, n, h, w, kind):
    device = _fits(backend, n * h * w)
    masks = _masks(gen, n, h, w, kind)
    got = cuda_ops.rle_encode(masks.to(device))
    want = rle.encode(masks.numpy())
    assert len(got) == n
    for k, (g, e) in enumerate(zip(got, want)):
        assert g.dtype == np.uint32 and np.array_equal(g, e), k


@pytest.mark.gpu
def test_kernels_run_on_the_current_stream(gen):
    a = _masks(gen, 40, 96, 96).to(CUDA)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        iou = cuda_ops.mask_iou(a, a)
        keep = cuda_ops.nms_from_iou(iou, torch.linspace(1, 0, 40, device=CUDA), 0.3)
    side.synchronize()
    assert _same(iou, torch_ops.mask_iou(a.cpu(), a.cpu()))
    assert _same(keep, torch_ops.nms_from_iou(iou.cpu(), torch.linspace(1, 0, 40), 0.3))


@pytest.mark.gpu
def test_ops_dispatches_to_the_kernels(gen):
    a = _masks(gen, 8, 32, 32).to(CUDA)
    assert _same(ops.mask_iou(a, a), torch_ops.mask_iou(a.cpu(), a.cpu()))
    assert ops.kernel_status(a.device) is None
    assert [c.tolist() for c in ops.rle_encode(a.float())] == [c.tolist() for c in rle.encode(a.cpu().numpy())]
