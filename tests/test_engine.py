"""The engine's contract on the tiny-random model (CPU): outputs, object life cycle, bad input, loading."""

import json
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sam3_ros.engine import ConceptPrompt, Frame, ModelLoadError, load_engine, load_model
from sam3_ros.pipeline import requests
from sam3_ros.settings import Settings

SIZE = 56  # tiny-random at 56 px keeps every step a few milliseconds


def make_settings(**overrides) -> Settings:
    base = {
        "model": "tiny-random",
        "devices": ["cpu"],
        "image_size": SIZE,
        "detection.score_threshold": 0.0,
        "detection.new_object_threshold": 0.0,
        "detection.nms_iou_threshold": 1.0,
        "tracking.assoc_iou_threshold": 1.0,
        "tracking.max_objects": 4,
    }
    return Settings.default({**base, **overrides})


@pytest.fixture(scope="module")
def loaded():
    return load_model("tiny-random", image_size=SIZE)


def image(h=48, w=64, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_step_returns_instances_at_source_resolution(loaded):
    engine = load_engine(make_settings(), loaded)
    engine.set_prompt(ConceptPrompt(phrases=["cup", "bottle"]))
    out = engine.step(Frame(image(), stamp_ns=123, frame_id="cam", camera="/cam/image"))
    n = len(out)
    assert 0 < n <= 4
    assert out.masks.shape == (n, 48, 64) and np.asarray(out.masks).dtype == bool
    assert out.boxes.shape == (n, 4) and bool((out.boxes[:, 2] <= 64).all() and (out.boxes[:, 3] <= 48).all())
    assert out.ids.dtype == torch.int64 and len(set(out.ids.tolist())) == n
    assert set(out.concepts) <= {"cup", "bottle"}
    assert (out.stamp_ns, out.frame_id, out.camera, out.image_size) == (123, "cam", "/cam/image", (48, 64))
    assert {"preprocess", "encoder", "detector", "tracker", "merge", "output"} <= set(out.timings_ms)
    again = engine.step(Frame(image(seed=1)))
    lost = set(out.ids.tolist()) - set(again.ids.tolist())  # tracked objects keep their ids unless evicted
    assert len(lost) == engine.counters.objects_evicted + engine.counters.objects_expired


def test_max_objects_is_enforced_and_counted(loaded):
    engine = load_engine(make_settings(**{"tracking.max_objects": 2}), loaded)
    engine.set_prompt(ConceptPrompt(phrases=["thing"]))
    for seed in range(3):
        assert len(engine.step(Frame(image(seed=seed)))) <= 2
    assert engine.counters.detections_over_limit > 0


def test_read_only_frames_are_accepted_without_warnings(loaded):
    # decoded ROS images are read-only numpy views; torch must not alias them
    engine = load_engine(make_settings(), loaded)
    engine.set_prompt(ConceptPrompt(phrases=["thing"]))
    rgb = image()
    rgb.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = engine.step(Frame(rgb))
    assert out.image_size == (48, 64)


def test_max_objects_keeps_the_highest_scoring_objects(loaded):
    # thresholds 0 and a long keep-alive: every frame offers more new detections than there is room for
    cap = 3
    engine = load_engine(make_settings(**{"tracking.max_objects": cap, "tracking.keep_alive_frames": 100}), loaded)
    engine.set_prompt(ConceptPrompt(phrases=["thing", "other"]))
    seen: set[int] = set()
    previous: dict[int, float] = {}
    for seed in range(8):
        out = engine.step(Frame(image(seed=seed)))
        ids, scores = out.ids.tolist(), out.scores.tolist()
        assert len(ids) <= cap and len(set(ids)) == len(ids)
        new = [i for i in ids if i not in previous]
        assert not set(new) & seen, "an id was reused"
        gone = [i for i in previous if i not in ids]
        if gone and new:  # evicted for newcomers: none of the evicted outscored an admitted newcomer
            assert max(previous[i] for i in gone) <= min(s for i, s in zip(ids, scores) if i in new)
        seen |= set(ids)
        previous = dict(zip(ids, scores))
    c = engine.counters
    assert c.objects_evicted > 0 and c.detections_over_limit > 0
    assert c.objects_created - c.objects_evicted - c.objects_expired == len(engine.live_ids) <= cap


def test_lost_objects_expire_and_ids_are_never_reused(loaded):
    # track_assoc 1.0: no detection ever confirms a track, so each object expires after keep_alive frames;
    # assoc 0.0: while any track lives every detection matches it, so nothing new starts until all expired
    engine = load_engine(
        make_settings(
            **{
                "tracking.keep_alive_frames": 2,
                "tracking.track_assoc_iou_threshold": 1.0,
                "tracking.assoc_iou_threshold": 0.0,
            }
        ),
        loaded,
    )
    engine.set_prompt(ConceptPrompt(phrases=["thing"]))
    first = engine.step(Frame(image())).ids.tolist()
    seen = [engine.step(Frame(image(seed=t))).ids.tolist() for t in range(1, 6)]
    assert seen[0] == first and seen[1] == first  # alive for keep_alive_frames
    assert engine.counters.objects_expired == len(first)
    later = [i for ids in seen[2:] for i in ids]
    assert later and not set(later) & set(first)  # new objects got new ids
    engine.remove(later[-1])
    engine.reset()
    assert min(engine.step(Frame(image())).ids.tolist()) > max(later)


def test_add_points_starts_and_refines_an_object(loaded):
    engine = load_engine(make_settings(), loaded)
    with pytest.raises(ValueError, match="processed frame"):
        engine.add_points(None, [[5, 5]], [1])
    engine.step(Frame(image()))  # no prompt: nothing detected
    new_id = engine.add_points(None, [[20, 10], [40, 30]], [1, 0])
    assert engine.add_points(new_id, None, None, box=[10, 5, 40, 30]) == new_id
    out = engine.step(Frame(image(seed=1)))
    assert out.ids.tolist() == [new_id] and out.concepts == [""]
    engine.remove(new_id)
    assert len(engine.step(Frame(image(seed=2)))) == 0


def test_exemplar_boxes_reach_the_detector(loaded):
    """Exemplar boxes go through the geometry encoder; positive and negative labels give different scores.

    Random weights carry no learned meaning for "positive" and "negative", so this checks the path,
    not the semantics (which needs a trained model)."""
    engine = load_engine(make_settings(), loaded)
    scores = {}
    for label in (True, False):
        engine.set_prompt(
            ConceptPrompt(phrases=["cup"], boxes=np.array([[8, 8, 30, 30]], np.float32), box_labels=np.array([label]))
        )
        vision = loaded.model.detector_model.get_vision_features(pixel_values=torch.zeros(1, 3, SIZE, SIZE))
        with torch.inference_mode():
            scores[label] = engine._detect(vision, (48, 64))["scores"]
    assert not torch.equal(scores[True], scores[False])
    engine.set_prompt(ConceptPrompt(boxes=np.array([[8, 8, 30, 30]], np.float32), box_labels=np.array([True])))
    assert len(engine.step(Frame(image()))) > 0  # an exemplar-only prompt detects too


def test_text_embeddings_are_cached(loaded):
    engine = load_engine(make_settings(), loaded)
    first = engine.detector.text_embeddings(["cup", "bottle"], torch.device("cpu"))
    assert engine.detector.text_embeddings(["cup", "bottle"], torch.device("cpu"))[0] is first[0]


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((10, 10, 3), np.float32), "uint8"),
        (np.zeros((10, 10), np.uint8), "H x W x 3"),
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        ("not an image", "numpy array or torch tensor"),
    ],
)
def test_bad_frames_raise_and_engine_stays_usable(loaded, bad, message):
    engine = load_engine(make_settings(), loaded)
    engine.set_prompt(ConceptPrompt(phrases=["cup"]))
    with pytest.raises(ValueError, match=message):
        engine.step(Frame(bad))
    assert engine.counters.bad_input == 1
    assert len(engine.step(Frame(image()))) > 0


