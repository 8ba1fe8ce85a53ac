"""Every kernel source compiles with NVRTC (no GPU needed); the disk cache; clear errors."""

import sys

import pytest

from sam3_ros.kernels import nvrtc
from sam3_ros.kernels.nvrtc import KernelsUnavailable

pytest.importorskip("cuda.bindings.nvrtc", reason="cuda-python is not installed")

ARCHS = ["sm_80", "sm_87", "sm_90"]  # A100, Jetson Orin, H100/H200
KERNELS = {
    "mask_iou": ["pack_masks", "pair_iou"],
    "mask_nms": ["nms_from_iou"],
    "merge_plan": ["merge_plan"],
    "exclusive_masks": ["exclusive_order", "exclusive_masks"],
    "rle": ["rle_count_edges", "rle_write_edges", "rle_edges_to_counts"],
}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))


def test_every_source_is_known():
    assert sorted(p.stem for p in nvrtc.kernel_sources()) == sorted(KERNELS)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_source_compiles(name, arch):
    cubin = nvrtc.cubin(name, arch)
    assert cubin[:4] == b"\x7fELF"
    for kernel in KERNELS[name]:  # extern "C": the symbol is the plain name
        assert kernel.encode() + b"\0" in cubin


def test_cubin_cache_is_keyed_by_source_and_arch(tmp_path, monkeypatch):
    first = nvrtc.cubin("rle", "sm_90")
    cached = list(nvrtc.cache_dir().glob("rle-sm_90-*.cubin"))
    assert len(cached) == 1 and cached[0].is_relative_to(tmp_path)
    cached[0].write_bytes(b"\x7fELF-from-cache")  # a cache hit returns the file, no recompilation
    assert nvrtc.cubin("rle", "sm_90") == b"\x7fELF-from-cache"
    assert nvrtc.cubin("rle", "sm_80") != first  # another arch: another entry
    source = tmp_path / "src"
    (source / "kernels").mkdir(parents=True)
    edited = nvrtc.source_path("rle").read_text() + "\n// edited\n"
    (source / "kernels" / "rle.cu").write_text(edited)
    monkeypatch.setattr(nvrtc, "share_dir", lambda: source)
    assert nvrtc.cubin("rle", "sm_90")[:4] == b"\x7fELF"  # edited source: recompiled, new entry
    assert len(list(nvrtc.cache_dir().glob("rle-sm_90-*.cubin"))) == 2


def test_compile_errors_are_clear():
    with pytest.raises(KernelsUnavailable, match=r"could not compile broken.cu for sm_90:[\s\S]*undefined"):
        nvrtc.compile_source('extern "C" __global__ void k() { undefined_thing(); }', "broken", "sm_90")
    with pytest.raises(ValueError, match="arch must look like"):
        nvrtc.compile_source("", "x", "90")
    with pytest.raises(ValueError, match="no kernel source 'nope'; known: exclusive_masks, mask_iou"):
        nvrtc.source_path("nope")


def test_missing_cuda_python_is_a_clear_error(monkeypatch):
    for name in ("nvrtc", "driver"):  # simulates an install without cuda-python
        monkeypatch.setitem(sys.modules, f"cuda.bindings.{name}", None)
        with pytest.raises(KernelsUnavailable, match="cuda-python is not installed"):
            nvrtc.cuda_binding(name)
    with pytest.raises(KernelsUnavailable, match="cuda-python is not installed"):
        nvrtc.cubin("rle", "sm_90")
