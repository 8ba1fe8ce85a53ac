"""Node parts without middleware: latest-wins slot, request validation, diagnostics, overlay/label images."""

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from sam3_ros.engine.types import Frame, Instances
from sam3_ros.interfaces import typestore
from sam3_ros.pipeline import requests
from sam3_ros.pipeline.diagnostics import LATENCY_WINDOW, Diagnostics
from sam3_ros.pipeline.overlay import color_of, label_image, overlay_image
from sam3_ros.pipeline.slot import LatestSlot, SlotClosed
from sam3_ros.settings import PromptSettings

LIMITS = PromptSettings(max_phrases=3, max_phrase_chars=20, max_exemplar_boxes=2)
SIZE = (48, 64)  # H, W


# -- latest-wins slot ---------------------------------------------------------------------------------
def test_slot_keeps_only_the_newest_image_and_counts_drops():
    slot = LatestSlot()
    for i in range(5):
        slot.put(i)
    commands, pending = slot.take(0)
    assert commands == [] and pending.message == 4
    assert (slot.received, slot.dropped) == (5, 4)
    assert slot.take(0) == ([], None)  # taken: nothing pending, nothing dropped
    slot.put(5)
    assert slot.take(0)[1].message == 5 and slot.dropped == 4


def test_slot_runs_commands_and_wakes_the_worker():
    slot = LatestSlot()
    got = []

    def worker():
        commands, _ = slot.take(5)
        for command, future in commands:
            future.set_result(command())
        got.append(True)

    thread = threading.Thread(target=worker)
    thread.start()
    assert slot.submit(lambda: 41 + 1).result(5) == 42
    thread.join(5)
    assert got == [True]


def test_closed_slot_refuses_commands_and_returns_nothing():
    slot = LatestSlot()
    pending_future = slot.submit(lambda: 1)
    slot.close()
    assert slot.take(0) == ([], None)
    with pytest.raises(RuntimeError, match="shutting down"):
        pending_future.result(1)
    with pytest.raises(RuntimeError, match="shutting down"):
        slot.submit(lambda: 1).result(1)


def test_slot_knows_since_when_an_image_waits_for_an_output():
    slot = LatestSlot()
    assert slot.unanswered_since is None
    slot.put(1)
    first = slot.unanswered_since
    slot.put(2)
    assert slot.unanswered_since == first  # the replaced image waited first
    slot.take(0)
    slot.answered()
    assert slot.unanswered_since is None
    slot.put(3)
    slot.answered()  # answered an earlier image: image 3 still waits, since its arrival
    assert slot.unanswered_since == slot.last_received_at is not None


def test_slot_closed_with_a_reason_refuses_commands_keeps_images_and_reopens():
    slot = LatestSlot()
    queued = slot.submit(lambda: 1)
    slot.close("the worker of /cam stopped")
    with pytest.raises(SlotClosed, match="the worker of /cam stopped"):
        queued.result(1)
    with pytest.raises(SlotClosed, match="the worker of /cam stopped"):
        slot.submit(lambda: 2).result(1)
    slot.put(7)
    assert slot.take(0) == ([], None) and slot.received == 1
    slot.reopen()
    future = slot.submit(lambda: 3)
    commands, pending = slot.take(0)
    assert pending.message == 7 and len(commands) == 1
    commands[0][1].set_result(commands[0][0]())
    assert future.result(1) == 3


# -- request validation -------------------------------------------------------------------------------
def set_prompt_request(phrases=(), boxes=(), labels=()):
    return SimpleNamespace(
        phrases=list(phrases),
        boxes=np.asarray(boxes, np.float32),
        box_labels=np.asarray(labels, bool),
        camera="",
        keep_tracks=False,
    )


def add_points_request(points=(), labels=(), box=(), object_id=-1):
    return SimpleNamespace(
        object_id=object_id,
        points=np.asarray(points, np.float32),
        labels=np.asarray(labels, np.int8),
        box=np.asarray(box, np.float32),
    )


