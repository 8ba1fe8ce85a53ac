"""The TensorRT engine cache's bookkeeping: a stale or foreign engine is detected, never used."""

import dataclasses
import json
import os
import shutil

from sam3_ros.engine.backends.engine_cache import EngineCache, EngineKey, check_engine_file, weights_fingerprint

KEY = EngineKey(
    model="sam3-random",
    weights="builtin:sam3-random",
    gpu_name="NVIDIA H100 80GB HBM3",
    compute_capability=(9, 0),
    tensorrt_version="10.13.0.35",
    precision="bf16",
    input_shape=(1, 3, 1008, 1008),
)
ENGINE = b"serialized engine bytes" * 100


def test_stored_engine_is_found_for_its_own_key(tmp_path):
    cache = EngineCache(tmp_path)
    path = cache.store(KEY, ENGINE)
    found = cache.lookup(KEY)
    assert found.usable and found.reason == "" and found.path == path
    assert path.read_bytes() == ENGINE and path.name.startswith("sam3-random_bf16_1x3x1008x1008_")
    assert EngineKey.from_json(json.loads(path.with_suffix(".json").read_text())["key"]) == KEY


def test_every_key_field_gives_its_own_entry(tmp_path):
    changes = {
        "weights": "dir:abc",
        "gpu_name": "NVIDIA H200",
        "compute_capability": (8, 0),
        "tensorrt_version": "10.14.1",
        "precision": "fp16",
        "input_shape": (1, 3, 504, 504),
    }
    cache = EngineCache(tmp_path)
    cache.store(KEY, ENGINE)
    for field, value in changes.items():
        other = dataclasses.replace(KEY, **{field: value})
        assert cache.path(other) != cache.path(KEY)
        found = cache.lookup(other)
        assert not found.usable and found.reason == "no engine file"


def test_foreign_engine_under_our_name_is_refused_with_the_reason(tmp_path):
    # an engine built on an A100 with another TensorRT, copied (e.g. with a cache folder) to where ours would be
    foreign = dataclasses.replace(
        KEY, gpu_name="NVIDIA A100-SXM4-80GB", compute_capability=(8, 0), tensorrt_version="10.8.0.43"
    )
    elsewhere = EngineCache(tmp_path / "a100").store(foreign, ENGINE)
    ours = EngineCache(tmp_path / "h100")
    ours.root.mkdir()
    shutil.copy(elsewhere, ours.path(KEY))
    shutil.copy(elsewhere.with_suffix(".json"), ours.path(KEY).with_suffix(".json"))
    found = ours.lookup(KEY)
    assert not found.usable
    assert "gpu_name 'NVIDIA A100-SXM4-80GB' (now 'NVIDIA H100 80GB HBM3')" in found.reason
    assert "compute_capability (8, 0) (now (9, 0))" in found.reason
    assert "tensorrt_version '10.8.0.43' (now '10.13.0.35')" in found.reason
    ours.store(KEY, ENGINE)  # the rebuild replaces it
    assert ours.lookup(KEY).usable


def test_truncated_or_unlabelled_engines_are_refused(tmp_path):
    cache = EngineCache(tmp_path)
    path = cache.store(KEY, ENGINE)
    path.write_bytes(ENGINE[:100])
    assert "does not match its recorded hash" in cache.lookup(KEY).reason
    path.with_suffix(".json").write_text("{not json")
    assert "unreadable sidecar" in cache.lookup(KEY).reason
    path.with_suffix(".json").write_text(json.dumps({"key": {"model": "x"}, "sha256": "0"}))
    assert "malformed engine key" in cache.lookup(KEY).reason
    path.with_suffix(".json").unlink()
    assert "unknown origin" in check_engine_file(path, KEY).reason
    assert not cache.lookup(KEY).usable


def test_no_half_written_entries_are_left(tmp_path):
    cache = EngineCache(tmp_path)
    cache.store(KEY, ENGINE)
    cache.store(KEY, ENGINE + b"v2")
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".engine", ".json"]
    assert cache.lookup(KEY).usable and cache.path(KEY).read_bytes() == ENGINE + b"v2"


def test_weights_fingerprint_follows_the_model_files(tmp_path):
    assert weights_fingerprint("tiny-random") == "builtin:tiny-random"
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"0" * 10)
    first = weights_fingerprint(str(tmp_path))
    assert first.startswith("dir:") and weights_fingerprint(str(tmp_path)) == first
    (tmp_path / "model.safetensors").write_bytes(b"1" * 11)  # new weights
    second = weights_fingerprint(str(tmp_path))
    assert second != first
    os.utime(tmp_path / "config.json", ns=(1, 1))  # an edited config
    assert weights_fingerprint(str(tmp_path)) not in (first, second)
