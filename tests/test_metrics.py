"""Metric functions against hand-computed cases (8x8 frames, a few objects) and against the official evaluators:
SAM 3's ``cgf1_eval.py`` for cgF1 / pmF1 / IL_MCC, TrackEval for HOTA."""

import importlib.util
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from sam3_ros.eval.metrics import FrameObjects, Scorer, best_iou, mask_iou, mcc, true_positives
from sam3_ros.eval.tracking import TrackFrame, hota, identity_metrics

H = W = 8
# `make test` downloads it (see the Makefile); only sam3/eval/cgf1_eval.py is read from it
OFFICIAL_SAM3_WHEEL = Path(__file__).resolve().parents[1] / ".official" / "sam3-0.1.4-py3-none-any.whl"


def box(x0, y0, x1, y1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def first_pixels(n):
    m = np.zeros((H, W), bool)
    m.flat[:n] = True
    return m


A, B = box(0, 0, 4, 4), box(4, 4, 8, 8)  # two disjoint 16-pixel objects


def gt(*objs):
    """objs: (id, concept, mask)."""
    return FrameObjects(
        [o[0] for o in objs],
        [o[1] for o in objs],
        np.stack([o[2] for o in objs]) if objs else np.zeros((0, H, W), bool),
    )


def pred(*objs):
    """objs: (id, concept, mask, score)."""
    return FrameObjects(
        [o[0] for o in objs],
        [o[1] for o in objs],
        np.stack([o[2] for o in objs]) if objs else np.zeros((0, H, W), bool),
        scores=[o[3] for o in objs],
    )


def score(frames, phrases=("cat", "dog")):
    s = Scorer(list(phrases))
    for g, p in frames:
        s.add(g, p)
    return s.result()


def official_f1(tp, fp, fn):
    """F1 from TP/FP/FN counts derived by hand, with the official smoothing (cgf1_eval.py, accumulate)."""
    precision, recall = tp / (tp + fp + 1e-4), tp / (tp + fn + 1e-4)
    return 2 * precision * recall / (precision + recall + 1e-4)


def official_pm_f1(tp_per_threshold, n_pred, n_gt):
    """pmF1 of datapoints whose predictions and ground truth add up to n_pred and n_gt."""
    tp = np.array(tp_per_threshold)
    return float(np.mean(official_f1(tp, n_pred - tp, n_gt - tp)))


def official_mcc(tp, fp, fn, tn):
    return (tp * tn - fp * fn) / (math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)) + 1e-6)


def test_perfect_predictions_score_just_under_100_and_hota_1():
    frames = [
        (gt((1, "cat", A), (2, "dog", B)), pred((7, "cat", A, 0.9), (8, "dog", B, 0.8))),
        (gt((1, "cat", A)), pred((7, "cat", A, 0.9))),  # dog absent, not predicted: a true negative
        (gt(), pred()),
    ]
    r = score(frames)
    # TP 3, FP 0, FN 0 at every threshold; image level tp 3, tn 3
    assert r["pmF1"] == pytest.approx(official_f1(3, 0, 0), abs=1e-12) and r["pmF1"] == pytest.approx(1, abs=1e-4)
    assert r["IL_MCC"] == pytest.approx(9 / (9 + 1e-6), abs=1e-12)
    assert r["cgF1"] == pytest.approx(100 * official_f1(3, 0, 0) * 9 / (9 + 1e-6), abs=1e-10)
    assert r["HOTA"] == pytest.approx(100.0) and r["IDF1"] == pytest.approx(100.0) and r["id_switches"] == 0
    tracks = [TrackFrame([1, 2], [7, 8], np.eye(2)), TrackFrame([1], [7], [[1.0]])]
    assert hota(tracks) == pytest.approx(1.0)
    assert r["per_concept"]["dog"]["positive_frames"] == 1 and r["per_concept"]["cat"]["gt_objects"] == 1


def test_no_predictions():
    r = score([(gt((1, "cat", A), (2, "dog", B)), pred()), (gt(), pred())])
    assert r["pmF1"] == 0.0 and r["cgF1"] == 0.0
    # IL: tp=0 fp=0 fn=2 tn=2 -> a zero column: 0
    assert r["IL_MCC"] == 0.0
    assert r["HOTA"] == 0.0 and r["IDF1"] == 0.0 and r["id_switches"] == 0


