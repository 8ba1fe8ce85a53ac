"""Metric functions against hand-computed cases (8x8 frames, a few objects)."""

import math

import numpy as np
import pytest

from sam3_ros.eval.metrics import FrameObjects, Scorer, matches_per_threshold, mcc
from sam3_ros.eval.tracking import TrackFrame, hota, identity_metrics

H = W = 8


def box(x0, y0, x1, y1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


A, B = box(0, 0, 4, 4), box(4, 4, 8, 8)  # two disjoint 16-pixel objects


def gt(*objs):
    """objs: (id, concept, mask)."""
    return FrameObjects([o[0] for o in objs], [o[1] for o in objs], np.stack([o[2] for o in objs]) if objs
                        else np.zeros((0, H, W), bool))


def pred(*objs):
    """objs: (id, concept, mask, score)."""
    return FrameObjects([o[0] for o in objs], [o[1] for o in objs], np.stack([o[2] for o in objs]) if objs
                        else np.zeros((0, H, W), bool), scores=[o[3] for o in objs])


def score(frames, phrases=("cat", "dog")):
    s = Scorer(list(phrases))
    for g, p in frames:
        s.add(g, p)
    return s.result()


def test_perfect_predictions_give_cgf1_100_and_hota_1():
    frames = [(gt((1, "cat", A), (2, "dog", B)), pred((7, "cat", A, 0.9), (8, "dog", B, 0.8))),
              (gt((1, "cat", A)), pred((7, "cat", A, 0.9))),  # dog absent, not predicted: a true negative
              (gt(), pred())]
    r = score(frames)
    assert r["cgF1"] == pytest.approx(100.0)
    assert r["pmF1"] == pytest.approx(1.0) and r["IL_MCC"] == pytest.approx(1.0)
    assert r["HOTA"] == pytest.approx(100.0) and r["IDF1"] == pytest.approx(100.0) and r["id_switches"] == 0
    tracks = [TrackFrame([1, 2], [7, 8], np.eye(2)), TrackFrame([1], [7], [[1.0]])]
    assert hota(tracks) == pytest.approx(1.0)
    assert r["per_concept"]["dog"]["positive_frames"] == 1 and r["per_concept"]["cat"]["gt_objects"] == 1


def test_no_predictions():
    r = score([(gt((1, "cat", A), (2, "dog", B)), pred()), (gt(), pred())])
    assert r["pmF1"] == 0.0 and r["cgF1"] == 0.0
    # IL: tp=0 fp=0 fn=2 tn=2 -> a zero marginal with errors
    assert r["IL_MCC"] == 0.0
    assert r["HOTA"] == 0.0 and r["IDF1"] == 0.0 and r["id_switches"] == 0


def test_all_negative_frames():
    r = score([(gt(), pred()), (gt(), pred())])
    assert r["pmF1"] is None and r["cgF1"] is None  # no positive datapoint: undefined, not zero
    assert r["HOTA"] is None and r["IDF1"] is None
    assert r["IL_MCC"] == 1.0
    # A false positive on an all-negative clip: IL tp=0 fp=1 fn=0 tn=3
    r = score([(gt(), pred((5, "cat", A, 0.9))), (gt(), pred())])
    assert r["IL_MCC"] == 0.0 and r["pmF1"] is None


def test_false_positive_on_absent_concept_lowers_il_mcc_not_pmf1():
    frames = [(gt((1, "cat", A)), pred((7, "cat", A, 0.9), (9, "dog", B, 0.9))),
              (gt((1, "cat", A)), pred((7, "cat", A, 0.9)))]
    r = score(frames)
    # datapoints: cat tp, tp; dog fp, tn -> MCC = (2*1 - 1*0) / sqrt(3*2*2*1)
    assert r["IL_MCC"] == pytest.approx(2 / math.sqrt(12))
    assert r["pmF1"] == pytest.approx(1.0)
    assert r["cgF1"] == pytest.approx(100 * 2 / math.sqrt(12))
    assert r["per_concept"]["dog"]["IL_MCC"] == 0.0 and r["per_concept"]["dog"]["pmF1"] is None
    assert r["per_concept"]["dog"]["HOTA"] is None


def test_id_swap_lowers_idf1_and_hota_but_not_pmf1():
    straight = [(gt((1, "cat", A), (2, "cat", B)), pred((10, "cat", A, 0.9), (11, "cat", B, 0.9)))] * 2
    swapped = [(gt((1, "cat", A), (2, "cat", B)), pred((11, "cat", A, 0.9), (10, "cat", B, 0.9)))] * 2
    r = score(straight + swapped, phrases=["cat"])
    assert r["pmF1"] == pytest.approx(1.0) and r["cgF1"] == pytest.approx(100.0)
    # best global id map keeps 2 of 4 frames per object: IDTP 4 of 8 detections
    assert r["IDF1"] == pytest.approx(50.0)
    assert r["id_switches"] == 2
    # DetA = 1; each gt id matches each pred id on 2 frames: association IoU 2 / (4 + 4 - 2) = 1/3
    assert r["HOTA"] == pytest.approx(100 * math.sqrt(1 / 3))


def test_scores_at_or_below_half_are_ignored():
    s = Scorer(["cat", "dog"])
    s.add(gt((1, "cat", A)), pred((7, "cat", A, 0.9), (8, "dog", B, 0.5), (9, "cat", B, 0.2)))
    r = s.result()
    assert r["cgF1"] == pytest.approx(100.0)
    assert s.ignored_low_score == 2
    r = score([(gt((1, "cat", A)), pred((7, "cat", A, 0.5)))])
    assert r["pmF1"] == 0.0


def test_pmf1_averages_over_iou_thresholds():
    partial = np.zeros((H, W), bool)
    partial.flat[:10] = True
    gt_mask = np.zeros((H, W), bool)
    gt_mask.flat[:14] = True  # IoU = 10 / 14 = 0.714: a match at t = 0.50 ... 0.70 (5 of 10 thresholds)
    r = score([(gt((1, "cat", gt_mask)), pred((3, "cat", partial, 0.9)))], phrases=["cat"])
    assert r["pmF1"] == pytest.approx(0.5)
    assert list(matches_per_threshold(np.array([[10 / 14]]))) == [1] * 5 + [0] * 5


def test_wrong_concept_does_not_match():
    r = score([(gt((1, "cat", A)), pred((7, "dog", A, 0.9)))])
    assert r["pmF1"] == 0.0 and r["HOTA"] == 0.0


def test_mcc_and_identity_edge_cases():
    assert mcc(5, 0, 0, 5) == 1.0 and mcc(0, 5, 5, 0) == -1.0
    assert identity_metrics([TrackFrame([], [], np.zeros((0, 0)))]) == (0.0, 0)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="masks"):
        FrameObjects([1, 2], ["cat"], np.zeros((1, H, W), bool))
    with pytest.raises(ValueError, match="noun phrase"):
        Scorer([])
    s = Scorer(["cat"])
    with pytest.raises(ValueError, match="scores"):
        s.add(gt(), gt((1, "cat", A)))
    s.add(gt((1, "cat", A)), pred((7, "cat", A, 0.9)))  # still usable
    assert s.result()["cgF1"] == pytest.approx(100.0)


