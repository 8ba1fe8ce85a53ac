"""Replay a bag through a processor, record the outputs as a bag, and score them against ground truth.

Scoring rule (the same for both pacings): ground-truth frame i is scored against the latest output
published before frame i+1 arrives (before the end of its frame period for the last frame). In
lockstep that is frame i's own output; in realtime it is what a robot would hold at that moment, so
drops and latency cost accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

from ..pipeline.messages import time_to_ns
from ..ros.names import INSTANCES_TYPE
from .bags import BagWriter, camera_topic, read_messages, topics
from .depth_error import depth_errors
from .groundtruth import GroundTruth
from .metrics import FrameObjects, Scorer
from .replay import Arrival, Replay, median_period

INSTANCES_TOPIC = "/sam3/instances"
OUTPUT_BAG = "instances"  # DIR/instances: the outputs as a rosbag2 (mcap)


@dataclass
class EvalRun:
    """Everything one evaluation measured: the report's numbers plus what the plots need."""

    report: dict
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (seconds into the clip, latency ms)
    wall_s: float = 0.0
    failed: int = 0  # frames the processor rejected
    ignored_low_score: int = 0
    ignored_other_concept: int = 0
    output_bag: Path | None = None
    arrivals: list[Arrival] = field(default_factory=list)
    period_ns: int = 0

    def held_outputs(self) -> Iterator[tuple[Arrival, object]]:
        """Each camera frame with the output a subscriber held for it (the one it was scored against)."""
        return outputs_by_deadline(self.arrivals, self.period_ns, read_messages(self.output_bag, INSTANCES_TOPIC))


def outputs_by_deadline(arrivals: list[Arrival], period_ns: int, outputs: Iterator[tuple[int, object]]):
    """For each arrival, the latest output published before the next arrival (None if none yet)."""
    latest, pending = None, next(outputs, None)
    for i, arrival in enumerate(arrivals):
        deadline = arrivals[i + 1].arrival_ns if i + 1 < len(arrivals) else arrival.arrival_ns + max(period_ns, 1)
        while pending is not None and pending[0] < deadline:
            latest, pending = pending[1], next(outputs, None)
        yield arrival, latest


def score_outputs(
    gt: GroundTruth, phrases: list[str], arrivals: list[Arrival], period_ns: int, outputs: Iterator[tuple[int, object]]
) -> Scorer:
    """Score (publish time, InstanceArray) outputs, in publish order, against the ground truth."""
    scorer = Scorer(phrases)
    empty = FrameObjects([], [], np.zeros((0, gt.height, gt.width), bool), scores=[])
    for arrival, msg in outputs_by_deadline(arrivals, period_ns, outputs):
        t = gt.frame_index(arrival.position, arrival.stamp_ns)
        if t is not None:
            scorer.add(gt.frame(t), empty if msg is None else FrameObjects.from_message(msg))
    return scorer


def evaluate(
    bag: str | Path,
    gt: GroundTruth,
    replay: Replay,
    out_dir: str | Path,
    *,
    phrases: list[str] | None = None,
    topic: str | None = None,
    progress: bool = True,
    settings=None,
) -> EvalRun:
    """Run ``replay`` over the bag's camera topic, write ``out_dir/instances`` and return the scored run.

    ``replay`` is a :class:`Replay` (in-process or lockstep through the node) or anything with its
    interface (``run``, ``arrivals``, ``period_ns``, ``wall_s``, ``failed``, ``pacing``), e.g. the
    realtime replay through the node. ``phrases`` are the noun phrases scored (default: the ground
    truth's, positives and negatives). With depth ground truth the report has the 3D errors too
    (``depth_error``, with ``settings``' depth section; default settings without)."""
    phrases = list(phrases or gt.phrases)
    topic = camera_topic(bag, topic, gt.depth_topic)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    output_bag = out_dir / OUTPUT_BAG
    if output_bag.exists():
        raise ValueError(f"{output_bag} exists already; choose another --out directory")
    latencies = []
    with (
        BagWriter(output_bag) as writer,
        tqdm(total=topics(bag)[topic][1], desc=f"replay ({replay.pacing})", unit="frame", disable=not progress) as bar,
    ):
        for out in replay.run(read_messages(bag, topic)):
            writer.write(INSTANCES_TOPIC, INSTANCES_TYPE, out.time_ns, out.msg)
            latencies.append(((out.arrival_ns - replay.arrivals[0].arrival_ns) / 1e9, out.latency_ms))
            bar.update(len(replay.arrivals) - bar.n)
        bar.update(len(replay.arrivals) - bar.n)
    scorer = score_outputs(gt, phrases, replay.arrivals, replay.period_ns, read_messages(output_bag, INSTANCES_TOPIC))
    run = _run(scorer, latencies, replay.arrivals, replay.period_ns, replay.wall_s, replay.failed, output_bag)
    if gt.has_3d:
        from ..settings import Settings

        run.report["depth_3d"] = depth_errors(
            bag, gt, read_messages(output_bag, INSTANCES_TOPIC), settings or Settings.default({})
        )
    return run


