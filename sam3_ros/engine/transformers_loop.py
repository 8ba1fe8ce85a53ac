"""The transformers streaming loop (``Sam3VideoModel`` + ``Sam3VideoInferenceSession``) on our settings.

Used by the parity tests and ``sam3-ros bench engine`` to run the reference on the same weights and
frames as the engine. transformers computes its NMS and hole filling with two functions of the hub
kernel ``kernels-community/cv-utils`` (``generic_nms``, ``cc_2d``), which it downloads at run time; without
it (offline, or on a CPU) it silently skips both steps. ``CvUtilsOnHost`` computes those two functions on
the host, written from that kernel's CUDA source, and ``ReferenceLoop`` plugs it in where transformers
looks for the kernel, so the reference runs its own NMS and hole filling.
"""

from __future__ import annotations

import contextlib
import importlib
import time

import numpy as np
import torch
from transformers.models.sam3_video import modeling_sam3_video as reference_module

from ..settings import Settings
from .loading import LoadedModel


class CvUtilsOnHost:
    """The functions transformers calls on the ``kernels-community/cv-utils`` hub kernel, on the host.

    Same arguments and results as the kernel's (inputs on any device are copied to the host, results come
    back to the input's device). Written from the kernel's CUDA source: ``cc_2d`` is its block-based
    union-find labelling (8-connectivity), ``generic_nms`` its greedy suppression over a sorted IoU matrix.
    """

    @staticmethod
    def cc_2d(inputs: torch.Tensor, get_counts: bool) -> list[torch.Tensor]:
        """Connected components (8-connected) of each image of an (N, 1, H, W) uint8 batch, H and W even.

        Returns ``[labels, counts]``, both (N, 1, H, W) int32. ``labels``: 0 off the mask, else 1 + the
        smallest index ``row * W + col`` of a 2x2 block origin (even row, even column) that the component
        touches: the kernel links each block to the lowest-indexed block of its component. ``counts``: at
        each pixel of the mask its component's area, 0 elsewhere (all 0 without ``get_counts``).
        """
        import cv2

        if inputs.dim() != 4 or inputs.shape[1] != 1:
            raise ValueError(f"inputs must be [N, 1, H, W] shape, got {tuple(inputs.shape)}")
        if inputs.dtype != torch.uint8:
            raise ValueError(f"inputs must be a uint8 type, got {inputs.dtype}")
        n, _, h, w = inputs.shape
        if h % 2 or w % 2:
            raise ValueError(f"height and width must be even numbers, got {h}x{w}")
        images = inputs[:, 0].cpu().numpy()
        labels = np.zeros((n, 1, h, w), np.int32)
        counts = np.zeros((n, 1, h, w), np.int32)
        rows, cols = np.mgrid[:h, :w]
        block_origin = ((rows // 2) * 2 * w + (cols // 2) * 2).ravel()
        for i, image in enumerate(images):
            found, component, stats, _ = cv2.connectedComponentsWithStats(
                (image != 0).astype(np.uint8), connectivity=8, ltype=cv2.CV_32S
            )
            root = np.full(found, h * w, np.int64)
            np.minimum.at(root, component.ravel(), block_origin)
            root[0] = -1  # OpenCV's label 0 is the background: kernel label 0
            labels[i, 0] = (root + 1)[component]
            if get_counts:
                area = stats[:, cv2.CC_STAT_AREA].copy()
                area[0] = 0
                counts[i, 0] = area[component]
        return [torch.from_numpy(labels).to(inputs.device), torch.from_numpy(counts).to(inputs.device)]

    @staticmethod
    def generic_nms(
        dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float, use_iou_matrix: bool
    ) -> torch.Tensor:
        """Greedy NMS over an (N, N) IoU matrix ``dets``: candidates in stable descending score order, each
        kept unless an earlier kept one has IoU > ``iou_threshold`` (compared in double precision) with it.
        Returns the kept indices (int64) in that order. Only the IoU-matrix form is written (transformers
        calls no other)."""
        if not use_iou_matrix:
            raise ValueError("only use_iou_matrix=True is available on the host (the form transformers calls)")
        if dets.dim() != 2 or scores.dim() != 1 or dets.shape[0] != scores.shape[0]:
            raise ValueError(f"need (N, N) IoUs and (N,) scores, got {tuple(dets.shape)} and {tuple(scores.shape)}")
        if dets.numel() == 0:
            return torch.zeros(0, dtype=torch.long, device=dets.device)
        if dets.shape[0] != dets.shape[1]:
            raise ValueError(f"when use_iou_matrix=True, first argument must be [N,N], got {tuple(dets.shape)}")
        order = torch.sort(scores.cpu(), descending=True, stable=True).indices
        over = (dets.cpu()[order][:, order].double() > iou_threshold).numpy()
        removed = np.zeros(len(order), bool)
        kept = []
        for i in range(len(order)):
            if not removed[i]:
                kept.append(i)
                removed[i + 1 :] |= over[i, i + 1 :]
        return order[kept].to(dets.device)


CV_UTILS_ON_HOST = CvUtilsOnHost()


@contextlib.contextmanager
def cv_utils_on_host():
    """Inside the block transformers' SAM 3 video code finds ``CvUtilsOnHost`` as its cv-utils kernel."""
    saved = reference_module.cv_utils_kernel
    reference_module.cv_utils_kernel = CV_UTILS_ON_HOST
    try:
        yield
    finally:
        reference_module.cv_utils_kernel = saved


# Sam3VideoModel's per-frame steps, named as the engine's stages
_STAGES = {
    "run_detection": "detector",
    "run_tracker_propagation": "tracker",
    "run_tracker_update_planning_phase": "merge",
    "run_tracker_update_execution_phase": "spawn",
    "build_outputs": "output",
}


def masks_to_boxes_inclusive(masks: torch.Tensor) -> torch.Tensor:
    """torchvision's ``ops.masks_to_boxes`` (version 0.28): xyxy boxes (N, 4) float32 of (N, H, W) masks whose
    x2/y2 are the last pixel's column/row (inclusive); empty masks give zeros. transformers' video
    post-processing calls it; torchvision's PyPI wheels need a CUDA build of torch, so without torchvision
    this stands in for it."""
    if masks.numel() == 0:
        return torch.zeros((0, 4), device=masks.device, dtype=torch.float)
    _, h, w = masks.shape
    rows, cols = masks.bool().any(dim=2).float(), masks.bool().any(dim=1).float()
    y1, x1 = rows.argmax(dim=1), cols.argmax(dim=1)
    y2, x2 = (h - 1) - rows.flip(dims=[1]).argmax(dim=1), (w - 1) - cols.flip(dims=[1]).argmax(dim=1)
    boxes = torch.stack([x1, y1, x2, y2], dim=1).float()
    boxes[~rows.bool().any(dim=1)] = 0
    return boxes


def video_processor():
    """transformers' ``Sam3VideoProcessor`` for ``postprocess_outputs`` alone: built without its image
    processor and tokenizer, which that method does not read; torchvision's ``masks_to_boxes``, which it
    calls, is ``masks_to_boxes_inclusive`` where torchvision cannot be imported."""
    processing = importlib.import_module("transformers.models.sam3_video.processing_sam3_video")
    if not hasattr(processing, "masks_to_boxes"):
        processing.masks_to_boxes = masks_to_boxes_inclusive
    return object.__new__(processing.Sam3VideoProcessor)


class ReferenceLoop:
    """One reference streaming session with the thresholds of ``settings`` and text ``phrases``."""

    def __init__(self, loaded: LoadedModel, settings: Settings, phrases: list[str]):
        model = loaded.model
        det, trk = settings.detection, settings.tracking
        model.score_threshold_detection = det.score_threshold
        model.det_nms_thresh = det.nms_iou_threshold
        model.new_det_thresh = det.new_object_threshold
        model.assoc_iou_thresh = trk.assoc_iou_threshold
        model.trk_assoc_iou_thresh = trk.track_assoc_iou_threshold
        model.fill_hole_area = trk.hole_fill_area
        model.recondition_every_nth_frame = trk.recondition_every
        model.max_num_objects = trk.max_objects
        self.model = model
        device = next(model.parameters()).device
        dtype = next(model.parameters()).dtype
        self.session = reference_module.Sam3VideoInferenceSession(
            inference_device=device, inference_state_device=device, video_storage_device=device, dtype=dtype
        )
        self.output = None  # the model's output of the last step
        self.timings_ms: dict[str, float] = {}  # per stage, of the last step
        for name, stage in _STAGES.items():  # instance attributes shadow the methods: time each stage
            setattr(model, name, self._timed(getattr(model, name), stage, device))
        for phrase in phrases:
            prompt_id = self.session.add_prompt(phrase)
            tokens = loaded.tokenize([phrase])
            self.session.prompt_input_ids[prompt_id] = tokens["input_ids"].to(device)
            self.session.prompt_attention_masks[prompt_id] = tokens["attention_mask"].to(device)

    def _timed(self, method, stage: str, device: torch.device):
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

        def timed(*args, **kwargs):
            sync()
            start = time.perf_counter()
            result = method(*args, **kwargs)
            sync()
            self.timings_ms[stage] = self.timings_ms.get(stage, 0.0) + (time.perf_counter() - start) * 1000
            return result

        return timed

    @torch.inference_mode()
    def step(self, pixels: torch.Tensor) -> dict[int, torch.Tensor]:
        """Process one preprocessed frame (1, 3, S, S); returns object id -> low-res mask logits (h, w) of
        every tracked object. ``timings_ms`` then holds this step's stages; "encoder" is the rest of the step."""
        self.timings_ms = {}
        start = time.perf_counter()
        with cv_utils_on_host():
            self.output = self.model(inference_session=self.session, frame=pixels)
        total = (time.perf_counter() - start) * 1000
        self.timings_ms["encoder"] = total - sum(self.timings_ms.values())
        return {obj_id: mask[0] for obj_id, mask in self.output.obj_id_to_mask.items()}

    def postprocessed(self, size: tuple[int, int]) -> dict:
        """``Sam3VideoProcessor.postprocess_outputs`` of the last step at source ``size`` (H, W): the
        reference's published ``object_ids``, ``scores``, ``boxes`` and ``masks``."""
        return video_processor().postprocess_outputs(self.session, self.output, original_sizes=[list(size)])
