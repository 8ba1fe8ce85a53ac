"""``sam3-ros train-toy``: a short run writes a model directory the loader reads, and the same seed and
step counts give the same weights (a few steps: the code path, not the quality)."""

import hashlib
import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from sam3_ros.engine.loading import ModelLoadError, load_model
from sam3_ros.models.toy import build_toy
from sam3_ros.training.data import TRAIN_SEEDS, detector_sample, exemplar_sample, tracker_clip
from sam3_ros.training.trainer import TrainConfig, train_toy


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    import torch

    config = TrainConfig(
        seed=3,
        vision_steps=2,
        binding_steps=2,
        detector_steps=2,
        scoring_steps=1,
        exemplar_steps=1,
        tracker_steps=1,
        images_per_step=1,
        vision_images_per_step=2,
        phrases_per_image=2,
        clip_length=3,
        clip_objects=2,
    )
    outs = [tmp_path_factory.mktemp(f"toy{i}") for i in range(2)]
    for out in outs:
        train_toy(out, config, torch.device("cpu"))
    return outs


@pytest.mark.slow
def test_same_seed_and_steps_give_the_same_weights(runs):
    a, b = (load_file(str(out / "model.safetensors")) for out in runs)
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_output_is_a_model_directory_with_its_record_and_plot(runs):
    out = runs[0]
    record = json.loads((out / "training.json").read_text())
    assert record["config"]["detector_steps"] == 2 and record["config"]["tracker_steps"] == 1
    assert (out / "loss.png").stat().st_size > 0
    loaded = load_model(str(out))  # the loader for real weights reads it
    assert loaded.tokenize(["blue square"])["input_ids"][0, :4].tolist() == [2, 6, 9, 3]


@pytest.mark.slow
def test_a_run_started_from_a_model_changes_only_the_phases_it_runs(runs, tmp_path):
    import torch

    config = TrainConfig(
        seed=4, exemplar_steps=2, images_per_step=1, phrases_per_image=2, start_from=str(runs[0]), phases=("exemplar",)
    )
    train_toy(tmp_path, config, torch.device("cpu"))
    record = json.loads((tmp_path / "training.json").read_text())
    before, after = (load_file(str(out / "model.safetensors")) for out in (runs[0], tmp_path))
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    assert changed and all(k.startswith("detector_model.geometry_encoder.") for k in changed), sorted(changed)[:5]
    assert record["config"]["phases"] == ["exemplar"] and record["config"]["start_from"] == str(runs[0])
    assert record["memory_encoder_image_scale"] is None  # a trained memory encoder is not rescaled


def test_bad_settings_name_their_field():
    with pytest.raises(ValueError, match="TrainConfig.phases.*'detectr'"):
        TrainConfig(phases=("vision", "detectr"))
    with pytest.raises(ValueError, match="TrainConfig.tracker_vanishing: 1.5"):
        TrainConfig(tracker_vanishing=1.5)
    with pytest.raises(ValueError, match="TrainConfig.clip_length: 1"):
        TrainConfig(clip_length=1)


def test_training_worlds_never_use_benchmark_seeds():
    rng = np.random.default_rng(0)
    sample = detector_sample(rng, phrases=4)
    assert len(sample.targets) == 4 and sample.image.dtype == np.uint8
    assert all(t.masks.shape[1:] == sample.image.shape[:2] for t in sample.targets)
    clip = tracker_clip(rng, length=4, max_objects=3)
    assert clip.masks.shape[0] == 4 and clip.masks[0].reshape(clip.masks.shape[1], -1).any(1).all()
    assert TRAIN_SEEDS[0] >= 1_000_000  # make-bag's benchmark seeds are small numbers


def test_vanishing_clips_start_with_an_object_that_is_gone_later():
    rng = np.random.default_rng(2)
    for _ in range(6):
        clip = tracker_clip(rng, length=5, max_objects=2, vanishing=1.0)
        visible = clip.masks.reshape(5, clip.masks.shape[1], -1).any(2)  # (T, N)
        assert visible[0].all()  # every object starts visible
        assert not visible[1:, 0].all()  # the first one is gone on a later frame


