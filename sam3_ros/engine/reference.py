"""The transformers streaming loop (``Sam3VideoModel`` + ``Sam3VideoInferenceSession``) on our settings.

Used by the parity tests and ``sam3-ros bench engine`` to run the reference on the same weights and
frames as the engine. Offline, the reference silently skips NMS and hole filling (it cannot download
its ``cv-utils`` kernel); ``ReferenceLoop`` swaps in the engine's own NMS and hole filling for the
duration of each step, so both sides apply the same post-processing.
"""

from __future__ import annotations

import contextlib
import time

import torch
from transformers.models.sam3_video import modeling_sam3_video as reference_module

from ..kernels.reference import mask_nms
from ..settings import Settings
from .loading import LoadedModel
from .mask_ops import fill_holes as _engine_fill_holes


# Sam3VideoModel's per-frame steps, named as the engine's stages
_STAGES = {"run_detection": "detector", "run_tracker_propagation": "tracker",
           "run_tracker_update_planning_phase": "merge", "run_tracker_update_execution_phase": "spawn",
           "build_outputs": "output"}


def _nms_masks(pred_probs, pred_masks, prob_threshold, iou_threshold):
    """The reference's ``nms_masks`` contract, computed by the engine's NMS."""
    valid = pred_probs > prob_threshold
    return valid & mask_nms((pred_masks > 0) & valid[:, None, None], pred_probs, iou_threshold)


def _fill_holes_in_mask_scores(mask, max_area, fill_holes=True, remove_sprinkles=True):
    """The reference's ``fill_holes_in_mask_scores`` contract, computed by the engine's hole filling."""
    return _engine_fill_holes(mask, max_area)


@contextlib.contextmanager
def same_postprocessing():
    """Make the reference module use the engine's NMS and hole filling inside the block."""
    saved = reference_module.nms_masks, reference_module.fill_holes_in_mask_scores
    reference_module.nms_masks, reference_module.fill_holes_in_mask_scores = _nms_masks, _fill_holes_in_mask_scores
    try:
        yield
    finally:
        reference_module.nms_masks, reference_module.fill_holes_in_mask_scores = saved


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
            inference_device=device, inference_state_device=device, video_storage_device=device, dtype=dtype)
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
        """Process one preprocessed frame (1, 3, S, S); returns object id -> low-res mask logits (h, w).
        ``timings_ms`` then holds this step's stages; "encoder" is the rest of the step."""
        self.timings_ms = {}
        start = time.perf_counter()
        with same_postprocessing():
            out = self.model(inference_session=self.session, frame=pixels)
        total = (time.perf_counter() - start) * 1000
        self.timings_ms["encoder"] = total - sum(self.timings_ms.values())
        return {obj_id: mask[0] for obj_id, mask in out.obj_id_to_mask.items()}