def test_empty_frames_score_zero():
    """Nothing to score: the official figures are 0 (pmF1 0 / 1e-4, MCC 0 / 1e-6), not undefined."""
    r = score([(gt(), pred()), (gt(), pred())])
    assert r["pmF1"] == 0.0 and r["cgF1"] == 0.0 and r["IL_MCC"] == 0.0
    assert r["HOTA"] is None and r["IDF1"] is None
    # A false positive on an all-negative clip: IL tp=0 fp=1 fn=0 tn=3
    r = score([(gt(), pred((5, "cat", A, 0.9))), (gt(), pred())])
    assert r["IL_MCC"] == 0.0 and r["pmF1"] == 0.0


def test_absent_phrase_with_a_confident_prediction_lowers_il_mcc_not_pmf1():
    frames = [
        (gt((1, "cat", A)), pred((7, "cat", A, 0.9), (9, "dog", B, 0.9))),
        (gt((1, "cat", A)), pred((7, "cat", A, 0.9))),
    ]
    r = score(frames)
    # datapoints: cat tp, tp; dog fp, tn; the dog FP is on a negative datapoint, outside pmF1
    assert r["IL_MCC"] == pytest.approx(official_mcc(2, 1, 0, 1), abs=1e-12)
    assert r["IL_MCC"] == pytest.approx(2 / math.sqrt(12), abs=1e-6)
    assert r["pmF1"] == pytest.approx(official_f1(2, 0, 0), abs=1e-12)
    assert r["cgF1"] == pytest.approx(100 * official_f1(2, 0, 0) * official_mcc(2, 1, 0, 1), abs=1e-10)
    dog = r["per_concept"]["dog"]  # fp 1, tn 1: no positive datapoint, a zero column
    assert dog["IL_MCC"] == 0.0 and dog["pmF1"] == 0.0 and dog["cgF1"] == 0.0 and dog["HOTA"] is None
    assert dog["positive_frames"] == 0


def test_phrase_present_in_every_frame_has_il_mcc_0():
    frames = [(gt((1, "cat", A)), pred((7, "cat", A, 0.9)))] * 3
    r = score(frames, phrases=["cat"])
    # only image-level true positives: a zero row and column, so MCC 0 and cgF1 0 despite perfect masks
    assert r["pmF1"] == pytest.approx(official_f1(3, 0, 0), abs=1e-12)
    assert r["IL_MCC"] == 0.0 and r["cgF1"] == 0.0
    r = score(frames)  # with "dog", absent and not predicted: tp 3, tn 3 over all datapoints
    assert r["IL_MCC"] == pytest.approx(9 / (9 + 1e-6), abs=1e-12) and r["cgF1"] == pytest.approx(100, abs=0.01)
    assert r["per_concept"]["cat"]["IL_MCC"] == 0.0 and r["per_concept"]["cat"]["cgF1"] == 0.0


def test_prediction_straddling_two_objects_is_matched_by_summed_iou():
    left, right = box(0, 0, 4, 4), box(4, 0, 8, 4)  # side by side, 16 pixels each
    straddling = box(0, 0, 7, 4)  # 28 pixels: IoU 16/28 = 0.571 with left, 12/32 = 0.375 with right
    half = box(0, 0, 2, 4)  # IoU 8/16 = 0.5 with left (exactly on the first threshold), 0 with right
    # The summed IoU is largest with straddling-right + half-left (0.875 > 0.571): a TP at t = 0.50 only.
    # Counting matches per threshold instead would also take straddling-left at 0.55.
    assert true_positives(np.array([[16 / 28, 12 / 32], [8 / 16, 0.0]])).tolist() == [1] + [0] * 9
    assert mask_iou(np.stack([straddling, half]), np.stack([left, right])).tolist() == [
        [16 / 28, 12 / 32],
        [8 / 16, 0.0],
    ]
    frames = [
        (gt((1, "cat", left), (2, "cat", right)), pred((7, "cat", straddling, 0.9), (8, "cat", half, 0.9))),
        (gt(), pred()),
    ]
    r = score(frames, phrases=["cat"])
    assert r["pmF1"] == pytest.approx(official_pm_f1([1] + [0] * 9, 2, 2), abs=1e-12)
    assert r["pmF1"] == pytest.approx(official_f1(1, 1, 1) / 10, abs=1e-12)  # ~0.05 (0.1 with per-threshold counts)
    assert r["IL_MCC"] == pytest.approx(1 / (1 + 1e-6), abs=1e-12)