def test_clips_without_vanishing_are_drawn_as_before():
    """``vanishing`` 0 draws nothing extra from the generator: recorded recipes repeat exactly. The figures are
    those of ``tracker_clip`` before it had the option (commit 617c835): the clip's masks and the next draw."""
    rng = np.random.default_rng(3)
    clip = tracker_clip(rng, length=3, max_objects=2, vanishing=0.0)
    assert clip.masks.shape == (3, 2, 320, 240) and int(clip.masks.sum()) == 4958
    assert hashlib.sha256(np.packbits(clip.masks).tobytes()).hexdigest()[:16] == "a94af017e5c670a0"
    assert rng.random() == 0.15973891463707857


def test_exemplar_prompts_box_objects_of_the_frame_and_ask_for_their_concept():
    rng = np.random.default_rng(1)
    kinds = set()
    for _ in range(12):
        sample = exemplar_sample(rng, 3)
        h, w = sample.image.shape[:2]
        for t in sample.targets:
            assert len(t.boxes) == len(t.box_labels) >= 1
            assert (t.boxes[:, :2] >= 0).all() and (t.boxes[:, 2] <= w).all() and (t.boxes[:, 3] <= h).all()
            assert (t.boxes[:, 2:] > t.boxes[:, :2]).all()
            if t.box_labels.any():  # a positive box lies on one of the objects the prompt must find
                x0, y0, x1, y1 = t.boxes[t.box_labels][0].astype(int)
                assert t.masks[:, y0:y1, x0:x1].any()
            kinds.add((bool(t.phrase), bool(t.box_labels.any()), bool((~t.box_labels).any()), t.present))
    # positive / positive+negative / negative only (nothing to find) / phrase+negative
    assert kinds == {
        (False, True, False, True),
        (False, True, True, True),
        (False, False, True, False),
        (True, False, True, True),
    }


def test_exemplar_inputs_are_the_engines_normalized_cxcywh_with_padding():
    from sam3_ros.training.data import PhraseTarget
    from sam3_ros.training.detector import exemplar_inputs

    import torch

    masks = np.zeros((0, 100, 200), bool)
    targets = [
        PhraseTarget("", masks, np.array([[20, 10, 60, 50]], np.float32), np.array([True])),
        PhraseTarget("", masks, np.array([[0, 0, 200, 100], [100, 50, 200, 100]], np.float32), np.array([False, True])),
    ]
    out = exemplar_inputs(targets, [(100, 200)] * 2, torch.device("cpu"))
    torch.testing.assert_close(out["input_boxes"][0, 0], torch.tensor([0.2, 0.3, 0.2, 0.4]))
    torch.testing.assert_close(out["input_boxes"][1, 1], torch.tensor([0.75, 0.75, 0.5, 0.5]))
    assert out["input_boxes_labels"].tolist() == [[1, -10], [0, 1]]  # -10: transformers' padding label
    assert exemplar_inputs([PhraseTarget("red circle", masks)], [(100, 200)], torch.device("cpu")) == {}


def test_untrained_builtin_is_a_clear_error(monkeypatch, tmp_path):
    from sam3_ros.engine import loading

    monkeypatch.setattr(loading, "TOY_DIR", tmp_path)
    with pytest.raises(ModelLoadError, match="train-toy"):
        load_model("toy")


def test_layer_predictions_end_with_the_detectors_own_outputs():
    """The auxiliary decoding losses read every decoder layer; the last must be what the engine sees."""
    import torch

    from sam3_ros.models.toy import build_toy, build_toy_tokenizer
    from sam3_ros.engine.loading import phrase_tokenizer
    from sam3_ros.training.auxiliary import captured_output
    from sam3_ros.training.detector import layer_predictions, vision_features

    model = build_toy(0).eval()
    detector = model.detector_model
    sample = detector_sample(np.random.default_rng(3), 2)
    tokens = phrase_tokenizer(build_toy_tokenizer())([t.phrase for t in sample.targets[:1]])
    with (
        torch.no_grad(),
        captured_output(detector.detr_decoder.box_head) as offsets,
        captured_output(detector.dot_product_scoring) as scores,
    ):
        out = detector(vision_embeds=vision_features(model, [sample.image], torch.device("cpu")), **tokens)
    logits, boxes = layer_predictions(out, offsets["output"], scores["output"])
    assert logits.shape[0] == boxes.shape[0] == detector.config.detr_decoder_config.num_layers
    torch.testing.assert_close(logits[-1], out.pred_logits)
    torch.testing.assert_close(boxes[-1], out.pred_boxes)
    assert not torch.allclose(boxes[0], boxes[-1])  # the earlier layer is a different prediction