def test_valid_prompt_is_parsed_and_boxes_clipped():
    prompt = requests.parse_set_prompt(
        set_prompt_request([" cat ", "red circle"], [-5, 10, 20, 30, 50, 40, 90, 60], [True, False]), LIMITS, SIZE
    )
    assert prompt.phrases == ["cat", "red circle"]
    assert prompt.boxes.tolist() == [[0, 10, 20, 30], [50, 40, 64, 48]]
    assert prompt.box_labels.tolist() == [True, False]
    assert requests.parse_prompt_text(" dog, , cat ,", LIMITS) == ["dog", "cat"]


@pytest.mark.parametrize(
    "request_,expected",
    [
        (set_prompt_request(), "empty prompt"),
        (set_prompt_request(["x" * 10000]), "phrase 0 has 10000 characters, more than the limit of 20"),
        (set_prompt_request(["a", "  "]), "phrase 1 is empty"),
        (set_prompt_request(["a", "b", "c", "d"]), "4 phrases, more than the limit of 3"),
        (set_prompt_request(["a"], [1, 2, 3]), "boxes has 3 values"),
        (set_prompt_request(["a"], [1, 2, 3, 4], []), "0 box_labels for 1 boxes"),
        (set_prompt_request([], [0] * 12, [True] * 3), "3 exemplar boxes, more than the limit of 2"),
        (set_prompt_request([], [100, 100, 120, 130], [True]), "is outside the 64x48 image"),
        (set_prompt_request([], [10, 10, 5, 20], [True]), "needs x_max > x_min"),
        (set_prompt_request([], [np.nan, 1, 2, 3], [True]), "box 0 contains NaN"),
    ],
)
def test_bad_prompts_are_rejected_with_a_reason(request_, expected):
    with pytest.raises(ValueError, match=expected):
        requests.parse_set_prompt(request_, LIMITS, SIZE)


def test_exemplar_boxes_need_an_image_and_prompt_text_must_have_a_phrase():
    with pytest.raises(ValueError, match="none has arrived yet"):
        requests.parse_set_prompt(set_prompt_request([], [1, 2, 3, 4], [True]), LIMITS, None)
    with pytest.raises(ValueError, match="empty prompt"):
        requests.parse_prompt_text(" , ,", LIMITS)


def test_valid_points_are_parsed():
    parsed = requests.parse_add_points(add_points_request([10, 20, 30, 40], [1, 0], [5, 5, 70, 30]), SIZE)
    assert parsed.object_id is None
    assert parsed.points.tolist() == [[10, 20], [30, 40]] and parsed.labels.tolist() == [1, 0]
    assert parsed.box.tolist() == [5, 5, 64, 30]
    assert requests.parse_add_points(add_points_request([], [], [1, 1, 9, 9], object_id=3), SIZE).object_id == 3


@pytest.mark.parametrize(
    "request_,expected",
    [
        (add_points_request([1, 2, 3], [1]), "points has 3 values"),
        (add_points_request([1, 2], [1, 1]), "2 labels for 1 points"),
        (add_points_request([1, 2], [2]), "labels must be 1"),
        (add_points_request([np.nan, 2], [1]), "points contain NaN"),
        (add_points_request([1, 2], [1], [0, 0, np.inf, 3]), "box contains NaN or infinite"),
        (add_points_request([70, 2], [1]), r"point \(70, 2\) is outside the 64x48 image"),
        (add_points_request([], []), "no points and no box"),
        (add_points_request([1, 2], [1], [1, 2, 3]), "box has 3 values"),
        (add_points_request([1, 2], [1], [-9, -9, -1, -1]), "outside the 64x48 image"),
        (add_points_request([1, 2], [1], object_id=-7), "object_id -7 is invalid"),
    ],
)
def test_bad_points_are_rejected_with_a_reason(request_, expected):
    with pytest.raises(ValueError, match=expected):
        requests.parse_add_points(request_, SIZE)


# -- diagnostics --------------------------------------------------------------------------------------
def _values(status):
    return {kv.key: kv.value for kv in status.values}


