"""``sam3-ros bench e2e`` in process: the host row and stages in one run, the 3D rows with ``--depth``, and the
scaling table's cells."""

import argparse
import json

from sam3_ros.commands import bench_e2e


def arguments(tmp_path, **values):
    parser = argparse.ArgumentParser()
    bench_e2e.add_arguments(parser)
    args = parser.parse_args(["--frames", "2", "--no-node", "--rate", "0", "--json", str(tmp_path / "out.json")])
    for key, value in values.items():
        setattr(args, key, value)
    return args


def test_one_run_reports_the_host_row_and_stages(tmp_path):
    assert bench_e2e.run(arguments(tmp_path, size="160x120", objects="2", note="test")) == 0
    result = json.loads((tmp_path / "out.json").read_text())
    host = result["rows"]["host: preprocess + merge + spawn + output + message"]
    assert host["n"] == 2 and 0 < host["median_ms"] <= result["rows"]["in process: engine.step + message"]["p99_ms"]
    assert {"preprocess", "encoder", "detector", "tracker", "merge", "memory", "output", "message"} <= set(
        result["stages_median_ms"]
    )
    assert result["note"] == "test" and len(result["load_average"]["after"]) == 3
    cpu = result["rows"]["host, CPU time of the process"]
    assert (
        cpu["n"] == 2
        and cpu["median_ms"] > 0
        and set(result["stages_cpu_median_ms"]) == set(result["stages_median_ms"])
    )


def test_depth_adds_the_3d_step_in_wall_and_cpu_time_and_its_messages(tmp_path):
    assert bench_e2e.run(arguments(tmp_path, model="toy", size="160x120", objects="2", depth=True)) == 0
    result = json.loads((tmp_path / "out.json").read_text())
    rows = result["rows"]
    for name in (
        "in process: 3D step (depth)",
        "3D step, CPU time of the process",
        "3D messages (Detection3DArray, Instance)",
    ):
        assert rows[name]["n"] == 2 and rows[name]["median_ms"] > 0, name
    # the bench's frames (noise with two squares) are unlike toy's world: its tracker may call the tracked squares
    # gone, and an empty mask has no 3D; the 3D step itself is checked against its truth in tests/test_depth_3d.py
    assert result["objects_median"] == 2 and 0 <= result["objects_with_3d_median"] <= 2


def test_several_sizes_and_counts_give_a_scaling_table(tmp_path):
    assert bench_e2e.run(arguments(tmp_path, size="160x120,200x150", objects="1,2")) == 0
    result = json.loads((tmp_path / "out.json").read_text())
    cells = {(tuple(r["size"]), r["objects"]) for r in result["results"]}
    assert cells == {((160, 120), 1), ((200, 150), 1), ((160, 120), 2), ((200, 150), 2)}
    assert all(r["host"]["n"] == 2 and r["host"]["median_ms"] > 0 for r in result["results"])
    assert all(r["host_cpu"]["n"] == 2 for r in result["results"])
    compact = {(tuple(r["size"]), r["objects"]): r for r in result["compact_output"]["results"]}
    assert set(compact) == cells and all(r["cpu_ms"] >= 0 and r["wall_ms"] > 0 for r in compact.values())


def test_through_the_node_the_transport_is_each_frames_round_trip_minus_the_nodes_time(tmp_path, monkeypatch):
    """The node in its own process over DDS (on a private domain), with this process's torch thread count."""
    started = []
    popen = bench_e2e.subprocess.Popen
    monkeypatch.setattr(bench_e2e.subprocess, "Popen", lambda *a, **k: started.append(k.get("env")) or popen(*a, **k))
    assert bench_e2e.run(arguments(tmp_path, size="160x120", objects="2", frames=3, no_node=False, threads=1)) == 0
    result = json.loads((tmp_path / "out.json").read_text())
    rows = result["rows"]
    round_trip, node = rows["node over DDS: camera round trip"], rows["node over DDS: receive -> publish"]
    transport = rows["node over DDS: round trip - receive -> publish"]
    started = [env for env in started if env and "ROS_DOMAIN_ID" in env]  # the node, not other commands
    assert round_trip["n"] == node["n"] == transport["n"] == 3 and len(started) == 1
    assert 0 < result["transport_ms"] == transport["median_ms"] < round_trip["median_ms"]
    assert result["torch_threads"] == 1 and started[0]["OMP_NUM_THREADS"] == "1"
