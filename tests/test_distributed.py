"""Across devices on CPU: camera placement, and object sharding over tracker worker processes (gloo).

The sharded engine runs the real tiny-random model in 3 spawned worker processes joined by a real
``torch.distributed`` gloo group on loopback; it is compared frame by frame with the single-process
engine on the same frames, then workers are killed (SIGKILL) between and in the middle of frames.
"""

import os
import signal

import numpy as np
import pytest
import torch

from sam3_ros.commands.bench_engine import moving_shapes
from sam3_ros.engine import ConceptPrompt, Frame, load_engine, load_model
from sam3_ros.engine.placement import assign_cameras, least_loaded
from sam3_ros.kernels.torch_ops import mask_iou
from sam3_ros.settings import Settings, SettingsError

SIZE = 56
WORKERS = 3
# low thresholds and short keep-alive: objects start, expire and hit max_objects within 40 frames
SCENARIO = {
    "model": "tiny-random",
    "image_size": SIZE,
    "detection.score_threshold": 0.0,
    "detection.new_object_threshold": 0.0,
    "detection.nms_iou_threshold": 0.5,
    "tracking.assoc_iou_threshold": 0.1,
    "tracking.max_objects": 6,
    "tracking.keep_alive_frames": 3,
    "tracking.recondition_every": 4,
}


def test_least_loaded_camera_placement_is_balanced_and_deterministic():
    assert assign_cameras(["a", "b", "c"], ["cuda:0", "cuda:1"]) == {"a": 0, "b": 1, "c": 0}
    placed = assign_cameras([f"/cam{i}" for i in range(5)], ["cpu", "cpu", "cpu"])
    assert sorted(np.bincount(list(placed.values())).tolist()) == [1, 2, 2]
    assert least_loaded({"x": 2, "y": 1, "z": 1}) == "y"
    with pytest.raises(ValueError, match="no devices"):
        assign_cameras(["a"], [])


def test_node_places_three_cameras_on_two_devices_and_runs_them():
    from sam3_ros.codec.image import rgb_to_image_fields
    from sam3_ros.pipeline.messages import image_message
    from sam3_ros.pipeline.node import PerceptionNode, engine_factory

    cameras = ["/a/image", "/b/image", "/c/image"]
    settings = Settings.default(
        {
            "model": "tiny-random",
            "devices": ["cpu", "cpu"],
            "placement": "cameras",
            "input.topics": cameras,
            "image_size": SIZE,
            "prompt.text": "cat",
        }
    )
    make = engine_factory(settings)
    assert make.placement == {"/a/image": 0, "/b/image": 1, "/c/image": 0}  # 2 + 1
    published = []
    node = PerceptionNode(settings, make, lambda kind, message: published.append((kind, message)))
    rgb = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    for i, camera in enumerate(cameras):  # run each camera's frame on the caller's thread, as its worker does
        node._process(node.cameras[camera], image_message(rgb_to_image_fields(rgb), i + 1, "cam"), 0.0)
    assert sorted(m.header.stamp.nanosec for k, m in published if k == "instances") == [1, 2, 3]


def test_node_with_object_placement_runs_one_camera_on_a_sharded_engine():
    from sam3_ros.codec.image import rgb_to_image_fields
    from sam3_ros.engine.distributed import ShardedEngine
    from sam3_ros.pipeline.messages import image_message
    from sam3_ros.pipeline.node import PerceptionNode, engine_factory

    settings = Settings.default(
        {**SCENARIO, "devices": ["cpu", "cpu"], "placement": "objects", "input.topics": ["/cam"], "prompt.text": "cat"}
    )
    engine = engine_factory(settings)("/cam")
    try:
        assert isinstance(engine, ShardedEngine) and engine.num_workers == 1  # detector here, objects there
        published = []
        node = PerceptionNode(settings, lambda camera: engine, lambda kind, message: published.append((kind, message)))
        for stamp, rgb in enumerate(moving_shapes(3, 48, 64), start=1):
            node._process(node.cameras["/cam"], image_message(rgb_to_image_fields(rgb), stamp, "cam"), 0.0)
        published = [m for k, m in published if k == "instances"]
        assert [m.header.stamp.nanosec for m in published] == [1, 2, 3]
        assert len(published[-1].instances) > 0 and engine.counters.frames == 3
    finally:
        engine.close()


