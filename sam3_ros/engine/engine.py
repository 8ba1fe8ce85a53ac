"""The streaming SAM 3 engine: detector + batched tracker + bounded memory bank + merge.

One ``Engine`` serves one camera stream. ``step`` runs, per frame: preprocessing on the device, the
vision encoder, the detector for every phrase in one batch, the tracker for every object in one
batch, the merge (on device), memory encoding for every object in one batch, and the outputs at
source resolution. The host reads one small tensor per frame (which detections start objects and
which objects expire) to keep its list of live objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..prompts import check_clicks, check_prompt
from ..settings import EngineSettings, Settings
from .backends import make_encoder
from .detector import Detector
from .frame_resize import prepare_frame_resize
from .loading import LoadedModel, load_model
from .mask_ops import fill_holes
from .mask_runs import output_masks, prepare_output_masks
from .memory_bank import MemoryBank
from .merge import (
    NEVER_OCCLUDED,
    NO_OBJECT_LOGIT,
    MergeThresholds,
    associate,
    merge_on_host,
    occlusion_suppression,
    prepare_merge_on_host,
    suppress_shrunk,
)
from .preprocess import frame_tensor, to_pixels
from .streams import SideStream, StageTimer, read_to_host, upload
from .tracker import BatchedTracker, keys_values_shape
from .types import ConceptPrompt, Frame, Instances


@dataclass
class EngineCounters:
    """Things the engine dropped or refused, for diagnostics."""

    frames: int = 0
    objects_created: int = 0
    objects_expired: int = 0  # removed after keep_alive_frames without a detector match
    objects_evicted: int = 0  # removed for a higher-scoring new detection at tracking.max_objects
    detections_over_limit: int = 0  # new detections not admitted because of tracking.max_objects
    bad_input: int = 0


@dataclass
class _Objects:
    """Live objects in creation order (host view) and their per-slot state (device)."""

    slots: list[int] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)


@dataclass
class _Merged:
    """What the merge decided for this frame (host arrays index the frame's tracked objects)."""

    recondition_det: torch.Tensor  # (n,) the detection each tracked object is re-conditioned on, or -1
    recondition: torch.Tensor  # (n,) bool, on the device; true only where recondition_det >= 0
    recondition_host: np.ndarray  # (n,) bool
    expired_host: np.ndarray  # (n,) bool: expired or evicted
    evicted: np.ndarray  # indices of evicted objects
    new_dets: np.ndarray  # admitted detections that start objects, highest score first


@dataclass
class _Decided:
    """The merge's decisions before ``tracking.max_objects`` is enforced: host arrays over the frame's detections
    and tracked objects, and the two tensors the spawn reads on the device."""

    is_new: np.ndarray  # (d,) bool: the detection may start an object
    det_scores: np.ndarray  # (d,) float32
    expired: np.ndarray  # (n,) bool
    recondition_host: np.ndarray  # (n,) bool
    track_scores: np.ndarray  # (n,) float32: the objects' scores after this frame
    recondition_det: torch.Tensor  # (n,) int64: the detection each object is re-conditioned on, or -1
    recondition: torch.Tensor  # (n,) bool


@dataclass
class _Tracked:
    """The frame's tracked objects: their slots (host list and device tensor) and the tracker's outputs."""

    live: list[int]
    slots: torch.Tensor
    prop: dict[str, torch.Tensor] | None
    logits: torch.Tensor | None = None  # (n, low_res, low_res) after hole filling and occlusion suppression
    concept: torch.Tensor | None = None  # (n,) concept index


@dataclass
class _Output:
    """The objects a frame publishes: slots, low-res logits and the scores that settle their overlaps."""

    slots: torch.Tensor
    logits: torch.Tensor
    scores: torch.Tensor


def prepare_host_path() -> None:
    """Compile the CPU engine's loops (or load them from numba's cache) now, so that a camera's first frame does
    not wait for them: the frame resize's, the merge's, the output masks', the hole filling's and the per-concept
    non-overlap's."""
    prepare_frame_resize()
    prepare_merge_on_host()
    prepare_output_masks()
    fill_holes(torch.ones(1, 1, 4, 4), 1)
    suppress_shrunk(torch.ones(2, 1, 4, 4), torch.zeros(2, dtype=torch.long), 1)


def resolve_device(settings: EngineSettings | Settings) -> torch.device:
    """The engine's device from ``settings.devices[0]`` (auto = cuda:0 when present, else cpu)."""
    name = settings.devices[0]
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"devices: {name} requested but CUDA is not available")
    return torch.device(name)


