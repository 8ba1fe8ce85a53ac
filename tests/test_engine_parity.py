"""The engine computes the reference's function: tiny-random weights, CPU, fp32, fixed seeds.

1. Batched tracker == the reference's per-object propagation on the same memory (1, 3, 8 objects).
2. Full engine == the transformers ``Sam3VideoModel`` streaming loop over 40 frames of moving content.

The reference's streaming gaps are handled as follows: NMS and hole filling, which the reference skips
offline, are applied on both sides with the same functions (``ReferenceLoop`` swaps the engine's NMS
and hole filling into the reference module); objects are never removed by either side within the run
(keep-alive longer than the run, and the reference never removes in streaming mode); ``max_objects``
is the same cap on both sides (the reference's ``max_num_objects``; ``at_max_objects: refuse_new`` is its
rule, the default ``evict_lowest`` is tested in ``test_engine.py``); the run (40 frames, conditioning
frames <= ``max_cond_frames``) stays inside the window where our bounded memory holds everything the
reference's unbounded memory would read.
"""

import numpy as np
import pytest
import torch

from sam3_ros.commands.bench_engine import moving_shapes
from sam3_ros.engine import ConceptPrompt, Frame, load_engine, load_model
from sam3_ros.engine.mask_ops import logits_to_masks
from sam3_ros.engine.preprocess import to_pixels
from sam3_ros.engine.reference import ReferenceLoop
from sam3_ros.kernels.reference import mask_iou
from sam3_ros.settings import Settings

SIZE = 112


def parity_settings(max_objects: int, **extra) -> Settings:
    return Settings.default({
        "devices": ["cpu"], "detection.score_threshold": 0.0, "detection.new_object_threshold": 0.0,
        "tracking.max_objects": max_objects, "tracking.at_max_objects": "refuse_new",
        "tracking.keep_alive_frames": 1000, **extra,
    })


def load_bank_from_reference(engine, session, slots):
    """Write the reference session's per-object memory into the engine's bank, frame by frame."""
    for obj_idx, slot in enumerate(slots):
        outputs = session.output_dict_per_obj[obj_idx]
        entries = {**{f: (o, False) for f, o in outputs["non_cond_frame_outputs"].items()},
                   **{f: (o, True) for f, o in outputs["cond_frame_outputs"].items()}}
        for frame in sorted(entries):
            out, cond = entries[frame]
            engine.tracker.store([slot], frame, out["maskmem_features"][:, 0][None],
                              out["object_pointer"].reshape(1, -1), out["maskmem_pos_enc"][:, 0], np.array([cond]))


@pytest.mark.parametrize("objects,keep_keys_values", [(1, "always"), (3, "always"), (8, "always"), (3, "never")])
def test_batched_tracker_equals_per_object_reference(objects, keep_keys_values):
    settings = parity_settings(objects, **{"tracking.recondition_every": 3,
                                           "memory.keep_keys_values": keep_keys_values})
    loaded = load_model("tiny-random")
    reference = ReferenceLoop(loaded, settings, ["shape"])
    frames = [to_pixels(torch.from_numpy(f), SIZE, torch.float32) for f in moving_shapes(10, SIZE, SIZE)]
    for pixels in frames[:9]:
        reference.step(pixels)
    session = reference.session
    assert len(session.obj_ids) == objects
    engine = load_engine(settings, loaded)
    slots = engine.bank.allocate(objects)
    load_bank_from_reference(engine, session, slots)

    with torch.inference_mode():
        frame_idx = session.add_new_frame(frames[9])
        vision = loaded.model.detector_model.get_vision_features(pixel_values=frames[9])
        feats, pos = loaded.model.get_vision_features_for_tracker(vision)
        session.cache.cache_vision_features(frame_idx, {"vision_feats": feats, "vision_pos_embeds": pos})
        expected = loaded.model.tracker_model(inference_session=session, frame_idx=frame_idx, run_mem_encoder=False)
        ours = engine.tracker.propagate(feats, pos, slots, frame_idx)
    diff = (ours["low_res"][:, 0] - expected.pred_masks[:, 0]).abs().max().item()
    assert diff < 1e-4, f"mask logits differ by {diff}"
    score_diff = (ours["object_score_logits"].flatten() - expected.object_score_logits.flatten()).abs().max().item()
    assert score_diff < 1e-4


@pytest.mark.slow
def test_engine_equals_reference_streaming_loop():
    # the tiny random detector scores ~0.24-0.26: thresholds inside that band make objects come and go
    # new_object_threshold == score_threshold: with no tracks yet, the reference starts every detection
    # above score_threshold whatever new_det_thresh says; we always apply new_object_threshold
    settings = parity_settings(6, **{"detection.score_threshold": 0.25, "detection.new_object_threshold": 0.25,
                                     "detection.nms_iou_threshold": 0.5, "tracking.recondition_every": 8,
                                     "tracking.assoc_iou_threshold": 0.8, "tracking.track_assoc_iou_threshold": 0.8})
    loaded = load_model("tiny-random")
    reference = ReferenceLoop(loaded, settings, ["shape"])
    engine = load_engine(settings, loaded)
    engine.set_prompt(ConceptPrompt(phrases=["shape"]))
    ours_to_ref: dict[int, int] = {}
    seen = 0
    for t, image in enumerate(moving_shapes(40, SIZE, SIZE)):
        ours = engine.step(Frame(image, stamp_ns=t))
        ref = reference.step(to_pixels(torch.from_numpy(image), SIZE, torch.float32))
        assert len(ours) == len(ref), f"frame {t}: {len(ours)} objects vs reference {len(ref)}"
        ref_ids = sorted(ref)
        for i, our_id in enumerate(ours.ids.tolist()):  # both list objects in creation order
            assert ours_to_ref.setdefault(our_id, ref_ids[i]) == ref_ids[i], f"frame {t}: id mapping changed"
        if ref_ids:
            ref_masks = logits_to_masks(torch.stack([ref[k] for k in ref_ids]), (SIZE, SIZE))
            iou = mask_iou(ours.masks, ref_masks).diagonal()
            both_empty = ~ours.masks.flatten(1).any(1) & ~ref_masks.flatten(1).any(1)
            assert bool(((iou >= 0.99) | both_empty).all()), f"frame {t}: per-object IoU {iou.tolist()}"
        seen += len(ours)
    assert len(set(ours_to_ref.values())) == len(ours_to_ref)  # one-to-one
    assert seen > 0