def test_hota_equals_trackeval_on_random_sequences():
    """Cross-check against TrackEval's HOTA where it is installed (not a dependency: see tracking.py)."""
    trackeval_metrics = pytest.importorskip("trackeval.metrics")
    rng = np.random.default_rng(0)
    for _ in range(20):
        frames = []
        for _ in range(rng.integers(3, 12)):
            g, p = rng.choice(6, rng.integers(0, 5), replace=False), rng.choice(8, rng.integers(0, 6), replace=False)
            frames.append(TrackFrame(g, p, rng.random((len(g), len(p))) * (rng.random((len(g), len(p))) < 0.5)))
        gi = {v: i for i, v in enumerate(np.unique(np.concatenate([f.gt_ids for f in frames])))}
        pi = {v: i for i, v in enumerate(np.unique(np.concatenate([f.pred_ids for f in frames])))}
        data = dict(num_gt_dets=sum(len(f.gt_ids) for f in frames), num_tracker_dets=sum(len(f.pred_ids) for f in frames),
                    num_gt_ids=len(gi), num_tracker_ids=len(pi), similarity_scores=[f.similarity for f in frames],
                    gt_ids=[np.array([gi[v] for v in f.gt_ids], int) for f in frames],
                    tracker_ids=[np.array([pi[v] for v in f.pred_ids], int) for f in frames])
        expected = float(np.mean(trackeval_metrics.HOTA().eval_sequence(data)["HOTA"]))
        assert hota(frames) == pytest.approx(expected, abs=1e-12)