def test_object_placement_shards_one_camera_only():
    with pytest.raises(SettingsError, match="placement: objects"):
        Settings.default({"devices": ["cpu", "cpu"], "placement": "objects", "input.topics": ["/a", "/b"]})
    Settings.default({"devices": ["cpu"], "placement": "objects", "input.topics": ["/a", "/b"]})  # one device: fine


@pytest.fixture(scope="module")
def loaded():
    return load_model("tiny-random", image_size=SIZE)


@pytest.fixture(scope="module")
def sharded(loaded):
    from sam3_ros.engine.distributed import load_sharded_engine

    engine = load_sharded_engine(
        Settings.default({**SCENARIO, "devices": ["cpu"] * (1 + WORKERS), "placement": "objects"}),
        loaded,
        timeout_s=30.0,
    )
    try:
        yield engine
    finally:
        engine.close()
        assert not any(w.process.is_alive() for w in engine.pool.workers)


def agree(a, b) -> bool:
    """Same masks up to rounding: IoU >= 0.99, or both empty (IoU of two empty masks is undefined)."""
    a, b = torch.from_numpy(np.asarray(a)), torch.from_numpy(np.asarray(b))
    iou = mask_iou(a, b).diagonal()
    both_empty = ~a.flatten(1).any(1) & ~b.flatten(1).any(1)
    return bool(((iou >= 0.99) | both_empty).all())


def test_sharded_engine_matches_the_single_process_engine(loaded, sharded):
    single = load_engine(Settings.default({**SCENARIO, "devices": ["cpu"]}), loaded)
    prompt = ConceptPrompt(phrases=["shape", "box"])
    single.set_prompt(prompt)
    sharded.set_prompt(prompt)
    spread = []
    for t, rgb in enumerate(moving_shapes(40, 48, 64)):
        a, b = sharded.step(Frame(rgb, stamp_ns=t)), single.step(Frame(rgb, stamp_ns=t))
        assert a.ids.tolist() == b.ids.tolist(), f"frame {t}"
        assert agree(a.masks, b.masks), f"frame {t}"
        assert torch.equal(a.detected, b.detected) and torch.allclose(a.scores, b.scores, atol=1e-4)
        loads = list(sharded.objects_per_worker().values())
        assert max(loads) - min(loads) <= 1 or t > 0  # least-loaded on spawn; later expiries may unbalance
        spread.append(min(loads))
    assert max(spread) > 0  # every worker tracked objects
    assert sharded.counters.objects_created == single.counters.objects_created > 10
    assert sharded.counters.objects_expired == single.counters.objects_expired > 0
    assert sharded.counters.workers_lost == 0 and "comm" in a.timings_ms


def _diagnostic_values(engine) -> dict[str, str]:
    """The camera's values in the node's /diagnostics message, with this engine's counters."""
    from sam3_ros.pipeline.diagnostics import Diagnostics

    message = Diagnostics(["/cam"]).message(0, {"/cam": 0}, {"/cam": 0}, {"/cam": vars(engine.counters)})
    return {kv.key: kv.value for kv in message.status[0].values}


def _clicked_objects(engine, frames) -> list[int]:
    """Reset, process one frame, replace half of its objects by click-created ones (these never expire)."""
    engine.reset()
    out = engine.step(Frame(frames[0]))
    for obj_id in out.ids.tolist()[:3]:
        engine.remove(obj_id)
    return [engine.add_points(None, [[10 + 12 * i, 20]], [1]) for i in range(3)]


