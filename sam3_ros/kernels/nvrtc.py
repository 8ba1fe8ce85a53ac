"""Compile the CUDA sources in ``kernels/*.cu`` to cubins with NVRTC, cached on disk.

NVRTC needs no GPU, so this module works (and is tested) on CPU-only machines. A cubin is cached under
``$XDG_CACHE_HOME/sam3_ros/kernels`` (else ``~/.cache/sam3_ros/kernels``), keyed by the source's hash,
the target architecture, the compile options and the NVRTC version: editing a ``.cu`` file or moving to
another GPU recompiles, nothing else does.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import tempfile
from pathlib import Path

from sam3_ros.resources import share_dir

OPTIONS = ("--std=c++17", "-default-device", "--extra-device-vectorization")


class KernelsUnavailable(RuntimeError):
    """The CUDA kernels cannot be used here (no cuda-python, no NVRTC, no GPU, or a compile error)."""


def kernel_sources() -> list[Path]:
    """Every ``kernels/*.cu`` file shipped with the package, sorted by name."""
    return sorted((share_dir() / "kernels").glob("*.cu"))


def source_path(name: str) -> Path:
    """Path of ``kernels/<name>.cu``; ``ValueError`` if there is no such kernel source."""
    path = share_dir() / "kernels" / f"{name}.cu"
    if not path.is_file():
        known = ", ".join(p.stem for p in kernel_sources())
        raise ValueError(f"no kernel source {name!r}; known: {known}")
    return path


def cache_dir() -> Path:
    """Where compiled cubins are kept."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "sam3_ros" / "kernels"


def cuda_binding(name: str):
    """``cuda.bindings.<name>`` (``nvrtc``, ``driver``); ``KernelsUnavailable`` if cuda-python is missing."""
    try:
        return importlib.import_module(f"cuda.bindings.{name}")
    except ImportError as exc:  # cuda-python missing, or too old to have cuda.bindings
        raise KernelsUnavailable(
            f"cuda-python is not installed ({exc}); install it with `pip install 'sam3_ros[cuda]'`"
        ) from exc


def _check(nvrtc, result, what: str):
    err, *rest = result
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise KernelsUnavailable(f"NVRTC {what} failed: {nvrtc.nvrtcGetErrorString(err)[1].decode()}")
    return rest[0] if len(rest) == 1 else rest


def nvrtc_version() -> tuple[int, int]:
    """(major, minor) of the NVRTC library that will compile; ``KernelsUnavailable`` if there is none."""
    nvrtc = cuda_binding("nvrtc")
    try:
        major, minor = _check(nvrtc, nvrtc.nvrtcVersion(), "version query")
    except RuntimeError as exc:  # cuda-python present but libnvrtc not found
        raise KernelsUnavailable(f"NVRTC library not found: {exc}") from exc
    return int(major), int(minor)


def compile_source(source: str, name: str, arch: str) -> bytes:
    """Compile CUDA C++ ``source`` for ``arch`` (e.g. ``"sm_90"``) and return the cubin (no cache)."""
    if not (arch.startswith("sm_") and arch[3:].rstrip("a").isdigit()):
        raise ValueError(f"arch must look like 'sm_90', got {arch!r}")
    nvrtc = cuda_binding("nvrtc")
    nvrtc_version()
    prog = _check(nvrtc, nvrtc.nvrtcCreateProgram(source.encode(), f"{name}.cu".encode(), 0, [], []), "create")
    try:
        options = [f"--gpu-architecture={arch}".encode(), *(o.encode() for o in OPTIONS)]
        (err,) = nvrtc.nvrtcCompileProgram(prog, len(options), options)
        if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            size = _check(nvrtc, nvrtc.nvrtcGetProgramLogSize(prog), "log size")
            log = b" " * size
            _check(nvrtc, (nvrtc.nvrtcGetProgramLog(prog, log)[0], None), "log")
            raise KernelsUnavailable(f"NVRTC could not compile {name}.cu for {arch}:\n{log.decode(errors='replace')}")
        size = _check(nvrtc, nvrtc.nvrtcGetCUBINSize(prog), "cubin size")
        cubin = b" " * size
        _check(nvrtc, (nvrtc.nvrtcGetCUBIN(prog, cubin)[0], None), "cubin")
        return cubin
    finally:
        nvrtc.nvrtcDestroyProgram(prog)


def cubin(name: str, arch: str) -> bytes:
    """The cubin of ``kernels/<name>.cu`` for ``arch``, from the disk cache or freshly compiled."""
    source = source_path(name).read_text()
    major, minor = nvrtc_version()
    key = hashlib.sha256("\0".join([source, arch, *OPTIONS, f"nvrtc{major}.{minor}"]).encode()).hexdigest()[:20]
    path = cache_dir() / f"{name}-{arch}-{key}.cubin"
    if path.is_file():
        return path.read_bytes()
    data = compile_source(source, name, arch)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so concurrent processes never read a half-written cubin.
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{name}-", delete=False) as tmp:
        tmp.write(data)
    os.replace(tmp.name, path)
    return data
