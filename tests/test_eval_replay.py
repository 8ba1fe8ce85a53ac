"""Replay through the real engine (built-in tiny-random model): lockstep is deterministic, realtime with
an artificially slow engine drops frames and the report counts them; ROS recordings score the same way."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sam3_ros.engine import load_engine
from sam3_ros.eval import bags
from sam3_ros.eval.evaluate import INSTANCES_TOPIC, evaluate, score_recording
from sam3_ros.eval.groundtruth import GroundTruth
from sam3_ros.eval.replay import EngineProcessor, Replay, SlowedProcessor
from sam3_ros.pipeline.messages import time_to_ns
from sam3_ros.ros.names import INSTANCES_TYPE
from sam3_ros.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
BAG = ROOT / "tests" / "data" / "synthetic_seed0"
GT = GroundTruth.load(ROOT / "tests" / "data" / "synthetic_seed0.gt.json")
TOPIC = "/camera/image_raw"
# The random-weights model scores ~0.26: with zero thresholds it spawns objects, so outputs carry masks.
PERMISSIVE = {"detection.score_threshold": 0.0, "detection.new_object_threshold": 0.0, "tracking.max_objects": 16}


def processor(**overrides):
    return EngineProcessor(load_engine(Settings.default({"model": "tiny-random", **overrides})), GT.phrases, TOPIC)


def outputs(bag):
    """Everything of the recorded InstanceArrays except the wall-clock latency."""
    out = []
    for log_ns, msg in bags.read_messages(bag, INSTANCES_TOPIC):
        out.append(
            (
                log_ns,
                time_to_ns(msg.header.stamp),
                msg.header.frame_id,
                msg.camera,
                list(msg.prompt),
                [
                    (
                        i.id,
                        i.concept,
                        i.score,
                        tuple(i.box),
                        i.mask_height,
                        i.mask_width,
                        tuple(i.mask_rle),
                        i.age,
                        i.detected,
                        i.frames_since_detected,
                    )
                    for i in msg.instances
                ],
            )
        )
    return out


def test_lockstep_replay_twice_gives_identical_outputs(tmp_path):
    first = evaluate(BAG, GT, Replay(processor(**PERMISSIVE)), tmp_path / "a", progress=False)
    second = evaluate(BAG, GT, Replay(processor(**PERMISSIVE)), tmp_path / "b", progress=False)
    a, b = outputs(first.output_bag), outputs(second.output_bag)
    assert len(a) == GT.length and a == b
    assert sum(len(frame[-1]) for frame in a) > 0  # the comparison covers real masks, not empty frames
    assert first.report["dropped"] == 0 and first.report["frames"] == GT.length
    keys = {
        "cgF1",
        "pmF1",
        "IL_MCC",
        "HOTA",
        "IDF1",
        "id_switches",
        "fps",
        "latency_ms",
        "frames",
        "dropped",
        "missed_in_transport",
        "per_concept",
    }
    assert set(first.report) == keys and set(first.report["latency_ms"]) == {"p50", "p99"}
    strip = lambda r: {k: v for k, v in r.items() if k not in ("fps", "latency_ms")}  # noqa: E731
    assert strip(first.report) == strip(second.report)


def test_realtime_with_a_slow_engine_drops_frames_and_counts_them(tmp_path):
    delay = 0.2  # three frame periods at 15 fps
    run = evaluate(BAG, GT, Replay(SlowedProcessor(processor(), delay), "realtime"), tmp_path / "rt", progress=False)
    recorded = list(bags.read_messages(run.output_bag, INSTANCES_TOPIC))
    r = run.report
    assert r["frames"] == GT.length
    assert r["dropped"] == GT.length - len(recorded) and r["dropped"] >= GT.length // 2
    assert r["latency_ms"]["p50"] >= delay * 1e3
    assert r["fps"] < 6
    assert recorded[-1][1].dropped_frames == r["dropped"]  # the messages carry the cumulative count too
    stamps = [time_to_ns(m.header.stamp) for _, m in recorded]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert all(log_ns > time_to_ns(m.header.stamp) for log_ns, m in recorded)  # published after capture


def test_realtime_with_a_fast_processor_keeps_every_frame():
    class EchoStandIn:
        """A stand-in for the engine that answers instantly with the image header: only the pacing is
        under test here (the real engine's timing on a shared 2-core machine would make it flaky)."""

        def process(self, msg):
            return msg.header

    replay = Replay(EchoStandIn(), "realtime", rate=2.0)  # 30 fps: ample time per frame even on a busy machine
    out = list(replay.run(bags.read_messages(BAG, TOPIC)))
    assert len(out) == GT.length and replay.dropped == 0


def test_recording_of_the_node_is_scored_at_receive_times(tmp_path):
    """What launch/bag_eval.launch.py records: camera frames and outputs at their receive times. A node
    that only answers every other frame is scored with its previous (stale) output in between."""
    proc = processor(**PERMISSIVE)
    rec = tmp_path / "recording"
    camera = list(bags.read_messages(BAG, TOPIC))
    with bags.BagWriter(rec) as writer:
        for k, (log_ns, msg) in enumerate(camera):
            writer.write(TOPIC, "sensor_msgs/msg/Image", log_ns, msg)
            if k % 2 == 0:
                writer.write(INSTANCES_TOPIC, INSTANCES_TYPE, log_ns + 30_000_000, proc.process(msg))
    run = score_recording(rec, GT)
    assert run.report["frames"] == GT.length and run.report["dropped"] == GT.length // 2
    assert run.report["latency_ms"]["p50"] == pytest.approx(30.0)


def test_eval_command_writes_the_report(tmp_path):
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sam3_ros.cli",
            "eval",
            str(BAG),
            "--out",
            str(tmp_path / "o"),
            "--prompt",
            "red circle, yellow square",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert list(report["per_concept"]) == ["red circle", "yellow square"]
    assert "cgF1" in out.stdout and "latency p50" in out.stdout
    for name in ("report.md", "latency.png", "per_concept.png", "instances/metadata.yaml"):
        assert (tmp_path / "o" / name).is_file()
    bad = subprocess.run(
        [sys.executable, "-m", "sam3_ros.cli", "eval", str(BAG), "--out", str(tmp_path / "p"), "--topic", "/nope"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    errors = [line for line in bad.stderr.splitlines() if line.startswith("sam3-ros eval: ")]
    assert bad.returncode == 1 and "no image topic '/nope'" in "".join(errors), bad.stderr[-2000:]