def test_ious_exactly_on_thresholds_count_at_that_threshold():
    truth = first_pixels(20)
    for kept, expected in [(13, 4), (14, 5), (18, 9), (19, 10)]:  # IoU 0.65, 0.70, 0.90, 0.95
        iou = mask_iou(first_pixels(kept)[None], truth[None])
        assert iou[0, 0] == kept / 20
        assert true_positives(iou).tolist() == [1] * expected + [0] * (10 - expected)
    frames = [(gt((1, "cat", truth)), pred((2, "cat", first_pixels(kept), 0.9))) for kept in (13, 14, 18, 19)]
    r = score(frames, phrases=["cat"])
    assert r["pmF1"] == pytest.approx(official_pm_f1([4, 4, 4, 4, 3, 2, 2, 2, 2, 1], 4, 4), abs=1e-12)


def test_pmf1_averages_over_iou_thresholds():
    # IoU = 10 / 14 = 0.714: a match at t = 0.50 ... 0.70 (5 of 10 thresholds)
    r = score([(gt((1, "cat", first_pixels(14))), pred((3, "cat", first_pixels(10), 0.9)))], phrases=["cat"])
    assert r["pmF1"] == pytest.approx(official_f1(1, 0, 0) / 2, abs=1e-12)
    assert true_positives(np.array([[10 / 14]])).tolist() == [1] * 5 + [0] * 5


def test_score_of_exactly_half_counts():
    s = Scorer(["cat", "dog"])
    s.add(gt((1, "cat", A)), pred((7, "cat", A, np.float32(0.5)), (8, "dog", B, 0.4999), (9, "cat", B, 0.2)))
    r = s.result()
    assert s.ignored_low_score == 2
    # cat: TP 1 at every threshold; dog: its only prediction is under 0.5, a true negative
    assert r["pmF1"] == pytest.approx(official_f1(1, 0, 0), abs=1e-12) and r["pmF1"] == pytest.approx(0.99985, abs=1e-6)
    assert r["IL_MCC"] == pytest.approx(1 / (1 + 1e-6), abs=1e-12)
    r = score([(gt((1, "cat", A)), pred((7, "cat", A, 0.4999)))])
    assert r["pmF1"] == 0.0


def test_id_swap_lowers_idf1_and_hota_but_not_pmf1():
    straight = [(gt((1, "cat", A), (2, "cat", B)), pred((10, "cat", A, 0.9), (11, "cat", B, 0.9)))] * 2
    swapped = [(gt((1, "cat", A), (2, "cat", B)), pred((11, "cat", A, 0.9), (10, "cat", B, 0.9)))] * 2
    r = score(straight + swapped, phrases=["cat"])
    assert r["pmF1"] == pytest.approx(official_f1(8, 0, 0), abs=1e-12)
    # best global id map keeps 2 of 4 frames per object: IDTP 4 of 8 detections
    assert r["IDF1"] == pytest.approx(50.0)
    assert r["id_switches"] == 2
    # DetA = 1; each gt id matches each pred id on 2 frames: association IoU 2 / (4 + 4 - 2) = 1/3
    assert r["HOTA"] == pytest.approx(100 * math.sqrt(1 / 3))


def test_wrong_concept_does_not_match():
    r = score([(gt((1, "cat", A)), pred((7, "dog", A, 0.9)))])
    assert r["pmF1"] == 0.0 and r["HOTA"] == 0.0


