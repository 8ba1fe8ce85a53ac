"""ONNX export of the vision encoder (fixed input shape) and its check against torch with onnxruntime."""

from __future__ import annotations

import copy
import io
import warnings
from pathlib import Path

import torch

from .vision import FeatureLayout, VisionEncoder, reference_features, relative_error

OPSET = 17  # LayerNormalization is a single op from 17 on (TensorRT maps it to one normalization layer)


def export_encoder(model, image_size: int, out: Path | str | io.BytesIO) -> FeatureLayout:
    """Write the ``VisionEncoder`` of ``model`` as ONNX (fp32, input ``pixels`` (1, 3, S, S)) to ``out``.

    The export runs on an fp32 copy when ``model`` is in another dtype (TensorRT picks its own precision).
    Returns the layout of the outputs.
    """
    encoder = VisionEncoder(model).eval()
    if next(model.parameters()).dtype != torch.float32:
        encoder = copy.deepcopy(encoder).float()
    device = next(model.parameters()).device
    example = torch.zeros(1, 3, image_size, image_size, device=device)
    _, layout = reference_features(model, example.to(next(model.parameters()).dtype))
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of the dynamo one, which needs onnxscript (not a
        # dependency); tracer warnings are about shape arithmetic that is constant at a fixed input size
        warnings.simplefilter("ignore")
        torch.onnx.export(
            encoder,
            (example,),
            out,
            dynamo=False,
            input_names=["pixels"],
            output_names=layout.output_names(),
            opset_version=OPSET,
        )
    return layout


def relative_errors(model, onnx_model: Path | str | bytes, image_size: int, seed: int = 0) -> dict[str, float]:
    """Per output, max |onnxruntime - torch| / max |torch| on one seeded random input, both in fp32 on CPU.

    ``model`` must be fp32 on CPU (the reference), ``onnx_model`` a path or the serialized model.
    """
    import onnxruntime as ort

    generator = torch.Generator().manual_seed(seed)
    pixels = torch.rand(1, 3, image_size, image_size, generator=generator) * 2 - 1
    encoder = VisionEncoder(model).eval()
    with torch.inference_mode():
        expected = [t.numpy() for t in encoder(pixels)]
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    source = onnx_model if isinstance(onnx_model, bytes) else str(onnx_model)
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    got = session.run(names, {"pixels": pixels.numpy()})
    return {name: relative_error(torch.from_numpy(g), torch.from_numpy(e)) for name, g, e in zip(names, got, expected)}
