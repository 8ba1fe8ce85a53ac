"""Replay through the real node (`sam3-ros node --transport dds` in a subprocess, Cyclone DDS on loopback,
tiny-random engine, a random DDS domain): lockstep gives exactly the in-process outputs; realtime drops
what the node cannot keep up with; `sam3-ros demo` writes the overlay video and the report."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from sam3_ros.engine import load_engine
from sam3_ros.eval import bags
from sam3_ros.eval.evaluate import INSTANCES_TOPIC, evaluate
from sam3_ros.eval.groundtruth import GroundTruth
from sam3_ros.eval.node_process import NodeProcess, NodeProcessor, NodeRealtimeReplay
from sam3_ros.eval.replay import EngineProcessor, Replay
from sam3_ros.pipeline.messages import time_to_ns
from sam3_ros.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
BAG = ROOT / "tests" / "data" / "synthetic_seed0"
GT = GroundTruth.load(ROOT / "tests" / "data" / "synthetic_seed0.gt.json")
TOPIC = "/camera/image_raw"
# Random weights score ~0.26: zero thresholds make it spawn objects, so the outputs carry masks.
SETTINGS = Settings.default(
    {
        "model": "tiny-random",
        "detection.score_threshold": 0.0,
        "detection.new_object_threshold": 0.0,
        "tracking.keep_alive_frames": 0,
        "input.topics": [TOPIC],
    }
)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with NodeProcess(SETTINGS, tmp_path_factory.mktemp("node")) as running:
        yield running


def outputs(bag):
    """The recorded InstanceArrays without wall-clock fields (latency) and log times."""
    return [
        (
            time_to_ns(m.header.stamp),
            m.header.frame_id,
            m.camera,
            list(m.prompt),
            [(i.id, i.concept, i.score, tuple(i.box), tuple(i.mask_rle), i.age, i.detected) for i in m.instances],
        )
        for _, m in bags.read_messages(bag, INSTANCES_TOPIC)
    ]


def test_lockstep_through_the_node_equals_in_process(node, tmp_path):
    through_node = evaluate(BAG, GT, Replay(NodeProcessor(node, TOPIC, GT.phrases)), tmp_path / "dds", progress=False)
    in_process = evaluate(
        BAG, GT, Replay(EngineProcessor(load_engine(SETTINGS), GT.phrases, TOPIC)), tmp_path / "inproc", progress=False
    )
    a, b = outputs(through_node.output_bag), outputs(in_process.output_bag)
    assert len(a) == GT.length and sum(len(x[-1]) for x in a) > 0
    # ids differ only if the node had objects before: compare everything but ids' offset
    offset = a[0][-1][0][0] - b[0][-1][0][0]
    assert [(s, f, c, p, [(i - offset, *rest) for i, *rest in inst]) for s, f, c, p, inst in a] == b
    assert through_node.report["dropped"] == 0


def test_realtime_through_the_node_drops_what_it_cannot_keep_up_with(node, tmp_path):
    replay = NodeRealtimeReplay(node, TOPIC, GT.phrases, rate=4.0)  # 60 fps: more than tiny-random on CPU
    run = evaluate(BAG, GT, replay, tmp_path / "rt", progress=False)
    recorded = list(bags.read_messages(run.output_bag, INSTANCES_TOPIC))
    assert run.report["frames"] == GT.length
    # every frame not answered was either skipped for a newer one or never reached the node
    assert (
        0
        < run.report["dropped"]
        <= run.report["dropped"] + run.report["missed_in_transport"]
        == GT.length - len(recorded)
    )
    stamps = [time_to_ns(m.header.stamp) for _, m in recorded]
    assert stamps == sorted(stamps) and stamps[-1] == time_to_ns(
        list(bags.read_messages(BAG, TOPIC))[-1][1].header.stamp
    )  # the newest frame is always answered
    assert recorded[-1][1].dropped_frames > 0  # the node counts its drops too


def test_demo_writes_overlay_and_report(tmp_path):
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sam3_ros.cli",
            "demo",
            "--out",
            str(tmp_path / "demo"),
            "--frames",
            "6",
            "--size",
            "96x72",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "node over DDS-direct" in out.stdout and "cgF1" in out.stdout
    video = cv2.VideoCapture(str(tmp_path / "demo" / "overlay.mp4"))
    frames = 0
    while True:
        ok, image = video.read()
        if not ok:
            break
        assert image.shape == (72, 96, 3)
        frames += 1
    assert frames == 6
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert report["frames"] == 6 and report["dropped"] == 0
