"""The probe of ``sam3-ros train-toy --probe``: its figures on a real (untrained) model, and the
command's answers to bad arguments."""

import json
import math

import numpy as np
import pytest

from sam3_ros.cli import main
from sam3_ros.engine.loading import load_model
from sam3_ros.training.probe import probe_model, rank_auc


def test_rank_auc_is_the_probability_a_positive_ranks_higher():
    assert rank_auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert rank_auc([0.1], [0.9]) == 0.0
    assert rank_auc([0.5], [0.5]) == 0.5
    assert rank_auc([0.9, 0.1], [0.5]) == 0.5
    assert math.isnan(rank_auc([], [0.5]))


def test_probe_of_a_random_model_reports_every_figure_in_range():
    report = probe_model(load_model("tiny-random"), frames=3, seed=1, clips=2)
    assert report.frames == 3 and report.objects > 0 and report.tracker_clips == 2
    for name in (
        "presence_present",
        "best_query_giou",
        "objects_with_query_on",
        "score_elsewhere",
        "present_phrases_detected",
        "present_phrases_starting",
        "tracker_mask_iou",
        "tracker_copy_iou",
    ):
        value = getattr(report, name)
        assert -1.0 <= value <= 1.0, name
    # NaN when no query of a random model sits on an object
    assert math.isnan(report.score_on_object) == (report.objects_with_query_on == 0.0)
    assert report.query_box_motion >= 0.0
    assert report.present_phrases_starting <= report.present_phrases_detected  # 0.7 is above 0.5
    # objects move a little between frames: their last true mask still covers most of them
    assert 0.3 < report.tracker_copy_iou < 1.0
    # the same seed gives the same frames and so the same figures
    again = probe_model(load_model("tiny-random"), frames=3, seed=1, clips=2)
    assert np.allclose([v for v in vars(report).values()], [v for v in vars(again).values()], equal_nan=True)


def test_probe_command_writes_its_json(tmp_path, capsys):
    assert (
        main(
            ["train-toy", "--probe", "tiny-random", "--probe-frames", "2", "--probe-clips", "1", "--out", str(tmp_path)]
        )
        == 0
    )
    record = json.loads((tmp_path / "probe.json").read_text())
    assert record["model"] == "tiny-random" and record["frames"] == 2 and record["tracker_clips"] == 1
    assert "best_query_giou" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, status, message",
    [
        (["--probe", "/nonexistent/model"], 1, "neither a built-in name"),
        (["--probe", "tiny-random", "--probe-frames", "0"], 2, "--probe-frames and --probe-clips must be >= 1"),
        (["--probe", "tiny-random", "--probe-clips", "0"], 2, "--probe-frames and --probe-clips must be >= 1"),
    ],
)
def test_probe_command_bad_arguments(argv, status, message, capsys, tmp_path):
    assert main(["train-toy", *argv, "--out", str(tmp_path)]) == status
    err = capsys.readouterr().err
    assert err.startswith("sam3-ros train-toy: ") and message in err, err
