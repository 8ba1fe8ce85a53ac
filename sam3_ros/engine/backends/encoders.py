"""Vision encoder backends: pixels (1, 3, S, S) -> ``VisionFeatures``, chosen by ``Settings.backend``.

- ``eager``: the transformers modules as they are.
- ``compile``: ``torch.compile``; on CUDA ``mode="max-autotune"`` (Triton GEMM autotuning and CUDA graphs
  for the one fixed input shape), warmed up at construction so the first frame does not pay for it.
  On CPU the default inductor mode (C++ codegen), also warmed up.
- ``tensorrt``: a TensorRT engine from the ONNX export, cached on disk (``EngineCache``) and rebuilt
  when the cached one was built for another GPU, TensorRT, precision, shape or weights.
- ``auto``: tensorrt when TensorRT is installed and an engine builds, else compile on CUDA, else eager.
"""

from __future__ import annotations

import io
import logging
import threading
import time

import torch

from .engine_cache import EngineCache, EngineKey, weights_fingerprint
from .vision import FeatureLayout, VisionEncoder, VisionFeatures, reference_features, relative_error

log = logging.getLogger(__name__)

BACKENDS = ("auto", "tensorrt", "compile", "eager")
_SHARED = "_sam3_ros_compiled_encoders"  # attribute of a model: its compiled encoders, shared by its engines


class BackendUnavailable(RuntimeError):
    """The requested encoder backend cannot run here (the message names it and why)."""