def test_untrained_decoder_heads_look_at_their_box_edges():
    """The toy's box position bias starts as an edge prior: head h attends most near edge h % 4
    (left, right, top, bottom) of the query's box, inside the box's span along the other axis."""
    import torch

    from sam3_ros.models.toy import build_toy

    decoder = build_toy(0).detector_model.detr_decoder
    grid = 12
    box = torch.tensor([[[0.5, 0.5, 0.5, 0.25]]])  # cxcywh: x 0.25..0.75, y 0.375..0.625
    with torch.no_grad():
        bias = decoder._get_rpb_matrix(box, (torch.tensor(grid), torch.tensor(grid)))[0, :, 0].reshape(-1, grid, grid)
    cells = torch.arange(grid) / grid
    for head, (axis, edge) in enumerate([(1, 0.25), (1, 0.75), (0, 0.375), (0, 0.625)]):
        row, col = divmod(int(bias[head].argmax()), grid)
        along, across = (col, row) if axis == 1 else (row, col)
        assert abs(float(cells[along]) - edge) <= 1 / grid, (head, row, col)
        span = (0.375, 0.625) if axis == 1 else (0.25, 0.75)
        assert span[0] - 1 / grid <= float(cells[across]) <= span[1], (head, row, col)


def test_untrained_queries_start_on_a_grid_of_object_sized_boxes():
    """Every point of the image has a query box centred within half a grid cell of it, and no query starts
    at transformers' default (the image centre, half the image's size)."""
    import torch

    from sam3_ros.models.toy import ANCHOR_GRID, ANCHOR_SIZE

    boxes = build_toy(0).detector_model.detr_decoder.reference_points.weight.detach().sigmoid()  # cxcywh
    assert boxes.shape[0] == ANCHOR_GRID**2
    points = torch.stack(torch.meshgrid(torch.linspace(0, 1, 33), torch.linspace(0, 1, 33), indexing="xy"), -1)
    nearest = (points.reshape(-1, 1, 2) - boxes[None, :, :2]).abs().amax(-1).amin(1)
    assert float(nearest.max()) <= 0.5 / ANCHOR_GRID + 1e-6
    torch.testing.assert_close(boxes[:, 2:], torch.full_like(boxes[:, 2:], ANCHOR_SIZE))


def test_mask_quality_rises_with_the_masks_iou_with_its_best_object():
    import torch

    from sam3_ros.training.detector import SCORE_IOU_HIGH, SCORE_IOU_LOW, mask_quality

    gt = torch.zeros(2, 40, 40, dtype=torch.bool)
    gt[0, :20, :20] = True
    gt[1, 20:, 20:] = True
    logits = torch.full((4, 10, 10), -5.0)  # low-res: 4 source pixels per cell
    logits[0, :5, :5] = 5.0  # exactly object 0
    logits[1, 5:, 5:] = 5.0  # exactly object 1
    logits[2, :5, :10] = 5.0  # object 0 and as much again: IoU 0.5 with it
    quality = mask_quality(logits, gt)
    mid = (0.5 - SCORE_IOU_LOW) / (SCORE_IOU_HIGH - SCORE_IOU_LOW)
    torch.testing.assert_close(quality, torch.tensor([1.0, 1.0, mid, 0.0]))
    assert mask_quality(logits, gt[:0]).tolist() == [0.0] * 4  # an absent phrase: nothing is a good detection


def test_scoring_phase_moves_only_the_scores_toward_mask_quality():
    import torch

    from sam3_ros.engine.loading import phrase_tokenizer
    from sam3_ros.models.toy import build_toy_tokenizer
    from sam3_ros.training.detector import scoring_parameters, scoring_step

    model = build_toy(0).eval()
    detector = model.detector_model
    for p in model.parameters():
        p.requires_grad_(False)
    params = scoring_parameters(detector)
    for p in params:
        p.requires_grad_(True)
    tokenize = phrase_tokenizer(build_toy_tokenizer())
    samples = [detector_sample(np.random.default_rng(4), 3)]
    before = {k: v.clone() for k, v in detector.state_dict().items()}
    optimizer = torch.optim.Adam(params, lr=1e-2)
    losses = []
    for _ in range(15):
        loss, parts = scoring_step(model, tokenize, samples, torch.device("cpu"))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(parts["score"])
    assert losses[-1] < 0.5 * losses[0]
    changed = {k for k, v in detector.state_dict().items() if not torch.equal(v, before[k])}
    heads = ("dot_product_scoring.", "detr_decoder.presence_head.", "detr_decoder.presence_layer_norm.")
    assert changed and all(k.startswith(heads) for k in changed), sorted(changed)


