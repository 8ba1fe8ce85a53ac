"""TensorRT for the vision encoder: build an engine from the ONNX export, run it on torch tensors.

TensorRT's libraries cannot be installed on our development and CI machines, so this module is
type-checked against ``tensorrt-stubs`` (mypy, in the tests) and run only on a GPU machine that has
TensorRT. It imports ``tensorrt`` inside functions, so importing the module never needs it.

Precision: the engine may run in bf16 or fp16, but attention (the two activation x activation matrix
products and the softmax between them) and normalization layers are pinned to fp32: fp16 fused
attention is known to break SAM 3's ViT, so TensorRT must not pick a reduced-precision fused kernel for
them. ``build-engine`` then compares the engine's features with fp32 torch before caching it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    import tensorrt as trt

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16")


class TensorRTUnavailable(RuntimeError):
    """TensorRT (its Python API with the libraries) cannot be imported here."""


def tensorrt_version() -> str | None:
    """The installed TensorRT version, or None when it cannot be used (missing, or only its type stubs)."""
    try:
        import tensorrt as trt
    except Exception:  # ImportError, or the vendor's download-stub raising at import
        return None
    if not hasattr(trt, "Builder"):  # tensorrt-stubs alone leaves an importable, empty namespace package
        return None
    return str(trt.__version__)


def _require_tensorrt() -> None:
    if tensorrt_version() is None:
        raise TensorRTUnavailable(
            "backend 'tensorrt': the TensorRT Python package (with its libraries) is not installed; "
            "install tensorrt from NVIDIA or use backend: compile / eager"
        )


def build_serialized_engine(onnx_bytes: bytes, precision: str, workspace_bytes: int = 8 << 30) -> bytes:
    """A serialized TensorRT engine for the ONNX model ``onnx_bytes`` (fixed input shape) at ``precision``.

    ``ValueError`` for an unknown precision or an ONNX model TensorRT cannot parse (with its errors).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    _require_tensorrt()
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ValueError(f"TensorRT cannot parse the ONNX model: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    reduced = trt.DataType.BF16 if precision == "bf16" else trt.DataType.HALF
    if precision == "fp32":
        config.clear_flag(trt.BuilderFlag.TF32)  # TF32 (on by default) would round matmul inputs to 10 bits
    else:
        for i in range(network.num_inputs):
            network.get_input(i).dtype = reduced
        for i in range(network.num_outputs):
            network.get_output(i).dtype = reduced  # features come out in the engine's dtype, no extra cast
        config.set_flag(trt.BuilderFlag.BF16 if precision == "bf16" else trt.BuilderFlag.FP16)
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        pinned = pin_attention_to_fp32(network)
        log.info("TensorRT %s build: %d attention/normalization layers pinned to fp32", precision, pinned)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT failed to build the engine (see its log above)")
    return bytes(serialized)


def pin_attention_to_fp32(network: trt.INetworkDefinition) -> int:
    """Force fp32 compute and outputs on softmax, normalization and activation x activation matrix
    products (attention scores and their weighted sum); weight matmuls and convolutions stay reduced.
    Returns how many layers were pinned."""
    import tensorrt as trt

    layers = [network.get_layer(i) for i in range(network.num_layers)]
    constants = {layer.get_output(0).name for layer in layers if layer.type == trt.LayerType.CONSTANT}
    pinned = 0
    for layer in layers:
        if layer.type == trt.LayerType.MATRIX_MULTIPLY:
            inputs = [layer.get_input(i) for i in range(layer.num_inputs)]
            if any(t is None or t.name in constants for t in inputs):
                continue  # a weight matmul
        elif layer.type not in (trt.LayerType.SOFTMAX, trt.LayerType.NORMALIZATION):
            continue
        layer.precision = trt.DataType.FLOAT
        for i in range(layer.num_outputs):
            layer.set_output_type(i, trt.DataType.FLOAT)
        pinned += 1
    return pinned


def device_identity(device: torch.device) -> tuple[str, tuple[int, int]]:
    """GPU name and compute capability of ``device`` (a CUDA device)."""
    props = torch.cuda.get_device_properties(device)
    return str(props.name), (int(props.major), int(props.minor))


def _shape(dims: trt.Dims) -> tuple[int, ...]:
    """A TensorRT ``Dims`` as a tuple."""
    return tuple(int(dims[i]) for i in range(len(dims)))


_TORCH_DTYPES = {
    "FLOAT": torch.float32,
    "HALF": torch.float16,
    "BF16": torch.bfloat16,
    "INT32": torch.int32,
    "INT64": torch.int64,
    "BOOL": torch.bool,
    "INT8": torch.int8,
    "UINT8": torch.uint8,
}


class TensorRTRunner:
    """Runs a deserialized TensorRT engine on the current torch CUDA stream.

    The engine has one input (the pixels) and the ``VisionEncoder`` outputs, in ``output_names`` order.
    Each call allocates fresh outputs from torch's caching allocator: the engine keeps the previous
    frame's features (and the memory encoder may still read them on its own stream), so outputs are
    never overwritten in place.
    """

    def __init__(self, serialized: bytes, device: torch.device, output_names: list[str]):
        _require_tensorrt()
        import tensorrt as trt

        self.device = device
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        with torch.cuda.device(device):
            engine = self._runtime.deserialize_cuda_engine(serialized)
            if engine is None:
                raise RuntimeError(
                    "TensorRT could not deserialize the engine (built by another TensorRT version or for another GPU?)"
                )
            self._engine = engine
            self._context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if len(inputs) != 1:
            raise ValueError(f"expected an engine with one input, got {inputs}")
        missing = sorted(set(output_names) - set(names))
        if missing:
            raise ValueError(f"engine lacks outputs {missing} (exported from another encoder layout?)")
        self.input_name = inputs[0]
        self.input_shape = _shape(engine.get_tensor_shape(self.input_name))
        self.input_dtype = _TORCH_DTYPES[engine.get_tensor_dtype(self.input_name).name]
        self.outputs = [
            (n, _shape(engine.get_tensor_shape(n)), _TORCH_DTYPES[engine.get_tensor_dtype(n).name])
            for n in output_names
        ]

    def __call__(self, pixels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Encoder outputs for ``pixels`` (shape of the engine's input), enqueued on the current stream."""
        if tuple(pixels.shape) != self.input_shape:
            raise ValueError(f"TensorRT engine expects input {self.input_shape}, got {tuple(pixels.shape)}")
        pixels = pixels.to(self.input_dtype).contiguous()
        outputs = tuple(torch.empty(shape, dtype=dtype, device=self.device) for _, shape, dtype in self.outputs)
        self._context.set_tensor_address(self.input_name, pixels.data_ptr())
        for (name, _, _), out in zip(self.outputs, outputs):
            self._context.set_tensor_address(name, out.data_ptr())
        if not self._context.execute_async_v3(torch.cuda.current_stream(self.device).cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed (see its log)")
        return outputs