def resolve_dtype(settings: EngineSettings | Settings, device: torch.device) -> torch.dtype:
    """Compute precision: auto = bf16 on GPU, fp32 on CPU."""
    if settings.precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return torch.bfloat16 if settings.precision == "bf16" else torch.float32


KEPT_KEYS_VALUES_BUDGET = 1 << 30  # memory.keep_keys_values auto: bytes per camera (SAM 3, 1008 px, bf16: 5 objects)


def memory_bank_options(
    settings: EngineSettings | Settings, tracker_model, device: torch.device, dtype: torch.dtype
) -> dict:
    """``MemoryBank`` keyword arguments (all but the capacity) for ``settings`` and a tracker model."""
    tcfg = tracker_model.config
    h, w = tracker_model.backbone_feature_sizes[-1]
    options = dict(
        num_maskmem=min(settings.memory.num_maskmem, tcfg.num_maskmem),
        max_cond=min(settings.memory.max_cond_frames, tcfg.max_cond_frame_num),
        max_pointers=min(settings.memory.max_object_pointers, tcfg.max_object_pointers_in_encoder),
        tokens=h * w,
        mem_dim=tracker_model.mem_dim,
        hidden=tracker_model.hidden_dim,
        device=device,
        dtype=dtype,
    )
    shape = keys_values_shape(tracker_model, h * w)
    entries = settings.tracking.max_objects * (options["max_cond"] + max(options["num_maskmem"] - 1, 1))
    kept_bytes = entries * int(np.prod(shape)) * torch.empty(0, dtype=dtype).element_size()
    keep = settings.memory.keep_keys_values
    if keep == "always" or (keep == "auto" and kept_bytes <= KEPT_KEYS_VALUES_BUDGET):
        options["entry_shape"] = shape
    return options


def engine_settings(settings: EngineSettings | Settings | None) -> EngineSettings:
    """The engine's part of ``settings`` (default: the packaged defaults')."""
    if isinstance(settings, EngineSettings):
        return settings
    return (settings or Settings.default()).engine


def load_engine(settings: EngineSettings | Settings | None = None, loaded: LoadedModel | None = None) -> "Engine":
    """Build an engine for ``settings`` (default: the packaged defaults), loading ``settings.model``
    unless an already ``loaded`` model is given."""
    settings = engine_settings(settings)
    device = resolve_device(settings)
    dtype = resolve_dtype(settings, device)
    loaded = loaded or load_model(settings.model, device, dtype, settings.image_size)
    return Engine(loaded, settings, device, dtype)


