"""Training samples from the synthetic concept world (``sam3_ros.eval.synthetic``), on seeds that the
evaluation never uses: detector images with phrases to ask, and tracker clips.

Every sample is drawn from a ``numpy`` generator, so a training run is a function of its seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..engine.mask_ops import masks_to_boxes
from ..eval.synthetic import World, WorldConfig, all_concepts, split_concept

# make-bag and the benchmarks use small seeds (0, 1, ...); training worlds come from this range only
TRAIN_SEEDS = (1_000_000, 2**31 - 1)
# image sizes of training worlds: mostly the benchmark's 4:3, some other aspect ratios and scales
SIZES = ((320, 240), (320, 240), (320, 240), (400, 300), (256, 256), (320, 200), (240, 320))
UNKNOWN_PHRASES = ("person", "forklift", "purple circle", "red", "square", "car", "green hexagon", "tree")
MIN_PIXELS = 12  # a concept is asked for when one of its objects shows at least this many pixels


def random_world(rng: np.random.Generator, frames: int = 60) -> World:
    """A world with 1-3 target concepts, 1-3 objects each, and 0-6 hard-negative distractors."""
    concepts = all_concepts()
    targets = tuple(concepts[i] for i in rng.choice(len(concepts), size=int(rng.integers(1, 4)), replace=False))
    width, height = SIZES[int(rng.integers(len(SIZES)))]
    config = WorldConfig(
        width=width,
        height=height,
        frames=frames,
        seed=int(rng.integers(*TRAIN_SEEDS)),
        concepts=targets,
        objects_per_concept=int(rng.integers(1, 4)),
        distractors=int(rng.integers(0, 7)),
    )
    return World(config)


@dataclass
class PhraseTarget:
    """What one prompt should find in one image: its objects' visible masks (G, H, W) bool. A prompt is a
    phrase ("" for none) and optionally exemplar boxes (K, 4) xyxy pixels, positive or negative;
    ``text_twin`` is then a phrase that asks for the same objects (the concept's, or an unknown word)."""

    phrase: str
    masks: np.ndarray
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    box_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    text_twin: str = ""

    @property
    def present(self) -> bool:
        return len(self.masks) > 0


BACKGROUND = len(all_concepts())  # class of pixels no object covers in ``DetectorSample.concepts``


@dataclass
class DetectorSample:
    image: np.ndarray  # (H, W, 3) uint8
    targets: list[PhraseTarget]
    concepts: np.ndarray  # (H, W) int64: index in ``all_concepts()`` of the object seen there, or BACKGROUND


def _hard_negative_order(present: set[str], rng: np.random.Generator) -> list[str]:
    """Absent concepts, those sharing a colour or shape with a present one first (in random order)."""
    colors = {split_concept(c)[0] for c in present}
    shapes = {split_concept(c)[1] for c in present}
    absent = [c for c in all_concepts() if c not in present]
    hard = [c for c in absent if split_concept(c)[0] in colors or split_concept(c)[1] in shapes]
    easy = [c for c in absent if c not in hard]
    return [hard[i] for i in rng.permutation(len(hard))] + [easy[i] for i in rng.permutation(len(easy))]


def detector_sample(rng: np.random.Generator, phrases: int) -> DetectorSample:
    """One frame of a random world and ``phrases`` phrases to ask of it: about half present ones, the
    rest absent (hard negatives first), now and then a phrase outside the vocabulary."""
    world = random_world(rng)
    frame = world.frame(int(rng.integers(world.config.frames)))
    by_concept: dict[str, list[np.ndarray]] = {}
    for concept, mask in zip(frame.concepts, frame.masks):
        by_concept.setdefault(concept, []).append(mask)
    # a concept seen only as slivers is asked neither as present nor as absent
    present = sorted(c for c, masks in by_concept.items() if max(m.sum() for m in masks) >= MIN_PIXELS)
    chosen = [present[i] for i in rng.permutation(len(present))][: max(1, phrases // 2)] if present else []
    negatives = _hard_negative_order(set(frame.concepts), rng)
    while len(chosen) < phrases:
        if rng.random() < 0.1:
            chosen.append(UNKNOWN_PHRASES[int(rng.integers(len(UNKNOWN_PHRASES)))])
        else:
            chosen.append(negatives.pop(0))
    h, w = frame.image.shape[:2]
    empty = np.zeros((0, h, w), bool)
    targets = [PhraseTarget(p, np.stack(by_concept[p]) if p in present else empty) for p in dict.fromkeys(chosen)]
    return DetectorSample(image=frame.image, targets=targets, concepts=_concept_map(frame))


def _concept_map(frame) -> np.ndarray:
    """(H, W) index in ``all_concepts()`` of the object seen at each pixel, or BACKGROUND."""
    labels = np.full(frame.image.shape[:2], BACKGROUND, np.int64)
    index = {c: i for i, c in enumerate(all_concepts())}
    for concept, mask in zip(frame.concepts, frame.masks):
        labels[mask] = index[concept]
    return labels


EXEMPLAR_KINDS = ("positive", "positive+negative", "negative", "phrase+negative")
MIN_EXEMPLAR_PIXELS = 4 * MIN_PIXELS  # an exemplar box is drawn on an object showing at least this much


def exemplar_sample(rng: np.random.Generator, prompts: int) -> DetectorSample:
    """One frame and ``prompts`` exemplar prompts of it (SAM 3's visual prompts), each of a random kind:

    - ``positive``: no phrase, a box on one or two objects of a concept -> every object of that concept;
    - ``positive+negative``: the same plus a negative box on an object of another concept -> the same;
    - ``negative``: no phrase, only a negative box -> nothing;
    - ``phrase+negative``: a present concept's phrase and a negative box on another concept -> the phrase's
      objects (a negative exemplar never takes away what the phrase asks for).

    Another concept is one sharing a colour or a shape with the positive one where the frame has one."""
    while True:
        world = random_world(rng)
        frame = world.frame(int(rng.integers(world.config.frames)))
        by_concept: dict[str, list[np.ndarray]] = {}
        for concept, mask in zip(frame.concepts, frame.masks):
            by_concept.setdefault(concept, []).append(mask)
        boxable = {c: [m for m in masks if m.sum() >= MIN_EXEMPLAR_PIXELS] for c, masks in by_concept.items()}
        boxable = {c: masks for c, masks in boxable.items() if masks}
        if boxable:
            break
    h, w = frame.image.shape[:2]
    empty = np.zeros((0, h, w), bool)
    concepts = sorted(boxable)
    targets = []
    for _ in range(prompts):
        positive = concepts[int(rng.integers(len(concepts)))]
        others = [c for c in concepts if c != positive]
        kind = EXEMPLAR_KINDS[int(rng.integers(len(EXEMPLAR_KINDS)))] if others else "positive"
        hard = [c for c in others if set(split_concept(c)) & set(split_concept(positive))]
        negative = (hard or others)[int(rng.integers(len(hard or others)))] if others else None
        boxes, labels = [], []
        if kind.startswith("positive"):
            picks = rng.permutation(len(boxable[positive]))[: 1 + int(rng.random() < 0.3)]
            boxes += [boxable[positive][i] for i in picks]
            labels += [True] * len(picks)
        if kind.endswith("negative"):
            boxes.append(boxable[negative][int(rng.integers(len(boxable[negative])))])
            labels.append(False)
        if kind == "negative":
            masks, twin = empty, UNKNOWN_PHRASES[int(rng.integers(len(UNKNOWN_PHRASES)))]
        else:
            masks, twin = np.stack(by_concept[positive]), positive
        boxes = masks_to_boxes(torch.from_numpy(np.stack(boxes))).numpy()  # the boxed objects' masks -> boxes
        targets.append(
            PhraseTarget(positive if kind == "phrase+negative" else "", masks, boxes, np.array(labels), text_twin=twin)
        )
    return DetectorSample(image=frame.image, targets=targets, concepts=_concept_map(frame))


@dataclass
class TrackerClip:
    """``frames`` (T, H, W, 3) uint8 of one world; ``masks`` (T, N, H, W) bool visible masks of the N
    objects visible at the first frame (empty where an object is hidden or gone)."""

    frames: np.ndarray
    masks: np.ndarray


def tracker_clip(rng: np.random.Generator, length: int, max_objects: int, vanishing: float = 0.0) -> TrackerClip:
    """A clip of ``length`` frames, 1-3 world frames apart (faster motion than the camera rate, as
    after dropped frames), starting where at least one object is visible.

    With probability ``vanishing`` the clip is one where an object visible at its start is gone on a later
    frame (out of view, fully covered, or gone from the world), and the objects that go come first, so that
    ``max_objects`` keeps them: the tracker's object score learns to say that an object is gone, which
    clips as drawn rarely show."""
    want_gone = vanishing > 0 and rng.random() < vanishing  # no draw at 0: earlier recipes repeat exactly
    while True:
        world = random_world(rng, frames=90)
        stride = int(rng.integers(1, 4))
        start = int(rng.integers(0, world.config.frames - stride * (length - 1)))
        frames = [world.frame(start + stride * i) for i in range(length)]
        first = frames[0]
        ids = [i for i, m in zip(first.ids, first.masks) if m.sum() >= 4 * MIN_PIXELS]
        gone = [i for i in ids if any(i not in f.ids for f in frames[1:])] if want_gone else []
        if ids and (gone or not want_gone):
            break
    if want_gone:
        stay = [i for i in ids if i not in gone]
        ids = [gone[k] for k in rng.permutation(len(gone))] + [stay[k] for k in rng.permutation(len(stay))]
    else:
        ids = [ids[k] for k in rng.permutation(len(ids))]
    ids = ids[:max_objects]
    h, w = first.image.shape[:2]
    masks = np.zeros((length, len(ids), h, w), bool)
    for t, f in enumerate(frames):
        index = {int(k): j for j, k in enumerate(f.ids)}
        for n, obj in enumerate(ids):
            if int(obj) in index:
                masks[t, n] = f.masks[index[int(obj)]]
    return TrackerClip(frames=np.stack([f.image for f in frames]), masks=masks)