class EagerEncoder:
    """The plain modules; also the base of the other backends (layout, positions, the call)."""

    name = "eager"

    def __init__(self, model, device: torch.device, dtype: torch.dtype, image_size: int):
        self.device, self.dtype, self.image_size = torch.device(device), dtype, image_size
        self.module = VisionEncoder(model).eval()
        self.layout: FeatureLayout = reference_features(model, self.example())[1]

    def example(self) -> torch.Tensor:
        """A zero input of the backend's fixed shape."""
        return torch.zeros(1, 3, self.image_size, self.image_size, device=self.device, dtype=self.dtype)

    def run(self, pixels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The flat encoder outputs (``VisionEncoder`` order)."""
        return self.module(pixels)

    @torch.inference_mode()
    def __call__(self, pixels: torch.Tensor) -> VisionFeatures:
        """Features of one frame's pixels (1, 3, S, S) in the backend's dtype, on its device."""
        if tuple(pixels.shape) != (1, 3, self.image_size, self.image_size):
            raise ValueError(
                f"encoder backend {self.name!r} expects pixels (1, 3, {self.image_size}, "
                f"{self.image_size}), got {tuple(pixels.shape)}"
            )
        return self.layout.unflatten(self.run(pixels))


class CompiledEncoder(EagerEncoder):
    """``torch.compile`` of the encoder for its one input shape, warmed up at construction.

    One instance serves every engine on the same model, device, dtype and size (``make_encoder``); calls
    are serialized, since CUDA-graph replays of one graph must not interleave.
    """

    name = "compile"

    def __init__(self, model, device: torch.device, dtype: torch.dtype, image_size: int, warmup: int = 3):
        super().__init__(model, device, dtype, image_size)
        self.cuda = self.device.type == "cuda"
        mode = "max-autotune" if self.cuda else "default"  # max-autotune on CPU only adds tuning time
        self._compiled = torch.compile(self.module, mode=mode, dynamic=False)
        self._lock = threading.Lock()
        start = time.perf_counter()
        with torch.inference_mode():
            for _ in range(warmup if self.cuda else 1):  # CUDA graphs record on the second or third call
                self.run(self.example())
        log.info(
            "encoder backend compile (%s, %s): warmed up in %.1f s", mode, self.device, time.perf_counter() - start
        )

    def run(self, pixels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with self._lock:
            if not self.cuda:
                return self._compiled(pixels)
            torch.compiler.cudagraph_mark_step_begin()
            # CUDA-graph outputs live in the graph's memory pool and are overwritten by the next replay; the
            # engine keeps the last frame's features (and encodes memory from them on a side stream)
            return tuple(t.clone() for t in self._compiled(pixels))


PRECISION_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
# max error of a TensorRT engine's features relative to each feature's scale, against torch fp32 (build-engine)
# or against torch in the engine's dtype (an engine built at start-up); beyond it the engine is not used
ENGINE_TOLERANCE = {"fp32": 1e-3, "bf16": 5e-2, "fp16": 5e-2}


def engine_key(model_name: str, device: torch.device, precision: str, image_size: int) -> EngineKey:
    """The cache key of the encoder engine for this model, GPU, installed TensorRT, precision and size."""
    from .tensorrt_runtime import device_identity, tensorrt_version

    version = tensorrt_version()
    if version is None:
        raise BackendUnavailable(
            "backend 'tensorrt': TensorRT (its Python package with libraries) is not "
            "installed here; use backend: compile or eager"
        )
    if device.type != "cuda":
        raise BackendUnavailable(f"backend 'tensorrt' needs a CUDA device, the engine runs on {device}")
    gpu, capability = device_identity(device)
    return EngineKey(
        model=model_name,
        weights=weights_fingerprint(model_name),
        gpu_name=gpu,
        compute_capability=capability,
        tensorrt_version=version,
        precision=precision,
        input_shape=(1, 3, image_size, image_size),
    )


def feature_errors(run, reference, pixels: torch.Tensor, names: list[str]) -> dict[str, float]:
    """Per output name, ``relative_error`` of ``run(pixels)`` against ``reference(pixels)`` (flat outputs)."""
    with torch.inference_mode():
        got, expected = run(pixels), reference(pixels.to(next(iter(reference.parameters())).dtype))
    return {name: relative_error(g, e) for name, g, e in zip(names, got, expected)}


class TensorRTEncoder(EagerEncoder):
    """A TensorRT engine of the encoder, from the cache, or built (minutes) and checked when missing or stale."""

    name = "tensorrt"

    def __init__(
        self,
        model,
        device: torch.device,
        dtype: torch.dtype,
        image_size: int,
        model_name: str,
        cache: EngineCache | None = None,
    ):
        from .onnx_export import export_encoder
        from .tensorrt_runtime import TensorRTRunner, build_serialized_engine

        precision = PRECISION_NAMES[dtype]
        key = engine_key(model_name, torch.device(device), precision, image_size)
        super().__init__(model, device, dtype, image_size)
        cache = cache or EngineCache()
        found = cache.lookup(key)
        if not found.usable:
            log.warning("TensorRT engine %s: %s; building it (this takes minutes)", found.path.name, found.reason)
            buffer = io.BytesIO()
            export_encoder(model, image_size, buffer)
            serialized = build_serialized_engine(buffer.getvalue(), precision)
            self._engine = TensorRTRunner(serialized, self.device, self.layout.output_names())
            pixels = torch.rand(self.example().shape, generator=torch.Generator().manual_seed(0)).to(self.device)
            errors = feature_errors(self._engine, self.module, pixels * 2 - 1, self.layout.output_names())
            worst = max(errors.values())
            if not worst <= ENGINE_TOLERANCE[precision]:  # NaN fails too
                raise RuntimeError(
                    f"TensorRT {precision} engine's features differ from torch by {worst:.3g} "
                    f"(relative; limit {ENGINE_TOLERANCE[precision]}): not used"
                )
            cache.store(key, serialized)
        else:
            self._engine = TensorRTRunner(found.path.read_bytes(), self.device, self.layout.output_names())

    def run(self, pixels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self._engine(pixels)


def make_encoder(
    backend: str,
    model,
    device: torch.device,
    dtype: torch.dtype,
    image_size: int,
    model_name: str = "",
    cache: EngineCache | None = None,
) -> EagerEncoder:
    """The encoder backend named ``backend`` (see the module doc). ``BackendUnavailable`` when a named
    backend cannot run here; ``auto`` falls back (with a log line saying why) instead."""
    device = torch.device(device)
    if backend == "eager":
        return EagerEncoder(model, device, dtype, image_size)
    if backend == "compile":
        return _shared_compiled(model, device, dtype, image_size)
    if backend == "tensorrt":
        return TensorRTEncoder(model, device, dtype, image_size, model_name, cache)
    if backend != "auto":
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if device.type != "cuda":
        return EagerEncoder(model, device, dtype, image_size)
    try:
        return TensorRTEncoder(model, device, dtype, image_size, model_name, cache)
    except BackendUnavailable as exc:
        log.info("encoder backend auto: %s; using compile", exc)
    except Exception as exc:  # the engine failed to build or load: still serve, with the next best backend
        log.warning("encoder backend auto: TensorRT failed (%s: %s); using compile", type(exc).__name__, exc)
    return _shared_compiled(model, device, dtype, image_size)


def _shared_compiled(model, device: torch.device, dtype: torch.dtype, image_size: int) -> CompiledEncoder:
    # one compilation per model, device, dtype and size: engines sharing weights (one per camera) share it
    per_model = model.__dict__.setdefault(_SHARED, {})
    key = (str(device), dtype, image_size)
    if key not in per_model:
        per_model[key] = CompiledEncoder(model, device, dtype, image_size)
    return per_model[key]