class Engine:
    """Streaming segmentation and tracking of concept prompts (see ``sam3_ros.engine.types``)."""

    def __init__(self, loaded: LoadedModel, settings: EngineSettings, device: torch.device, dtype: torch.dtype):
        self.settings, self.device, self.dtype = settings, device, dtype
        self.model = loaded.model
        config = self.model.config
        tracker_model = self.model.tracker_model
        self.image_size = int(tracker_model.image_size)
        self.low_res = int(config.low_res_mask_size)
        self.bank, self.tracker = self._make_tracker(tracker_model)
        self.detector = Detector(self.model.detector_model, loaded.tokenize)
        self.encoder = make_encoder(settings.backend, self.model, device, dtype, self.image_size, loaded.name)
        self._upload = SideStream(device)  # frame upload + resize beside the previous frame's tail
        if device.type == "cpu":
            prepare_host_path()
        det, trk = settings.detection, settings.tracking
        self.thresholds = MergeThresholds(
            assoc_iou=trk.assoc_iou_threshold,
            track_assoc_iou=trk.track_assoc_iou_threshold,
            new_object=det.new_object_threshold,
            high_conf=config.high_conf_thresh,
            high_iou=config.high_iou_thresh,
            occlusion_iou=config.suppress_overlapping_based_on_recent_occlusion_threshold,
        )
        cap = settings.tracking.max_objects
        self._ids = torch.zeros(cap, dtype=torch.long, device=device)
        self._concept = torch.full((cap,), -1, dtype=torch.long, device=device)
        self._score = torch.zeros(cap, dtype=torch.float32, device=device)
        self._first_frame = torch.zeros(cap, dtype=torch.long, device=device)
        self._last_detected = torch.zeros(cap, dtype=torch.long, device=device)
        self._last_occluded = torch.full((cap,), NEVER_OCCLUDED, dtype=torch.long, device=device)
        self._objects = _Objects()
        self._next_id = 1
        self._frame = -1  # index of the last processed frame
        self._last = None  # (feats, pos, (H, W)) of the last frame, for add_points
        self.counters = EngineCounters()
        self.phrases: list[str] = []
        self._boxes = torch.zeros(0, 4)
        self._box_labels = torch.zeros(0, dtype=torch.bool)
        initial = settings.prompt.phrases()
        if initial:
            self.set_prompt(ConceptPrompt(phrases=initial))

    # -- prompts and objects ---------------------------------------------------------------------------
    def set_prompt(self, prompt: ConceptPrompt, keep_tracks: bool = False) -> None:
        """Replace the concept prompt (checked by ``sam3_ros.prompts.check_prompt``: exemplar boxes are clipped
        to the last frame). Without ``keep_tracks`` every object is dropped; with it, objects of phrases still
        in the prompt (and click-created ones) are kept, the others dropped."""
        if not isinstance(prompt, ConceptPrompt):
            raise ValueError(f"set_prompt expects a ConceptPrompt, got {type(prompt).__name__}")
        size = self._last[2] if self._last is not None else None
        phrases, boxes, labels = check_prompt(
            prompt.phrases, prompt.boxes, prompt.box_labels, size, self.settings.prompt
        )
        old_phrases = self.phrases
        self.phrases, self._boxes, self._box_labels = phrases, torch.from_numpy(boxes), torch.from_numpy(labels)
        if not keep_tracks:
            self._drop(list(self._objects.slots))
            return
        remap = torch.tensor(
            [phrases.index(p) if p in phrases else -2 for p in old_phrases] + [-1], dtype=torch.long, device=self.device
        )
        self._concept.copy_(remap[self._concept])  # -1 (clicks) maps to itself through the last entry
        concepts = self._concept.cpu()  # prompt changes are rare: one sync is fine here
        self._drop([s for s in self._objects.slots if int(concepts[s]) == -2])

    def add_points(self, obj_id: int | None, points, labels, box=None) -> int:
        """Refine object ``obj_id`` or start a new one (``None``) from clicks on the last frame.

        ``points`` (P, 2) xy source pixels, ``labels`` (P,) 1 = on the object / 0 = background,
        ``box`` optional xyxy source pixels (checked by ``sam3_ros.prompts.check_clicks``). Returns the
        object's id.
        """
        if self._last is None:
            raise ValueError("add_points needs a processed frame first (call step)")
        feats, pos, size = self._last
        slot = None
        if obj_id is not None:
            slot = self._slot_of(obj_id)
        elif self.bank.free_slots == 0:
            raise ValueError(
                f"add_points: tracking.max_objects={self.settings.tracking.max_objects} objects are "
                "tracked already; remove one first"
            )
        pts, lbl, box = check_clicks(points, labels, box, size)
        h, w = size
        scale = np.array([self.image_size / w, self.image_size / h], np.float32)
        box_t = None
        if box is not None:
            box_t = torch.from_numpy((box.reshape(2, 2) * scale).reshape(1, 1, 4)).to(self.device, self.dtype)
        if len(pts) == 0:  # a box alone: the prompt encoder still wants a (padding) point
            pts, lbl = np.zeros((1, 2), np.float32), np.full((1,), -10, np.int64)
        points_t = torch.from_numpy(pts * scale).view(1, 1, -1, 2).to(self.device, self.dtype)
        labels_t = torch.from_numpy(lbl).view(1, 1, -1).to(self.device, torch.int32)
        with torch.inference_mode():
            out = self.tracker.from_points(feats, pos, slot, self._frame, points_t, labels_t, box_t)
            if slot is None:
                (slot,) = self._create(torch.tensor([-1], device=self.device), self._frame)
                obj_id = self._objects.ids[-1]
            self.tracker.remember(feats, [slot], self._frame, out, np.ones(1, bool), binarize=True)
            self._last_detected[slot] = self._frame
        return obj_id

    def remove(self, obj_id: int) -> None:
        """Stop tracking ``obj_id`` (its id is not reused)."""
        self._drop([self._slot_of(obj_id)])

    def reset(self) -> None:
        """Forget every object and the frame history; the prompt stays. Ids keep increasing."""
        self._drop(list(self._objects.slots))
        self.bank.clear()
        self._frame, self._last = -1, None

    # -- the frame loop ----------------------------------------------------------------------------------
    @torch.inference_mode()
    def step(self, frame: Frame) -> Instances:
        """Process one frame; returns every live object's mask, box, score and id."""
        clock = StageTimer(self.device)
        pixels, size = self._preprocess(frame)
        t = self._frame + 1
        clock.lap("preprocess")
        features = self.encoder(pixels)  # the backend chosen by settings.backend
        feats, pos = features.tracker_feats, features.tracker_pos
        clock.lap("encoder")
        self._features_ready(feats, pos, t)
        dets = self._detect(features.detector, size)
        clock.lap("detector")
        tracked = self._track(feats, pos, t)
        clock.lap("tracker")
        merged = self._merge(dets, tracked, t)
        self._remember_tracked(feats, tracked, merged, t, clock)
        clock.lap("merge")
        out = self._spawn(feats, dets, tracked, merged, t, clock)
        clock.lap("spawn")
        result = self._output(frame, out, t, size, clock)
        clock.lap("output")
        self._frame, self._last = t, (feats, pos, size)
        self.counters.frames += 1
        return result

    # -- the phases of a frame ---------------------------------------------------------------------------
    def _preprocess(self, frame: Frame) -> tuple[torch.Tensor, tuple[int, int]]:
        """The frame as the encoder's pixels on the device, and its (H, W); ValueError (counted) for bad input."""
        try:
            with self._upload.run(wait=False):
                image = frame_tensor(frame, self.device, self.settings.max_image_pixels)
                pixels = to_pixels(image, self.image_size, self.dtype)
        except ValueError:
            self.counters.bad_input += 1
            raise
        size = (int(image.shape[0]), int(image.shape[1]))
        if len(self._boxes) and not self._boxes_fit(size):
            self.counters.bad_input += 1
            raise ValueError(f"exemplar boxes of the prompt lie outside this {size[1]}x{size[0]} frame")
        self._upload.join(pixels)
        return pixels, size

    def _track(self, feats: list[torch.Tensor], pos: list[torch.Tensor], t: int) -> _Tracked:
        """The tracker's pass for every live object."""
        live = list(self._objects.slots)
        slots = upload(live, self.device, torch.long)
        prop = self.tracker.propagate(feats, pos, live, t) if live else None
        return _Tracked(live, slots, prop)

    def _merge(self, dets: dict[str, torch.Tensor], tracked: _Tracked, t: int) -> _Merged:
        """Detections against tracks, then the one host read per frame: which detections start objects, which
        objects expire (or are evicted at ``tracking.max_objects``), which are re-conditioned."""
        n, slots = len(tracked.live), tracked.slots
        if n:
            tracked.logits = fill_holes(tracked.prop["low_res"], self.settings.tracking.hole_fill_area)[:, 0]
        else:
            tracked.logits = torch.zeros(0, self.low_res, self.low_res, device=self.device, dtype=self.dtype)
        tracked.concept = self._concept[slots]
        every = self.settings.tracking.recondition_every
        recondition_now = bool(n) and every > 0 and t % every == 0
        decide = self._decide_on_host if self._merges_on_host(dets, tracked) else self._decide_on_device
        decided = decide(dets, tracked, t, recondition_now)
        new_dets, evicted = self._admit(
            np.flatnonzero(decided.is_new), decided.det_scores, np.flatnonzero(~decided.expired), decided.track_scores
        )
        decided.expired[evicted] = True  # from here on an evicted object leaves like an expired one
        return _Merged(
            decided.recondition_det, decided.recondition, decided.recondition_host, decided.expired, evicted, new_dets
        )

    def _merges_on_host(self, dets: dict[str, torch.Tensor], tracked: _Tracked) -> bool:
        """Whether the merge's decisions come from ``merge_on_host`` (float32 CPU tensors) rather than tensor ops."""
        floats = [dets["masks"], dets["scores"], tracked.logits]
        if tracked.live:
            floats.append(tracked.prop["object_score_logits"])
        return self.device.type == "cpu" and all(x.dtype == torch.float32 for x in floats)

    def _decide_on_host(
        self, dets: dict[str, torch.Tensor], tracked: _Tracked, t: int, recondition_now: bool
    ) -> _Decided:
        """The merge's decisions in one compiled pass (``merge.merge_on_host``)."""
        scores = tracked.prop["object_score_logits"][:, 0] if tracked.live else torch.zeros(0)
        decided = merge_on_host(
            dets,
            tracked.logits,
            tracked.concept,
            scores,
            np.array(tracked.live, np.int64),
            (self._last_occluded.numpy(), self._last_detected.numpy(), self._score.numpy()),
            t,
            recondition_now,
            self.settings.tracking.keep_alive_frames,
            self.thresholds,
        )
        if decided.suppress.any():
            suppress = torch.from_numpy(decided.suppress)[:, None, None]
            tracked.logits = torch.where(suppress, torch.full_like(tracked.logits, NO_OBJECT_LOGIT), tracked.logits)
        return _Decided(
            decided.is_new,
            dets["scores"].numpy(),
            decided.expired,
            decided.recondition,
            decided.score,
            torch.from_numpy(decided.recondition_det),
            torch.from_numpy(decided.recondition),
        )

    def _decide_on_device(
        self, dets: dict[str, torch.Tensor], tracked: _Tracked, t: int, recondition_now: bool
    ) -> _Decided:
        """The merge's decisions with tensor operations on the device, and one read of them to the host."""
        n, slots, trk, concept = len(tracked.live), tracked.slots, tracked.logits, tracked.concept
        assoc = associate(dets["masks"], dets["scores"], dets["valid"], dets["concept"], trk, concept, self.thresholds)
        recondition = torch.zeros(n, dtype=torch.bool, device=self.device)
        if recondition_now:
            recondition = (assoc.recondition_det >= 0) & (
                tracked.prop["object_score_logits"][:, 0] > self.thresholds.high_conf
            )
        suppress, self._last_occluded[slots] = occlusion_suppression(
            trk, concept, self._last_occluded[slots], t, self.thresholds.occlusion_iou
        )
        tracked.logits = torch.where(suppress[:, None, None], torch.full_like(trk, NO_OBJECT_LOGIT), trk)
        self._last_detected[slots] = torch.where(assoc.confirmed, t, self._last_detected[slots])
        self._score[slots] = torch.where(assoc.matched, assoc.best_score, self._score[slots])

        expired = (t - self._last_detected[slots]) > self.settings.tracking.keep_alive_frames
        expired &= concept >= 0  # click-created objects have no detector to confirm them
        d = assoc.is_new.numel()
        flags = torch.cat(
            [assoc.is_new.float(), dets["scores"].float(), expired.float(), recondition.float(), self._score[slots]]
        )
        flags = read_to_host(flags)
        return _Decided(
            flags[:d] > 0,
            flags[d : 2 * d],
            flags[2 * d : 2 * d + n] > 0,
            flags[2 * d + n : 2 * d + 2 * n] > 0,
            flags[2 * d + 2 * n :],
            assoc.recondition_det,
            recondition,
        )

    def _remember_tracked(
        self, feats: list[torch.Tensor], tracked: _Tracked, merged: _Merged, t: int, clock: StageTimer
    ) -> None:
        """The memory of the tracked objects: their final masks, pixel-exclusive within a concept."""
        if not tracked.live:
            return
        memory_masks = suppress_shrunk(tracked.logits[:, None], tracked.concept, len(self.phrases))
        present = (memory_masks > 0).flatten(1).any(dim=1, keepdim=True)
        logits = torch.where(present, 10.0, -10.0).to(memory_masks.dtype)
        clock.lap("merge")
        self.tracker.remember(
            feats,
            tracked.live,
            t,
            tracked.prop,
            merged.recondition_host,
            binarize=False,
            high_res=memory_masks,
            object_score_logits=logits,
        )
        clock.lap("memory")  # the memory encoder: a network pass

    def _spawn(
        self,
        feats: list[torch.Tensor],
        dets: dict[str, torch.Tensor],
        tracked: _Tracked,
        merged: _Merged,
        t: int,
        clock: StageTimer,
    ) -> _Output:
        """Expired objects leave, admitted detections start objects; the frame's objects with their logits
        and the scores that settle their overlaps."""
        live, slots, prop = tracked.live, tracked.slots, tracked.prop
        alive = np.flatnonzero(~merged.expired_host)
        out_logits = torch.where(  # a re-conditioned object shows the detection it was re-conditioned on
            merged.recondition[:, None, None],
            dets["masks"][merged.recondition_det.clamp(min=0)] if dets["masks"].shape[0] else tracked.logits,
            tracked.logits,
        )
        # the reference settles the objects' overlaps in its output by their tracker scores
        scores = (
            torch.sigmoid(prop["object_score_logits"][:, 0]).float() if live else torch.zeros(0, device=self.device)
        )
        keep = upload(alive, self.device)
        out = _Output(slots[keep], out_logits[keep], scores[keep])
        expired_slots = [live[i] for i in np.flatnonzero(merged.expired_host)]
        self.counters.objects_expired += len(expired_slots) - len(merged.evicted)
        self.counters.objects_evicted += len(merged.evicted)
        self._drop(expired_slots)  # before new objects take slots: max_objects counts live objects only
        if not len(merged.new_dets):
            return out
        new_idx = upload(merged.new_dets, self.device)
        created = self._create(dets["concept"][new_idx], t)
        new_slots = upload(created, self.device, torch.long)
        self._score[new_slots] = dets["scores"][new_idx]
        det_masks = dets["masks"][new_idx][:, None]
        clock.lap("spawn")
        start = self.tracker.from_masks(feats, det_masks >= 0.5)
        self.tracker.remember(feats, created, t, start, np.ones(len(created), bool), binarize=True)
        redo = alive[~merged.recondition_host[alive]]
        if len(redo):
            # the reference re-runs the tracker with binarized memory for existing, not re-conditioned
            # objects on frames that start new ones; we do the same to compute the same function
            again = {k: v[upload(redo, self.device)] for k, v in prop.items()}
            self.tracker.remember(feats, [live[i] for i in redo], t, again, np.zeros(len(redo), bool), binarize=True)
        clock.lap("memory")  # the new objects' first pass and their memories: network passes
        new_logits = fill_holes(dets["masks"][new_idx][:, None], self.settings.tracking.hole_fill_area)[:, 0]
        out.slots = torch.cat([out.slots, new_slots])
        out.logits = torch.cat([out.logits, new_logits.to(out.logits.dtype)])
        out.scores = torch.cat([out.scores, dets["scores"][new_idx].float()])  # a new object's: its detection's
        return out

    def _output(self, frame: Frame, out: _Output, t: int, size: tuple[int, int], clock: StageTimer) -> Instances:
        """The frame's instances at source resolution."""
        concept = self._concept[out.slots]
        # boxes of each object's own mask, as the reference's; masks with no pixel in two objects of one concept
        boxes, masks = output_masks(out.logits, out.scores, concept, size)
        return Instances(
            ids=self._ids[out.slots],
            scores=self._score[out.slots],
            boxes=boxes,
            masks=masks,
            concept_index=concept,
            detected=(self._last_detected[out.slots] == t),
            age=t - self._first_frame[out.slots],
            frames_since_detected=t - self._last_detected[out.slots],
            phrases=list(self.phrases),
            stamp_ns=frame.stamp_ns,
            frame_id=frame.frame_id,
            camera=frame.camera,
            image_size=size,
            timings_ms=clock.result(),
        )

    # -- internals -----------------------------------------------------------------------------------------
    def _make_tracker(self, tracker_model) -> tuple[MemoryBank, BatchedTracker]:
        """The memory bank and the tracker that reads it (a subclass may place them elsewhere)."""
        bank = MemoryBank(
            self.settings.tracking.max_objects,
            **memory_bank_options(self.settings, tracker_model, self.device, self.dtype),
        )
        return bank, BatchedTracker(tracker_model, bank)

    def _features_ready(self, feats: list[torch.Tensor], pos: list[torch.Tensor], frame: int) -> None:
        """Called once the tracker's image features of ``frame`` exist, before the detector runs
        (a subclass can start tracking elsewhere while the detector runs here)."""

    def _detect(self, vision, size: tuple[int, int]) -> dict[str, torch.Tensor]:
        if not self.phrases and not len(self._boxes):
            z = torch.zeros(0, device=self.device)
            return {
                "masks": torch.zeros(0, self.low_res, self.low_res, device=self.device, dtype=self.dtype),
                "boxes": torch.zeros(0, 4, device=self.device),
                "scores": z,
                "valid": z.bool(),
                "concept": z.long(),
            }
        boxes = labels = None
        if len(self._boxes):
            h, w = size
            xyxy = upload(self._boxes, self.device) / upload([w, h, w, h], self.device, torch.float32)
            boxes = torch.cat([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], dim=1).to(self.dtype)
            labels = upload(self._box_labels, self.device, torch.long)
        det = self.settings.detection
        return self.detector.detect(vision, self.phrases, boxes, labels, det.score_threshold, det.nms_iou_threshold)

    def _admit(
        self, candidates: np.ndarray, det_scores: np.ndarray, alive: np.ndarray, track_scores: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Enforce ``tracking.max_objects``: new detections (indices ``candidates``) and live objects
        (indices ``alive`` into this frame's objects) compete by score, the lowest-scoring leave first
        (ties keep the live object); with ``at_max_objects: refuse_new`` live objects always stay.
        Returns (admitted detections, highest score first; evicted objects)."""
        cap = self.settings.tracking.max_objects
        if len(alive) + len(candidates) <= cap:
            return candidates, np.zeros(0, dtype=np.int64)
        if self.settings.tracking.at_max_objects == "refuse_new":
            track_scores = np.full_like(track_scores, np.inf)
        pool = np.concatenate([track_scores[alive], det_scores[candidates]])
        kept = np.argsort(-pool, kind="stable")[:cap]  # stable: live objects come first in the pool
        admitted = candidates[kept[kept >= len(alive)] - len(alive)]
        stays = np.zeros(len(alive), np.bool_)
        stays[kept[kept < len(alive)]] = True
        evicted = alive[~stays]  # in frame order, as ``alive``
        self.counters.detections_over_limit += len(candidates) - len(admitted)
        return admitted, evicted

    def _create(self, concepts: torch.Tensor, frame: int) -> list[int]:
        """New objects of the given concepts (N,) first seen at ``frame``; returns their slots."""
        slots = self.bank.allocate(concepts.numel())
        index = upload(slots, self.device, torch.long)
        first_id = self._next_id
        self._concept[index] = concepts
        self._ids[index] = torch.arange(first_id, first_id + len(slots), device=self.device)
        self._first_frame[index] = frame
        self._last_detected[index] = frame
        self._last_occluded[index] = NEVER_OCCLUDED
        self._score[index] = 1.0
        for slot in slots:
            self._objects.slots.append(slot)
            self._objects.ids.append(self._next_id)
            self._next_id += 1
        self.counters.objects_created += len(slots)
        return slots

    def _drop(self, slots: list[int]) -> None:
        if not slots:
            return
        gone = set(slots)
        kept = [(s, i) for s, i in zip(self._objects.slots, self._objects.ids) if s not in gone]
        self._objects.slots = [s for s, _ in kept]
        self._objects.ids = [i for _, i in kept]
        self.bank.free(slots)

    def _slot_of(self, obj_id) -> int:
        if isinstance(obj_id, bool) or not isinstance(obj_id, (int, np.integer)):
            raise ValueError(f"object id must be an integer, got {obj_id!r}")
        try:
            return self._objects.slots[self._objects.ids.index(int(obj_id))]
        except ValueError:
            raise ValueError(f"unknown object id {obj_id} (live ids: {self._objects.ids})") from None

    def _boxes_fit(self, size: tuple[int, int]) -> bool:
        h, w = size
        b = self._boxes
        return bool(((b[:, 0] >= 0) & (b[:, 1] >= 0) & (b[:, 2] <= w) & (b[:, 3] <= h)).all())

    @property
    def live_ids(self) -> list[int]:
        """Ids of the objects being tracked, in creation order."""
        return list(self._objects.ids)

    def tensor_bytes(self) -> int:
        """Bytes held by the engine's per-stream tensors (memory bank + per-object state + last frame)."""
        total = self.bank.tensor_bytes()
        total += sum(
            t.numel() * t.element_size()
            for t in (
                self._ids,
                self._concept,
                self._score,
                self._first_frame,
                self._last_detected,
                self._last_occluded,
            )
        )
        if self._last is not None:
            total += sum(t.numel() * t.element_size() for t in (*self._last[0], *self._last[1]))
        return total