def test_mcc_and_identity_edge_cases():
    assert mcc(5, 0, 0, 5) == pytest.approx(25 / (25 + 1e-6), abs=1e-15)
    assert mcc(0, 5, 5, 0) == pytest.approx(-1, abs=1e-6)
    assert mcc(3, 0, 0, 0) == 0.0 and mcc(0, 0, 0, 4) == 0.0 and mcc(2, 0, 1, 0) == 0.0  # undefined: 0
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
    assert s.result()["pmF1"] == pytest.approx(official_f1(1, 0, 0), abs=1e-12)


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
        data = dict(
            num_gt_dets=sum(len(f.gt_ids) for f in frames),
            num_tracker_dets=sum(len(f.pred_ids) for f in frames),
            num_gt_ids=len(gi),
            num_tracker_ids=len(pi),
            similarity_scores=[f.similarity for f in frames],
            gt_ids=[np.array([gi[v] for v in f.gt_ids], int) for f in frames],
            tracker_ids=[np.array([pi[v] for v in f.pred_ids], int) for f in frames],
        )
        expected = float(np.mean(trackeval_metrics.HOTA().eval_sequence(data)["HOTA"]))
        assert hota(frames) == pytest.approx(expected, abs=1e-12)


@pytest.fixture(scope="module")
def official_cgf1_eval(tmp_path_factory):
    """The official ``sam3/eval/cgf1_eval.py``, loaded by itself from the sam3 0.1.4 wheel."""
    if not OFFICIAL_SAM3_WHEEL.exists():
        pytest.skip(f"{OFFICIAL_SAM3_WHEEL.name} not downloaded (`make test` downloads it)")
    path = tmp_path_factory.mktemp("official") / "cgf1_eval.py"
    with zipfile.ZipFile(OFFICIAL_SAM3_WHEEL) as wheel:
        path.write_bytes(wheel.read("sam3/eval/cgf1_eval.py"))
    spec = importlib.util.spec_from_file_location("official_cgf1_eval", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _coco_rle(mask):
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def _official_figures(cgf1_eval, folder, frames, phrases):
    """cgF1 (percent), pmF1 and IL_MCC from ``CGF1Evaluator`` on COCO-style JSON: one image per (frame, phrase)."""
    images, annotations, results = [], [], []
    for index, (truth, output) in enumerate(frames):
        height, width = truth.masks.shape[1:]
        for phrase in phrases:
            image_id = len(images) + 1
            images.append(
                {
                    "id": image_id,
                    "file_name": f"{index:06d}.png",
                    "height": height,
                    "width": width,
                    "text_input": phrase,
                    "is_instance_exhaustive": True,
                }
            )
            for concept, mask in zip(truth.concepts, truth.masks):
                if concept == phrase:
                    rle = _coco_rle(mask)
                    annotations.append(
                        {
                            "id": len(annotations) + 1,
                            "image_id": image_id,
                            "category_id": 1,
                            "segmentation": rle,
                            "area": float(mask.sum()),
                            "bbox": coco_mask.toBbox(rle).tolist(),
                            "iscrowd": 0,
                        }
                    )
            results += [
                {"image_id": image_id, "category_id": 1, "segmentation": _coco_rle(mask), "score": float(s)}
                for concept, mask, s in zip(output.concepts, output.masks, output.scores)
                if concept == phrase
            ]
    gt_path, pred_path = folder / "gt.json", folder / "predictions.json"
    gt_path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "object"}]})
    )
    pred_path.write_text(json.dumps(results))
    with np.errstate(divide="ignore", invalid="ignore"):  # its positive_macro_F1 (not compared) divides by 0
        out = cgf1_eval.CGF1Evaluator(str(gt_path)).evaluate(str(pred_path))
    return (100 * out["cgF1_eval_segm_cgF1"], out["cgF1_eval_segm_positive_micro_F1"], out["cgF1_eval_segm_IL_MCC"])