def score_recording(
    recorded: str | Path, gt: GroundTruth, *, phrases: list[str] | None = None, topic: str | None = None
) -> EvalRun:
    """Score a recording of the camera topic and ``/sam3/instances`` (``launch/bag_eval.launch.py``): both
    logged at their receive times, so this is the realtime result that ROS delivered."""
    topic = camera_topic(recorded, topic, gt.depth_topic)
    arrivals = [
        Arrival(i, time_to_ns(msg.header.stamp), int(log_ns))
        for i, (log_ns, msg) in enumerate(read_messages(recorded, topic))
    ]
    if not arrivals:
        raise ValueError(f"recording {recorded} has no messages on {topic}")
    arrival_of = {a.stamp_ns: a.arrival_ns for a in arrivals}
    latencies, last = [], arrivals[0].arrival_ns
    for log_ns, msg in read_messages(recorded, INSTANCES_TOPIC):
        source = arrival_of.get(time_to_ns(msg.header.stamp))
        if source is not None:  # an output for a frame recorded before it
            latencies.append(((source - arrivals[0].arrival_ns) / 1e9, (log_ns - source) / 1e6))
        last = max(last, log_ns)
    period_ns = median_period(arrivals)
    scorer = score_outputs(
        gt, list(phrases or gt.phrases), arrivals, period_ns, read_messages(recorded, INSTANCES_TOPIC)
    )
    return _run(scorer, latencies, arrivals, period_ns, (last - arrivals[0].arrival_ns) / 1e9, 0, Path(recorded))


def _run(
    scorer: Scorer,
    latencies: list[tuple[float, float]],
    arrivals: list[Arrival],
    period_ns: int,
    wall_s: float,
    failed: int,
    output_bag: Path,
) -> EvalRun:
    frames = len(arrivals)
    lat = np.array([ms for _, ms in latencies]) if latencies else np.zeros(1)
    # the node's own count of camera frames that never reached it (cumulative: the latest output's)
    missed = max(
        (int(getattr(msg, "missed_frames", 0)) for _, msg in read_messages(output_bag, INSTANCES_TOPIC)), default=0
    )
    accuracy = scorer.result()
    per_concept = accuracy.pop("per_concept")
    report = {
        **accuracy,
        "fps": len(latencies) / wall_s if wall_s > 0 else 0.0,
        "latency_ms": {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99))},
        "frames": frames,
        "dropped": max(frames - len(latencies) - missed, 0),  # arrived, skipped for a newer frame (or rejected)
        "missed_in_transport": missed,
        "per_concept": per_concept,
    }
    return EvalRun(
        report=report,
        latencies=latencies,
        wall_s=wall_s,
        failed=failed,
        ignored_low_score=scorer.ignored_low_score,
        ignored_other_concept=scorer.ignored_other_concept,
        output_bag=output_bag,
        arrivals=arrivals,
        period_ns=period_ns,
    )


def replay_bag(
    bag: str | Path,
    gt: GroundTruth,
    settings,
    out_dir: str | Path,
    *,
    phrases: list[str] | None = None,
    transport: str = "inproc",
    pacing: str = "lockstep",
    rate: float = 1.0,
    topic: str | None = None,
    progress: bool = True,
) -> tuple[EvalRun, dict]:
    """Replay ``bag`` through the node logic with ``settings`` and score it; returns the run and a
    description of the setup for the report.

    ``transport``: ``inproc`` runs the node's per-frame logic (engine) in this process; ``dds`` runs the
    real node (``sam3-ros node --transport dds``) in a subprocess and drives it over DDS-direct."""
    from contextlib import ExitStack

    if transport not in ("inproc", "dds"):
        raise ValueError(f"unknown transport {transport!r}; choose inproc or dds")
    phrases = list(phrases or gt.phrases)
    topic = camera_topic(bag, topic, gt.depth_topic)
    settings = settings.replace(**{"input.topics": [topic]})
    context = {"bag": str(bag), "pacing": pacing, "model": settings.model}
    with ExitStack() as stack:
        if transport == "dds":
            from .node_process import NodeProcess, NodeProcessor, NodeRealtimeReplay

            node = stack.enter_context(NodeProcess(settings, out_dir))
            replay = (
                NodeRealtimeReplay(node, topic, phrases, rate)
                if pacing == "realtime"
                else Replay(NodeProcessor(node, topic, phrases))
            )
            context["transport"] = f"the node over DDS-direct (domain {node.domain}, log {node.log_path.name})"
        else:
            from ..engine import load_engine
            from .replay import EngineProcessor

            engine = load_engine(settings)
            replay = Replay(EngineProcessor(engine, phrases, topic), pacing, rate)
            context.update(transport="in-process", device=str(engine.device))
        return evaluate(
            bag, gt, replay, out_dir, phrases=phrases, topic=topic, progress=progress, settings=settings
        ), context
