"""Tracking metrics over a sequence: HOTA (Luiten et al., IJCV 2021), IDF1 and ID switches.

IDF1 and ID switches come from ``motmetrics``. HOTA is written here, following TrackEval's
``metrics/hota.py`` step for step: the ``trackeval`` wheel on PyPI requires the GUI build of OpenCV
(``opencv-python``, which needs libGL and replaces the headless ``cv2`` the package uses), so it is
not a runtime dependency; ``make test`` installs it without its dependencies and checks this HOTA
against TrackEval's on random sequences. Results are fractions in [0, 1]; reports show them as percentages.

A sequence is a list of :class:`TrackFrame`: ground-truth ids, predicted ids and their similarity
(mask IoU, 0 between objects of different concepts) on each frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

HOTA_ALPHAS = np.arange(0.05, 0.99, 0.05)  # the 19 localization thresholds HOTA averages over
MATCH_IOU = 0.5  # IDF1 / ID switches: a prediction matches a ground-truth object above this IoU
_EPS = np.finfo(float).eps


@dataclass
class TrackFrame:
    """One frame of a sequence: ``similarity[i, j]`` between ground truth ``gt_ids[i]`` and prediction
    ``pred_ids[j]`` (ids are any integers, stable over the sequence)."""

    gt_ids: np.ndarray
    pred_ids: np.ndarray
    similarity: np.ndarray

    def __post_init__(self) -> None:
        self.gt_ids = np.asarray(self.gt_ids, np.int64).reshape(-1)
        self.pred_ids = np.asarray(self.pred_ids, np.int64).reshape(-1)
        self.similarity = np.asarray(self.similarity, float).reshape(len(self.gt_ids), len(self.pred_ids))


def hota(frames: list[TrackFrame]) -> float:
    """HOTA averaged over the alpha thresholds 0.05..0.95 (0 when there is nothing to match)."""
    gt_index = {g: i for i, g in enumerate(np.unique(np.concatenate([f.gt_ids for f in frames] or [[]])))}
    pred_index = {p: i for i, p in enumerate(np.unique(np.concatenate([f.pred_ids for f in frames] or [[]])))}
    if not gt_index or not pred_index:
        return 0.0
    seq = [
        (
            np.array([gt_index[g] for g in f.gt_ids], np.int64),
            np.array([pred_index[p] for p in f.pred_ids], np.int64),
            f.similarity,
        )
        for f in frames
    ]
    # Global alignment: how often each (gt, pred) pair is matched, softly, over the whole sequence.
    potential = np.zeros((len(gt_index), len(pred_index)))
    gt_count, pred_count = np.zeros((len(gt_index), 1)), np.zeros((1, len(pred_index)))
    for g, p, sim in seq:
        denom = sim.sum(0)[None, :] + sim.sum(1)[:, None] - sim
        soft = np.where(denom > _EPS, sim / np.maximum(denom, _EPS), 0.0)
        potential[g[:, None], p[None, :]] += soft
        gt_count[g] += 1
        pred_count[0, p] += 1
    alignment = potential / (gt_count + pred_count - potential)

    tp, fn, fp = (np.zeros(len(HOTA_ALPHAS)) for _ in range(3))
    matches = np.zeros((len(HOTA_ALPHAS), len(gt_index), len(pred_index)))
    for g, p, sim in seq:
        if len(g) == 0 or len(p) == 0:
            fn += len(g)
            fp += len(p)
            continue
        rows, cols = linear_sum_assignment(-(alignment[g[:, None], p[None, :]] * sim))
        for a, alpha in enumerate(HOTA_ALPHAS):
            ok = sim[rows, cols] >= alpha - _EPS
            n = int(ok.sum())
            tp[a] += n
            fn[a] += len(g) - n
            fp[a] += len(p) - n
            matches[a, g[rows[ok]], p[cols[ok]]] += 1
    ass_iou = matches / np.maximum(1, gt_count[None] + pred_count[None] - matches)
    ass_a = (matches * ass_iou).sum((1, 2)) / np.maximum(1, tp)
    det_a = tp / np.maximum(1, tp + fn + fp)
    return float(np.mean(np.sqrt(det_a * ass_a)))


def identity_metrics(frames: list[TrackFrame]) -> tuple[float, int]:
    """(IDF1 in [0, 1], number of ID switches) with motmetrics, matching at IoU >= 0.5.

    IDF1 is 0 when there is nothing to match (motmetrics gives NaN)."""
    try:
        import motmetrics
    except ImportError:
        raise ImportError("IDF1 and ID switches need motmetrics: pip install 'sam3_ros[eval]'") from None

    acc = motmetrics.MOTAccumulator(auto_id=True)
    for f in frames:
        distance = np.where(f.similarity >= MATCH_IOU, 1.0 - f.similarity, np.nan)
        acc.update(f.gt_ids, f.pred_ids, distance)
    summary = motmetrics.metrics.create().compute(acc, metrics=["idf1", "num_switches"])
    idf1 = float(summary["idf1"].iloc[0])
    return (0.0 if np.isnan(idf1) else idf1), int(summary["num_switches"].iloc[0])