def _random_clip(rng, size=12):
    """Frames with random boxes as ground truth ("cat", "dog"; "cup" never present) and perturbed copies,
    straddling unions, empty masks and spurious boxes as predictions, with scores on both sides of 0.5."""
    scores = [0.1, 0.4999, 0.5, 0.5, 0.5001, 0.7, 0.95]

    def random_box():
        x0, y0 = rng.integers(0, size - 2, 2)
        m = np.zeros((size, size), bool)
        m[y0 : y0 + rng.integers(2, 6), x0 : x0 + rng.integers(2, 6)] = True
        return m

    def perturbed(mask, others):
        out, kind = mask.copy(), rng.integers(6)
        on, off = np.flatnonzero(out), np.flatnonzero(~out)
        if kind == 1:  # drop pixels: IoU k/n, often exactly on a threshold
            out.flat[rng.choice(on, min(rng.integers(1, 4), len(on) - 1), replace=False)] = False
        elif kind == 2:
            out.flat[rng.choice(off, rng.integers(1, 4), replace=False)] = True
        elif kind == 3:
            out = np.roll(out, 1, axis=int(rng.integers(2)))
        elif kind == 4:  # straddles this object and another
            out |= others[rng.integers(len(others))]
        elif kind == 5 and rng.random() < 0.3:
            out[:] = False
        return out

    frames = []
    for _ in range(rng.integers(2, 7)):
        truth, output = [], []  # (concept, mask) and (concept, mask, score)
        for phrase in ("cat", "dog"):
            objects = [random_box() for _ in range(rng.integers(1, 4))] if rng.random() < 0.7 else []
            truth += [(phrase, m) for m in objects]
            output += [
                (phrase, perturbed(m, objects), rng.choice(scores))
                for m in objects
                for _ in range(rng.choice(3, p=[0.2, 0.65, 0.15]))
            ]
        output += [
            (phrase, random_box(), rng.choice(scores))
            for phrase in ("cat", "dog", "cup", "zebra")
            for _ in range(rng.poisson(0.3))
        ]
        order = rng.permutation(len(output))
        output = [output[i] for i in order]
        masks = lambda objs: np.stack([o[1] for o in objs]) if objs else np.zeros((0, size, size), bool)  # noqa: E731
        frames.append(
            (
                FrameObjects(np.arange(len(truth)), [o[0] for o in truth], masks(truth)),
                FrameObjects(
                    np.arange(len(output)), [o[0] for o in output], masks(output), scores=[o[2] for o in output]
                ),
            )
        )
    return frames


def test_cgf1_pmf1_il_mcc_equal_the_official_evaluator(official_cgf1_eval, tmp_path):
    """Generated clips (and the hand-made straddling case) scored by our Scorer and by the official
    CGF1Evaluator: overall and per phrase (the official run on that phrase's datapoints alone)."""
    phrases = ["cat", "dog", "cup"]
    left, right = box(0, 0, 4, 4), box(4, 0, 8, 4)
    clips = [
        [
            (
                gt((1, "cat", left), (2, "cat", right)),
                pred((7, "cat", box(0, 0, 7, 4), 0.9), (8, "cat", box(0, 0, 2, 4), 0.5)),
            ),
            (gt(), pred()),
        ]
    ]
    rng = np.random.default_rng(0)
    clips += [_random_clip(rng) for _ in range(30)]
    for n, frames in enumerate(clips):
        ours = score(frames, phrases)
        folder = tmp_path / f"clip{n}"
        folder.mkdir()
        official = _official_figures(official_cgf1_eval, folder, frames, phrases)
        assert (ours["cgF1"], ours["pmF1"], ours["IL_MCC"]) == pytest.approx(official, abs=1e-6), f"clip {n}"
        for phrase in phrases:
            mine = ours["per_concept"][phrase]
            official = _official_figures(official_cgf1_eval, folder, frames, [phrase])
            assert (mine["cgF1"], mine["pmF1"], mine["IL_MCC"]) == pytest.approx(official, abs=1e-6), (n, phrase)


def test_best_iou_is_each_true_masks_best_match_and_zero_without_masks():
    truth = np.zeros((2, 4, 4), bool)
    truth[0, :2, :2] = True  # 4 pixels
    truth[1, 2:, 2:] = True
    masks = np.zeros((2, 4, 4), bool)
    masks[0, :2, :4] = True  # covers truth 0 and 4 more: IoU 0.5
    masks[1, :1, :2] = True  # half of truth 0 (IoU 2 / 8, not its best)
    masks[1, 2:, 2:] = True  # and all of truth 1: 4 / 6
    assert best_iou(truth, masks) == pytest.approx([0.5, 4 / 6])
    assert best_iou(truth, masks[:0]).tolist() == [0.0, 0.0]
    assert best_iou(truth[:0], masks).shape == (0,)
