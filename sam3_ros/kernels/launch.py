"""Load compiled kernels with the CUDA driver API and launch them on the current torch stream.

Modules are loaded once per (device, source) into the device's primary context, which torch uses too;
arguments are torch tensors (passed as device pointers) or ctypes scalars/structures (passed by value).
"""

from __future__ import annotations

import ctypes
from functools import lru_cache

import torch

from sam3_ros.kernels.nvrtc import KernelsUnavailable, cubin, cuda_binding


def _check(driver, result, what: str):
    err, *rest = result
    if err != driver.CUresult.CUDA_SUCCESS:
        name = driver.cuGetErrorName(err)[1]
        raise KernelsUnavailable(f"CUDA driver {what} failed: {name.decode() if name else err}")
    return rest[0] if len(rest) == 1 else rest


def device_arch(device: torch.device) -> str:
    """NVRTC architecture name of a CUDA device, e.g. ``"sm_90"``."""
    major, minor = torch.cuda.get_device_capability(device)
    return f"sm_{major}{minor}"


@lru_cache(maxsize=None)
def _primary_context(device_index: int):
    """The device's primary context: the one torch's runtime calls use."""
    driver = cuda_binding("driver")
    torch.cuda.init()
    _check(driver, driver.cuInit(0), "init")
    device = _check(driver, driver.cuDeviceGet(device_index), "device lookup")
    return _check(driver, driver.cuDevicePrimaryCtxRetain(device), "primary context")


@lru_cache(maxsize=None)
def _module(device_index: int, name: str):
    driver = cuda_binding("driver")
    image = cubin(name, device_arch(torch.device("cuda", device_index)))
    _check(driver, driver.cuCtxSetCurrent(_primary_context(device_index)), "setting the context")
    return driver, _check(driver, driver.cuModuleLoadData(image), f"loading {name}.cu")


@lru_cache(maxsize=None)
def _function(device_index: int, source: str, kernel: str):
    driver, module = _module(device_index, source)
    return driver, _check(driver, driver.cuModuleGetFunction(module, kernel.encode()), f"finding {kernel}")


def function(device_index: int | None, source: str, kernel: str):
    """The ``CUfunction`` of ``kernel`` in ``kernels/<source>.cu``, compiled and loaded for one device
    (None: the current one); ``KernelsUnavailable`` says why it cannot be."""
    if not torch.cuda.is_available():
        raise KernelsUnavailable("no CUDA device (or torch was built without CUDA)")
    return _function(torch.cuda.current_device() if device_index is None else device_index, source, kernel)


def kernel_arguments(kernel: str, args, device: torch.device) -> tuple[list, ctypes.Array]:
    """The ctypes values of ``args`` and the array of pointers to them that a launch takes (keep both alive).

    Tensors become device pointers, Python ints C ``int``, floats C ``float``; ctypes values pass as they are.
    """
    values = []
    for arg in args:
        if isinstance(arg, torch.Tensor):
            if arg.device != device:
                raise ValueError(f"{kernel}: tensor on {arg.device}, expected {device}")
            values.append(ctypes.c_void_p(arg.data_ptr()))
        elif isinstance(arg, (ctypes._SimpleCData, ctypes.Structure)):
            values.append(arg)
        elif isinstance(arg, int):
            values.append(ctypes.c_int(arg))
        elif isinstance(arg, float):
            values.append(ctypes.c_float(arg))
        else:
            raise TypeError(f"{kernel}: cannot pass {type(arg).__name__} to a kernel")
    return values, (ctypes.c_void_p * len(values))(*(ctypes.addressof(v) for v in values))


def dims(sizes) -> tuple[int, int, int]:
    """A 1- to 3-tuple of grid or block sizes, padded with 1s."""
    return (tuple(sizes) + (1, 1))[:3]


def launch(source: str, kernel: str, grid, block, args, device: torch.device, shared_bytes: int = 0) -> None:
    """Launch ``kernel`` from ``kernels/<source>.cu`` on ``device``'s current torch stream.

    ``grid`` and ``block`` are 1- to 3-tuples; ``args`` as ``kernel_arguments`` takes them, in the kernel's
    parameter order.
    """
    driver, func = function(device.index, source, kernel)
    _values, pointers = kernel_arguments(kernel, args, device)
    stream = driver.CUstream(torch.cuda.current_stream(device).cuda_stream)
    # The calling thread may not have the context bound yet (torch binds it lazily per thread).
    _check(driver, driver.cuCtxSetCurrent(_primary_context(device.index)), "setting the context")
    _check(
        driver,
        driver.cuLaunchKernel(func, *dims(grid), *dims(block), shared_bytes, stream, ctypes.addressof(pointers), 0),
        f"launching {kernel}",
    )