@pytest.mark.parametrize(
    "prompt, message",
    [
        (ConceptPrompt(), "empty"),
        (ConceptPrompt(phrases=["  "]), "empty"),
        (ConceptPrompt(phrases=["x" * 201]), "max_phrase_chars"),
        (ConceptPrompt(phrases=[f"p{i}" for i in range(17)]), "max_phrases"),
        (ConceptPrompt(phrases=["a", "a"]), "twice"),
        (ConceptPrompt(boxes=np.array([[10, 10, 5, 20]], np.float32), box_labels=np.array([True])), "x_max > x_min"),
        (ConceptPrompt(boxes=np.array([[70, 10, 90, 20]], np.float32), box_labels=np.array([True])), "outside"),
        (ConceptPrompt(boxes=np.array([[1, 1, 5, 5]], np.float32), box_labels=np.array([True, False])), "labels"),
    ],
)
def test_bad_prompts_raise_and_keep_the_old_prompt(loaded, prompt, message):
    engine = load_engine(make_settings(), loaded)
    engine.set_prompt(ConceptPrompt(phrases=["cup"]))
    engine.step(Frame(image()))  # frame size known: boxes are checked against 64 x 48
    with pytest.raises(ValueError, match=message):
        engine.set_prompt(prompt)
    assert engine.phrases == ["cup"]
    assert len(engine.step(Frame(image()))) > 0