def test_scoring_phase_recomputes_the_detectors_own_presence_logit():
    import torch

    from sam3_ros.engine.loading import phrase_tokenizer
    from sam3_ros.models.toy import build_toy_tokenizer
    from sam3_ros.training.auxiliary import captured_output
    from sam3_ros.training.detector import scoring_step

    model = build_toy(0).eval()
    decoder = model.detector_model.detr_decoder
    samples = [detector_sample(np.random.default_rng(4), 3)]
    with captured_output(decoder.presence_head) as head, captured_output(model.detector_model) as full:
        scoring_step(model, phrase_tokenizer(build_toy_tokenizer()), samples, torch.device("cpu"))
    # the head's last call is the step's own recomputation; it equals what the detector returned
    torch.testing.assert_close(
        head["output"].reshape(-1, 1).clamp(-10, 10), full["output"].presence_logits.reshape(-1, 1), rtol=0, atol=1e-6
    )


def test_untrained_memory_attention_attends_to_the_memory_at_the_same_position():
    """The toy tracker's locality prior: before training, a frame position's query scores the memory key
    at the same grid position highest (RoPE on the highest-frequency pairs)."""
    import torch
    from transformers.models.sam3_tracker_video.modeling_sam3_tracker_video import apply_rotary_pos_emb_2d

    attention = build_toy(0).tracker_model.memory_attention
    cross = attention.layers[0].cross_attn_image
    tokens = attention.position_ids.shape[0]
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        query = cross.q_proj(torch.randn(1, 1, tokens, cross.q_proj.in_features, generator=generator))
        key = cross.k_proj(torch.randn(1, 1, tokens, cross.k_proj.in_features, generator=generator))
        cos, sin = attention.rotary_emb(query, attention.position_ids)
        query, key = apply_rotary_pos_emb_2d(query, key, cos, sin)
        logits = (query @ key.transpose(-1, -2))[0, 0]
    assert (logits.argmax(dim=1) == torch.arange(tokens)).float().mean() > 0.95


def test_memory_encoder_balance_scales_its_image_term_to_its_mask_term():
    import torch

    from sam3_ros.training.tracker import balance_memory_encoder

    model = build_toy(0)
    clip = tracker_clip(np.random.default_rng(1), 2, 3)
    first = balance_memory_encoder(model, clip, torch.device("cpu"))
    assert first != pytest.approx(1.0, abs=0.05)  # the untrained terms differ in size
    assert balance_memory_encoder(model, clip, torch.device("cpu")) == pytest.approx(1.0, abs=1e-4)


def test_position_targets_tell_every_cell_apart():
    import torch

    from sam3_ros.training.auxiliary import POSITION_FREQUENCIES, position_targets

    targets = position_targets((12, 9))
    assert targets.shape == (4 * len(POSITION_FREQUENCIES), 12, 9)
    cells = targets.flatten(1).T
    assert torch.cdist(cells, cells).add(torch.eye(len(cells)) * 9).min() > 0.1  # no two cells alike
    assert targets.abs().max() <= 1.0


def test_position_head_is_fit_exactly_by_features_that_hold_the_position():
    import torch

    from sam3_ros.training.auxiliary import PositionHead, position_targets

    head = PositionHead(channels=position_targets((6, 6)).shape[0], levels=2)
    with torch.no_grad():  # identity 1x1 convolutions: the features are the targets themselves
        for conv in head.levels:
            conv.weight.copy_(torch.eye(conv.out_channels)[..., None, None])
            conv.bias.zero_()
    features = tuple(position_targets(s)[None].expand(2, -1, -1, -1) for s in ((6, 6), (3, 4)))
    assert float(head.loss(features)) < 1e-10
    assert float(head.loss(tuple(f.flip(-1) for f in features))) > 0.1  # mirrored positions are wrong