def test_diagnostics_report_rates_drops_rejections_and_latency():
    diagnostics = Diagnostics(["/cam"])
    diagnostics.message(0, {"/cam": 0}, {"/cam": 0})  # starts a period
    for latency in range(1, 101):
        diagnostics.published("/cam", float(latency), objects=3)
    diagnostics.rejected("/cam", "bad_image", "unsupported image encoding 'x'")
    diagnostics.count("set_prompt.rejected")
    time.sleep(0.05)
    message = diagnostics.message(123, {"/cam": 150}, {"/cam": 49})
    camera, node = message.status
    values = _values(camera)
    assert camera.level == 1 and "49 stale drops, 1 rejected" in camera.message
    assert float(values["latency_p50_ms"]) == pytest.approx(50.5) and float(values["latency_p99_ms"]) > 98
    assert (values["received"], values["published"], values["dropped_stale"]) == ("150", "100", "49")
    assert values["rejected.bad_image"] == "1" and "unsupported image encoding" in values["last_error"]
    assert float(values["input_hz"]) > float(values["output_hz"]) > 0 and values["objects"] == "3"
    assert _values(node)["set_prompt.rejected"] == "1"
    assert message.header.stamp.nanosec == 123
    # Round trip through the wire codec: the message is a valid DiagnosticArray.
    typestore().serialize_cdr(message, "diagnostic_msgs/msg/DiagnosticArray")


def test_a_camera_with_a_problem_is_an_error_until_it_is_cleared():
    diagnostics = Diagnostics(["/cam"])
    assert diagnostics.rejected("/cam", "bad_image", "x") == 1
    assert diagnostics.set_problem("/cam", "no output for 5.0 s after an image: busy in engine for 5.0 s")
    assert not diagnostics.set_problem("/cam", "no output for 6.0 s after an image: busy in engine for 6.0 s")
    diagnostics.worker_restarted("/cam")
    camera, _ = diagnostics.message(0, {"/cam": 3}, {"/cam": 0}).status
    assert camera.level == 2 and camera.message == "no output for 6.0 s after an image: busy in engine for 6.0 s"
    assert _values(camera)["worker_restarts"] == "1"
    assert diagnostics.set_problem("/cam", "")
    camera, _ = diagnostics.message(0, {"/cam": 3}, {"/cam": 0}).status
    assert camera.level == 1 and camera.message == "0 stale drops, 1 rejected inputs, 0 missed in transport"


def test_latency_window_is_bounded():
    diagnostics = Diagnostics(["/cam"])
    for _ in range(LATENCY_WINDOW * 3):
        diagnostics.published("/cam", 1.0, 0)
    assert len(diagnostics.cameras["/cam"].latencies_ms) == LATENCY_WINDOW


# -- overlay and labels -------------------------------------------------------------------------------
def _instances():
    frame = Frame(image=np.zeros((*SIZE, 3), np.uint8), stamp_ns=5, frame_id="f", camera="/cam")
    masks = np.zeros((2, *SIZE), bool)
    masks[0, 5:15, 5:25] = True
    masks[1, 10:30, 20:40] = True  # overlaps the first
    found = Instances.empty(frame, ["cat"])
    found.ids, found.masks = np.array([70000, 4]), masks
    found.scores, found.boxes = (
        np.array([0.9, 0.6], np.float32),
        np.array([[5, 5, 25, 15], [20, 10, 40, 30]], np.float32),
    )
    found.concept_index, found.detected = np.array([0, -1]), np.array([True, False])
    found.age, found.frames_since_detected = np.zeros(2, np.int64), np.zeros(2, np.int64)
    return found


def test_label_image_holds_ids_and_higher_id_wins_overlaps():
    labels = label_image(_instances())
    assert labels.dtype == np.uint16 and labels.shape == SIZE
    assert labels[7, 7] == 70000 & 0xFFFF and labels[20, 30] == 4 and labels[0, 0] == 0
    assert labels[12, 22] == 70000 & 0xFFFF  # overlap: id 70000 > 4


def test_overlay_tints_masks_in_the_object_color():
    rgb = np.full((*SIZE, 3), 100, np.uint8)
    out = overlay_image(rgb, _instances())
    assert out.shape == rgb.shape and out.dtype == np.uint8
    expected = (0.5 * 100 + 0.5 * np.array(color_of(4))).astype(int)
    assert np.abs(out[25, 35].astype(int) - expected).max() <= 1  # inside object 4, away from text and box
    assert (out[45, 60] == 100).all()  # background untouched
    assert color_of(4) != color_of(5)