def _outcome(call):
    """What a call gives, or the message of the ValueError it raises."""
    try:
        return call()
    except ValueError as exc:
        return f"rejected: {exc}"


@pytest.mark.parametrize(
    "box",
    [
        [10, 10, 90, 20],  # past the right edge: clipped to the 64 x 48 image
        [-5, -3, 20, 60],  # past three edges: clipped
        [70, 10, 90, 20],  # wholly outside
        [10, 10, 5, 20],  # inverted
        [0, 0, np.inf, 3],
    ],
)
def test_a_box_gets_one_verdict_from_the_node_and_the_engine(loaded, box):
    """Exemplar and click boxes: the node's request parsing and the engine apply the same rule."""
    engine = load_engine(make_settings(), loaded)
    engine.step(Frame(image()))
    request = SimpleNamespace(phrases=["cup"], boxes=np.asarray(box, np.float32), box_labels=np.array([True]))
    parsed = _outcome(lambda: requests.parse_set_prompt(request, engine.settings.prompt, (48, 64)).boxes.tolist())
    taken = _outcome(
        lambda: (
            engine.set_prompt(ConceptPrompt(["cup"], np.array([box], np.float32), np.array([True])))
            or engine._boxes.tolist()
        )
    )
    assert parsed == taken
    clicks = SimpleNamespace(object_id=-1, points=np.zeros(0, np.float32), labels=np.zeros(0), box=np.asarray(box))
    parsed = _outcome(lambda: requests.parse_add_points(clicks, (48, 64)).box.tolist())
    taken = _outcome(lambda: engine.add_points(None, None, None, box))
    rejected = isinstance(parsed, str)
    assert rejected == isinstance(taken, str) and (not rejected or parsed == taken), (parsed, taken)
    if box[0] == 10 and box[2] == 90:
        assert parsed == [10, 10, 64, 20]


@pytest.mark.parametrize(
    "point, inside",
    [
        ([63.5, 47.5], True),
        ([0, 0], True),
        ([64, 10], False),
        ([10, 48], False),
        ([-0.1, 3], False),
        ([np.nan, 3], False),
    ],
)
def test_a_click_gets_one_verdict_from_the_node_and_the_engine(loaded, point, inside):
    """A point names a pixel: 0 <= x < W and 0 <= y < H, in the node's request parsing and in the engine."""
    engine = load_engine(make_settings(), loaded)
    engine.step(Frame(image()))
    clicks = SimpleNamespace(
        object_id=-1, points=np.asarray(point, np.float32), labels=np.array([1]), box=np.zeros(0, np.float32)
    )
    parsed = _outcome(lambda: requests.parse_add_points(clicks, (48, 64)).points.tolist())
    taken = _outcome(lambda: engine.add_points(None, [point], [1]))
    assert isinstance(taken, int) == inside and (parsed == [point]) == inside
    if not inside:
        assert parsed == taken


def test_bad_object_requests_raise(loaded):
    engine = load_engine(make_settings(), loaded)
    engine.step(Frame(image()))
    with pytest.raises(ValueError, match="unknown object id 999"):
        engine.remove(999)
    with pytest.raises(ValueError, match="unknown object id"):
        engine.add_points(999, [[1, 1]], [1])
    with pytest.raises(ValueError, match="outside"):
        engine.add_points(None, [[100, 1]], [1])
    with pytest.raises(ValueError, match="labels"):
        engine.add_points(None, [[1, 1]], [2])
    with pytest.raises(ValueError, match="1 labels for 2 points"):
        engine.add_points(None, [[1, 1], [2, 2]], [1])
    assert engine.add_points(None, [[10, 10]], [1]) >= 1