def test_query_position_term_reaches_the_mask_embeddings_of_matched_queries():
    import torch

    from sam3_ros.engine.loading import phrase_tokenizer
    from sam3_ros.models.toy import build_toy_tokenizer
    from sam3_ros.training.auxiliary import QueryPositionHead, fourier_position, position_targets
    from sam3_ros.training.detector import detector_step
    from sam3_ros.training.losses import LossWeights

    model = build_toy(0).eval()
    embedder = model.detector_model.mask_decoder.mask_embedder
    head = QueryPositionHead(embedder.layers[-1].out_features)
    rng = np.random.default_rng(5)
    samples = [s for s in (detector_sample(rng, 2) for _ in range(6)) if any(t.present for t in s.targets)][:1]
    _, parts = detector_step(
        model, phrase_tokenizer(build_toy_tokenizer()), samples, LossWeights(), torch.device("cpu"), query_head=head
    )
    assert parts["query_position"] > 0.1  # untrained: far from the targets
    loss, _ = detector_step(
        model,
        phrase_tokenizer(build_toy_tokenizer()),
        samples,
        LossWeights(**{n: 0.0 for n in LossWeights.__dataclass_fields__ if n != "query_position"}),
        torch.device("cpu"),
        query_head=head,
    )
    loss.backward()
    assert embedder.layers[-1].weight.grad.abs().sum() > 0
    assert torch.equal(
        fourier_position(torch.tensor([[0.5 / 9, 0.5 / 12]])),  # the pixel side's features
        position_targets((12, 9))[:, 0, 0][None],
    )


def test_start_from_a_directory_without_a_model_is_a_clear_error(tmp_path, capsys):
    from sam3_ros.cli import main

    assert main(["train-toy", "--start-from", str(tmp_path), "--phases", "scoring", "--out", str(tmp_path / "o")]) == 1
    assert f"--start-from: model directory {tmp_path} has no config.json" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_region_loss_scores_each_concept_region_by_its_mean_logits():
    import torch

    from sam3_ros.training.auxiliary import region_loss
    from sam3_ros.training.data import BACKGROUND

    labels = torch.full((1, 4, 4), BACKGROUND)
    labels[0, :2, :2], labels[0, 2:, 2:] = 0, 1  # two regions of one pixel-count each
    right = torch.full((1, BACKGROUND + 1, 4, 4), -20.0)
    right[0, 0, :2, :2] = right[0, 1, 2:, 2:] = 20.0
    assert float(region_loss(right, labels)) < 1e-6
    # one wrong pixel in a region's four leaves its mean right; the whole region wrong does not
    one_off = right.clone()
    one_off[0, 0, 0, 0], one_off[0, 2, 0, 0] = -20.0, 20.0
    assert float(region_loss(one_off, labels)) < 1e-6
    swapped = right.clone()
    swapped[0, [0, 1]] = right[0, [1, 0]]
    assert float(region_loss(swapped, labels)) > 10
    assert float(region_loss(right, torch.full((1, 4, 4), BACKGROUND))) == 0.0  # no region: nothing to score


def test_linear_probe_reads_a_separable_label_and_not_noise():
    import torch

    from sam3_ros.training.probe import linear_probe_accuracy

    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (400,), generator=generator)
    noise = torch.randn(400, 16, generator=generator)
    separable = noise.clone()
    separable[:, :3] += 4 * torch.nn.functional.one_hot(labels, 3)
    assert linear_probe_accuracy(separable, labels) > 0.95
    assert linear_probe_accuracy(noise, labels) < 0.5


def test_region_features_of_a_background_only_frame_are_empty():
    import torch

    from sam3_ros.training.data import BACKGROUND
    from sam3_ros.training.probe import _region_features

    pooled, shapes = _region_features(torch.randn(8, 3, 3), np.full((12, 12), BACKGROUND))
    assert pooled.shape == (0, 8) and shapes == []
    pooled, shapes = _region_features(torch.ones(8, 3, 3), np.array([[0] * 6 + [BACKGROUND] * 6] * 12))
    assert pooled.shape == (1, 8) and shapes == [0] and torch.allclose(pooled, torch.ones(1, 8))
