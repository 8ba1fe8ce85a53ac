"""The SAM 3 paper's concept-segmentation metrics, plus tracking metrics, accumulated frame by frame.

cgF1, pmF1 and IL_MCC are computed as the official SAM 3 evaluator computes them (``sam3/eval/cgf1_eval.py``,
class ``CGF1Evaluator``, in the ``sam3`` 0.1.4 package), conventions and smoothing constants included;
tests/test_metrics.py runs that file on the same inputs and compares.

A *datapoint* is one (frame, noun phrase) pair. It is positive when the ground truth has at least one
object of that phrase in the frame. Only predictions with score >= 0.5 count, everywhere.

- Matching, per datapoint: one Hungarian assignment between the phrase's predictions and its ground
  truth that maximizes the summed mask IoU (float64, as pycocotools computes it); at each threshold t in
  0.50:0.05:0.95 (pycocotools' values) the assigned pairs with IoU >= t are the true positives, the other
  predictions false positives and the other ground-truth objects false negatives.
- pmF1: positive micro F1. TP/FP/FN are summed over positive datapoints; at each t, precision
  TP / (TP + FP + 1e-4), recall TP / (TP + FN + 1e-4), F1 = 2PR / (P + R + 1e-4); then averaged over t.
  The smoothing puts a perfect result slightly under 1 (0.99985 for one object) and nothing to score at 0.
- IL_MCC: Matthews correlation of "the phrase is present" (ground truth) vs "at least one prediction of
  the phrase" over all datapoints, (TP*TN - FP*FN) / (sqrt(product of the four marginals) + 1e-6): 0 when
  the confusion has a zero row or column (for example a phrase present in every frame).
- cgF1 = 100 * the mean over t of pmF1(t) * IL_MCC.
- Per concept: the same figures over that phrase's datapoints alone.
- HOTA, IDF1 (percent) and ID switches over the whole clip (:mod:`.tracking`); ground truth and
  predictions only match within the same phrase.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..codec import rle
from .tracking import TrackFrame, hota, identity_metrics

# pycocotools' thresholds, to the last bit (the 0.90 one is 0.8999999999999999)
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
SCORE_THRESHOLD = 0.5  # predictions under this score are ignored (counted)


@dataclass
class FrameObjects:
    """Objects in one frame: ground truth (``scores`` None) or predictions."""

    ids: np.ndarray  # (N,) int64
    concepts: list[str]
    masks: np.ndarray  # (N, H, W) bool
    scores: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids, np.int64).reshape(-1)
        self.masks = np.asarray(self.masks, bool)
        if self.masks.ndim != 3 or len(self.masks) != len(self.ids) or len(self.concepts) != len(self.ids):
            raise ValueError(
                f"need N ids, N concepts and (N, H, W) masks; got {len(self.ids)} ids, "
                f"{len(self.concepts)} concepts, masks of shape {self.masks.shape}"
            )
        if self.scores is not None:
            self.scores = np.asarray(self.scores, float).reshape(-1)
            if len(self.scores) != len(self.ids):
                raise ValueError(f"{len(self.scores)} scores for {len(self.ids)} objects")

    @classmethod
    def from_message(cls, msg) -> "FrameObjects":
        """Predictions from a ``sam3_ros/msg/InstanceArray`` (masks decoded from RLE)."""
        items = list(msg.instances)
        sizes = {(int(i.mask_height), int(i.mask_width)) for i in items}
        if len(sizes) > 1:
            raise ValueError(f"instances of one message have different mask sizes: {sorted(sizes)}")
        h, w = sizes.pop() if sizes else (0, 0)
        masks = np.stack([rle.decode(i.mask_rle, h, w) for i in items]) if items else np.zeros((0, h, w), bool)
        return cls(
            ids=[i.id for i in items], concepts=[i.concept for i in items], masks=masks, scores=[i.score for i in items]
        )

    def subset(self, keep: np.ndarray) -> "FrameObjects":
        keep = np.asarray(keep, bool)
        return FrameObjects(
            self.ids[keep],
            [c for c, k in zip(self.concepts, keep) if k],
            self.masks[keep],
            None if self.scores is None else self.scores[keep],
        )


def f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """F1 per threshold, smoothed as the official evaluator does (0 when there is nothing to score)."""
    # The official expressions, term for term, so the floating-point results are the same bits.
    precision = tp / (tp + fp + 1e-4)
    recall = tp / (tp + fn + 1e-4)
    return 2 * precision * recall / (precision + recall + 1e-4)


def mcc(tp: int, fp: int, fn: int, tn: int) -> float:
    """Matthews correlation, smoothed as the official evaluator does: 0 when it is undefined."""
    return float(tp * tn - fp * fn) / (
        (float(tp + fp) * float(tp + fn) * float(tn + fp) * float(tn + fn)) ** 0.5 + 1e-6
    )


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every mask in ``a`` (N, H, W) with every mask in ``b`` (M, H, W), both boolean; (N, M) float64.

    Intersection and union are exact integers and the quotient is taken in float64, as pycocotools does
    (0 where the masks do not overlap, empty masks included).
    """
    # float32 counts are exact up to 2**24 pixels and take half the memory of float64
    pixels = int(np.prod(a.shape[1:]))
    count_type = np.float32 if pixels < 2**24 else np.float64
    fa = a.reshape(len(a), pixels).astype(count_type)
    fb = b.reshape(len(b), pixels).astype(count_type)
    inter = (fa @ fb.T).astype(np.float64)
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    return np.where(inter > 0, inter / np.maximum(union, 1), 0.0)