def test_model_loading_errors_name_the_path(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ModelLoadError, match="nope"):
        load_model(str(missing))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(tmp_path / "empty"))
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.json").write_text(json.dumps({"model_type": "sam3_video"}))
    with pytest.raises(ModelLoadError, match="no weights"):
        load_model(str(corrupt))
    (corrupt / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match=str(corrupt)):
        load_model(str(corrupt))


def test_model_loads_from_a_local_transformers_directory(tmp_path, loaded):
    loaded.model.save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="no tokenizer"):
        load_model(str(tmp_path))
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "cup</w>": 2, "c": 3, "u": 4, "p": 5}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    from_disk = load_model(str(tmp_path))
    assert torch.equal(
        from_disk.model.tracker_model.memory_temporal_positional_encoding,
        loaded.model.tracker_model.memory_temporal_positional_encoding,
    )
    assert from_disk.tokenize(["cup"])["input_ids"][0, :3].tolist() == [0, 3, 4]  # the vocabulary on disk is used
    engine = load_engine(make_settings(model=str(tmp_path), image_size=0), from_disk)
    engine.set_prompt(ConceptPrompt(phrases=["cup"]))
    assert engine.step(Frame(image())).masks.shape[1:] == (48, 64)


def test_phrases_in_one_batch_equal_phrases_one_at_a_time(loaded):
    """Several phrases (padded to one length) in one detector pass give each phrase's own result."""
    engine = load_engine(make_settings(), loaded)
    with torch.inference_mode():
        vision = loaded.model.detector_model.get_vision_features(pixel_values=torch.rand(1, 3, SIZE, SIZE) * 2 - 1)
        together = engine.detector.detect(vision, ["cup", "red plastic bottle"], None, None, 0.0, 0.0)
        for i, phrase in enumerate(["cup", "red plastic bottle"]):
            alone = engine.detector.detect(vision, [phrase], None, None, 0.0, 0.0)
            part = slice(i * len(alone["scores"]), (i + 1) * len(alone["scores"]))
            torch.testing.assert_close(together["scores"][part], alone["scores"], atol=1e-5, rtol=0)
            torch.testing.assert_close(together["masks"][part], alone["masks"], atol=1e-4, rtol=0)
            assert bool((together["concept"][part] == i).all())


def test_expired_objects_free_their_slots_for_new_ones_on_the_same_frame(loaded):
    engine = load_engine(
        make_settings(
            **{"tracking.max_objects": 2, "tracking.keep_alive_frames": 1, "tracking.track_assoc_iou_threshold": 1.0}
        ),
        loaded,
    )
    engine.set_prompt(ConceptPrompt(phrases=["thing"]))
    ids = [engine.step(Frame(image(seed=t))).ids.tolist() for t in range(6)]
    assert all(len(i) == 2 for i in ids) and engine.counters.objects_expired >= 2
    assert ids[-1] != ids[0]
    with pytest.raises(ValueError, match="max_objects"):
        engine.add_points(None, [[5, 5]], [1])


def test_keep_tracks_keeps_objects_of_phrases_still_prompted(loaded):
    engine = load_engine(make_settings(), loaded)
    engine.set_prompt(ConceptPrompt(phrases=["cup", "bottle"]))
    out = engine.step(Frame(image()))
    assert {"cup", "bottle"} <= set(out.concepts)
    engine.set_prompt(ConceptPrompt(phrases=["bottle", "plate"]), keep_tracks=True)
    kept = [i for i, c in zip(out.ids.tolist(), out.concepts) if c == "bottle"]
    assert engine.live_ids == kept
    after = engine.step(Frame(image(seed=1)))
    assert all(c == "bottle" for i, c in zip(after.ids.tolist(), after.concepts) if i in kept)
    engine.set_prompt(ConceptPrompt(phrases=["cup"]))
    assert engine.live_ids == []


def test_bf16_precision_runs_on_cpu(loaded):
    engine = load_engine(
        make_settings(precision="bf16"), load_model("tiny-random", dtype=torch.bfloat16, image_size=SIZE)
    )
    engine.set_prompt(
        ConceptPrompt(phrases=["cup"], boxes=np.array([[2, 2, 30, 30]], np.float32), box_labels=np.array([True]))
    )
    for seed in range(3):
        out = engine.step(Frame(image(seed=seed)))
    assert len(out) > 0 and out.scores.dtype == torch.float32 and np.asarray(out.masks).any()
    assert engine.add_points(out.ids[0].item(), [[5, 5]], [1]) == out.ids[0].item()