def test_killed_worker_is_detected_and_its_objects_go_on_elsewhere(sharded):
    frames = moving_shapes(12, 48, 64, seed=1)
    clicks = _clicked_objects(sharded, frames)
    lost_before = sharded.counters.workers_lost
    victim = sharded.worker_of(clicks[0])
    moved = sharded.objects_per_worker()[victim]
    process = next(w.process for w in sharded.pool.workers if w.id == victim)
    os.kill(process.pid, signal.SIGKILL)
    process.join(10)
    for rgb in frames[1:5]:  # detected at the next frame (process sentinel): no frame is lost
        assert set(clicks) <= set(sharded.step(Frame(rgb)).ids.tolist())
    assert sharded.counters.workers_lost == lost_before + 1
    assert sharded.counters.objects_respawned >= moved > 0
    assert sharded.counters.frames_failed == 0
    assert victim not in sharded.objects_per_worker() and sharded.num_workers == WORKERS - 1
    values = _diagnostic_values(sharded)
    assert values["engine.workers_lost"] == str(lost_before + 1) and int(values["engine.objects_respawned"]) >= moved
    sharded.remove(clicks[1])  # the engine's surface still works after recovery
    assert sharded.add_points(clicks[0], [[20, 20]], [1]) == clicks[0]


def test_worker_killed_during_a_frame_drops_that_frame_only(sharded, monkeypatch):
    frames = moving_shapes(8, 48, 64, seed=2)
    clicks = _clicked_objects(sharded, frames)
    failed_before, lost_before = sharded.counters.frames_failed, sharded.counters.workers_lost
    victim = sharded.pool.workers[0].process
    detect = sharded._detect

    def detect_while_a_worker_dies(*args):  # the workers are tracking this frame right now
        os.kill(victim.pid, signal.SIGKILL)
        victim.join(10)
        return detect(*args)

    monkeypatch.setattr(sharded, "_detect", detect_while_a_worker_dies)
    with pytest.raises(RuntimeError, match="frame dropped"):
        sharded.step(Frame(frames[1]))
    monkeypatch.undo()

    def detector_bug(*args):  # the workers are tracking; this frame fails here for another reason
        raise IndexError("a bug in the detector")

    monkeypatch.setattr(sharded, "_detect", detector_bug)
    with pytest.raises(IndexError):
        sharded.step(Frame(frames[1]))
    monkeypatch.undo()
    for rgb in frames[2:5]:  # no worker waits in the failed frame's gather: the stream goes on at once
        assert set(clicks) <= set(sharded.step(Frame(rgb)).ids.tolist())
    assert sharded.counters.frames_failed == failed_before + 1
    assert sharded.counters.workers_lost == lost_before + 1


def test_bench_multigpu_writes_a_table_and_json(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "multigpu.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "sam3_ros.cli",
            "bench",
            "multigpu",
            "--objects",
            "2",
            "--workers",
            "1",
            "--frames",
            "2",
            "--image-size",
            str(SIZE),
            "--size",
            "64x48",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "comm alone" in run.stdout and "CPU" in run.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [(r["workers"], r["objects"]) for r in rows] == [(0, 2), (1, 2)]
    assert rows[1]["comm_probe_ms"]["p50"] > 0 and rows[1]["comm_bytes"] > 0 and rows[1]["fps"] > 0


def test_workers_failing_on_their_own_are_replaced_when_none_is_left(sharded):
    frames = moving_shapes(5, 48, 64, seed=3)
    clicks = _clicked_objects(sharded, frames)
    lost_before = sharded.counters.workers_lost
    gone = list(sharded.pool.workers)
    for worker in gone:  # an error other than a failed collective ends a worker (here: a command it lacks)
        sharded.pool.send(worker, "no_such_command")
        worker.process.join(30)
    for rgb in frames[1:4]:
        assert set(clicks) <= set(sharded.step(Frame(rgb)).ids.tolist())
    assert sharded.counters.workers_lost == lost_before + len(gone)
    assert sharded.num_workers == 1 and not {w.id for w in gone} & set(sharded.objects_per_worker())