def best_iou(truth: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per mask of ``truth`` (N, H, W), its best ``mask_iou`` with any of ``masks`` (M, H, W); zeros when M is 0."""
    if not len(masks) or not len(truth):
        return np.zeros(len(truth))
    return mask_iou(truth, masks).max(1)


def true_positives(iou: np.ndarray) -> np.ndarray:
    """True positives of one datapoint at each t in ``IOU_THRESHOLDS``; ``iou`` is (predictions, ground truth).

    One assignment maximizes the summed IoU; its pairs with IoU >= t count at t. The matrix has the
    official orientation and order, so that ties between equally good assignments resolve the same way.
    """
    rows, cols = linear_sum_assignment(-iou)
    return (iou[rows, cols][None, :] >= IOU_THRESHOLDS[:, None]).sum(1)


@dataclass
class _ConceptCounts:
    tp: np.ndarray = field(default_factory=lambda: np.zeros(len(IOU_THRESHOLDS), np.int64))
    fp: np.ndarray = field(default_factory=lambda: np.zeros(len(IOU_THRESHOLDS), np.int64))
    fn: np.ndarray = field(default_factory=lambda: np.zeros(len(IOU_THRESHOLDS), np.int64))
    image: np.ndarray = field(default_factory=lambda: np.zeros(4, np.int64))  # IL tp, fp, fn, tn
    positive_frames: int = 0
    gt_objects: set = field(default_factory=set)

    def add(self, other: "_ConceptCounts") -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.image += other.image
        self.positive_frames += other.positive_frames
        self.gt_objects |= other.gt_objects

    def concept_metrics(self) -> dict:
        pm = f1(self.tp, self.fp, self.fn)
        il = mcc(*[int(v) for v in self.image])
        return {"cgF1": 100.0 * float(np.mean(pm * il)), "pmF1": float(np.mean(pm)), "IL_MCC": il}


class Scorer:
    """Accumulates ground truth vs predictions frame by frame, for a fixed list of noun phrases."""

    def __init__(self, phrases: list[str]):
        if not phrases:
            raise ValueError("scoring needs at least one noun phrase")
        self.phrases = list(dict.fromkeys(phrases))
        self._counts = {p: _ConceptCounts() for p in self.phrases}
        # Per frame, for the tracking metrics (which need two passes over the clip): ids, phrase indices
        # and only the non-zero IoUs, so a long clip costs a few bytes per object and frame.
        self._tracks: list[tuple[np.ndarray, ...]] = []
        self.frames = 0
        self.ignored_low_score = 0  # predictions with score under 0.5
        self.ignored_other_concept = 0  # predictions of a phrase outside the scored list

    def add(self, gt: FrameObjects, pred: FrameObjects) -> None:
        """Score one frame."""
        if pred.scores is None:
            raise ValueError("predictions need scores")
        if len(pred.ids) and len(gt.ids) and pred.masks.shape[1:] != gt.masks.shape[1:]:
            raise ValueError(f"prediction masks are {pred.masks.shape[1:]}, ground truth {gt.masks.shape[1:]}")
        confident = pred.scores >= SCORE_THRESHOLD
        known = np.array([c in self._counts for c in pred.concepts], bool)
        self.ignored_low_score += int((~confident).sum())
        self.ignored_other_concept += int((confident & ~known).sum())
        pred = pred.subset(confident & known)
        gt = gt.subset(np.array([c in self._counts for c in gt.concepts], bool))
        if len(gt.ids) and len(pred.ids):
            iou = mask_iou(gt.masks, pred.masks)
        else:
            iou = np.zeros((len(gt.ids), len(pred.ids)))
        same = np.array(gt.concepts, object)[:, None] == np.array(pred.concepts, object)[None, :]
        iou = np.where(same.reshape(iou.shape), iou, 0.0)
        for phrase, counts in self._counts.items():
            g = np.array([c == phrase for c in gt.concepts], bool)
            p = np.array([c == phrase for c in pred.concepts], bool)
            n_gt, n_pred = int(g.sum()), int(p.sum())
            counts.image[_il_cell(n_gt, n_pred)] += 1
            if n_gt:
                matched = true_positives(iou[np.ix_(g, p)].T)
                counts.tp += matched
                counts.fp += n_pred - matched
                counts.fn += n_gt - matched
                counts.positive_frames += 1
                counts.gt_objects.update(gt.ids[g].tolist())
        rows, cols = np.nonzero(iou)
        index = {p: i for i, p in enumerate(self.phrases)}
        self._tracks.append(
            (
                gt.ids,
                pred.ids,
                np.array([index[c] for c in gt.concepts], np.int16),
                np.array([index[c] for c in pred.concepts], np.int16),
                rows.astype(np.int32),
                cols.astype(np.int32),
                iou[rows, cols],
            )
        )
        self.frames += 1

    def _track_frames(self, phrase: str | None) -> list[TrackFrame]:
        """The clip as tracking frames, all phrases together or one phrase."""
        out = []
        for gt_ids, pred_ids, gc, pc, rows, cols, values in self._tracks:
            sim = np.zeros((len(gt_ids), len(pred_ids)))
            sim[rows, cols] = values
            if phrase is not None:
                g, p = gc == self.phrases.index(phrase), pc == self.phrases.index(phrase)
                gt_ids, pred_ids, sim = gt_ids[g], pred_ids[p], sim[np.ix_(g, p)]
            out.append(TrackFrame(gt_ids, pred_ids, sim))
        return out

    def _tracking(self, phrase: str | None) -> dict:
        """HOTA and IDF1 are undefined (None) without ground-truth objects, like pmF1."""
        frames = self._track_frames(phrase)
        idf1, switches = identity_metrics(frames)
        if not any(len(f.gt_ids) for f in frames):
            return {"HOTA": None, "IDF1": None, "id_switches": switches}
        return {"HOTA": 100.0 * hota(frames), "IDF1": 100.0 * idf1, "id_switches": switches}

    def result(self) -> dict:
        """Overall metrics and ``per_concept`` (HOTA, IDF1 in percent; cgF1 in percent; pmF1 in [0, 1])."""
        total = _ConceptCounts()
        per_concept = {}
        for phrase, counts in self._counts.items():
            total.add(counts)
            per_concept[phrase] = {
                **counts.concept_metrics(),
                **self._tracking(phrase),
                "positive_frames": counts.positive_frames,
                "gt_objects": len(counts.gt_objects),
            }
        return {**total.concept_metrics(), **self._tracking(None), "per_concept": per_concept}


def _il_cell(n_gt: int, n_pred: int) -> int:
    """Index into the image-level confusion counts (tp, fp, fn, tn)."""
    if n_gt:
        return 0 if n_pred else 2
    return 1 if n_pred else 3
