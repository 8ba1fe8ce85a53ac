"""The settings object: defaults load, every field is validated with a message naming it."""

import re

import pytest
import yaml

from sam3_ros.resources import shared_file
from sam3_ros.settings import EngineSettings, Settings, SettingsError, describe, parse_override


def test_defaults_load_and_match_the_dataclass():
    s = Settings.default()
    assert s.flat() == Settings().flat()  # config/tracker.yaml lists every default as the code has it
    assert s.output.instances_topic == "/sam3/instances"


def test_yaml_is_a_ros_parameter_file():
    data = yaml.safe_load(shared_file("config", "tracker.yaml").read_text())
    assert list(data) == ["/**"] and "ros__parameters" in data["/**"]


def test_every_setting_is_documented():
    for name, doc, _ in describe():
        assert doc, name


@pytest.mark.parametrize(
    "override, field",
    [
        ({"detection.score_threshold": -0.1}, "detection.score_threshold"),
        ({"tracking.assoc_iou_threshold": 1.5}, "tracking.assoc_iou_threshold"),
        ({"backend": "onnx"}, "backend"),
        ({"input.topics": [""]}, "input.topics"),
        ({"input.topics": []}, "input.topics"),
        ({"output.instances_topic": ""}, "output.instances_topic"),
        ({"tracking.max_objects": 0}, "tracking.max_objects"),
        ({"tracking.max_objects": "many"}, "tracking.max_objects"),
        ({"memory.num_maskmem": 2.5}, "memory.num_maskmem"),
        ({"input.compressed": "yes"}, "input.compressed"),
        ({"devices": ["gpu"]}, "devices[0]"),
        ({"detection.nms_iou_threshold": float("nan")}, "detection.nms_iou_threshold"),
        ({"detection.new_object_threshold": 0.2}, "detection.new_object_threshold"),
        ({"input.topics": ["/a", "/a"]}, "input.topics"),
        ({"unknown_field": 1}, "unknown_field"),
        ({"tracking.not_a_field": 1}, "tracking.not_a_field"),
    ],
)
def test_bad_value_names_the_field(override, field):
    with pytest.raises(SettingsError) as err:
        Settings.default(override)
    assert str(err.value).startswith(field) or field in str(err.value)


def test_overrides_and_string_lists():
    s = Settings.default({"input.topics": "/cam0/image, /cam1/image", "tracking": {"max_objects": 8}})
    assert s.input.topics == ["/cam0/image", "/cam1/image"]
    assert s.tracking.max_objects == 8
    assert s.replace(**{"prompt.text": "person, forklift"}).prompt.phrases() == ["person", "forklift"]


def test_parse_override():
    assert parse_override("tracking.max_objects=8") == ("tracking.max_objects", 8)
    assert parse_override("devices=[cuda:0, cuda:1]") == ("devices", ["cuda:0", "cuda:1"])
    with pytest.raises(SettingsError, match="key=value"):
        parse_override("no_equals_sign")


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(SettingsError, match="cannot read"):
        Settings.from_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [unclosed")
    with pytest.raises(SettingsError, match="not valid YAML"):
        Settings.from_yaml(bad)
    plain = tmp_path / "plain.yaml"
    plain.write_text("tracking:\n  max_objects: 3\n")
    assert Settings.from_yaml(plain).tracking.max_objects == 3


@pytest.mark.parametrize(
    "text, message",
    [
        ("cat, cat", "prompt.text: phrase 1 'cat' is listed twice"),
        ("a, b, c", "prompt.text: 3 phrases, more than the limit of 2 (prompt.max_phrases)"),
        ("cat, " + "x" * 30, "prompt.text: phrase 1 has 30 characters, more than the limit of 20"),
    ],
)
def test_the_initial_prompt_follows_the_rules_of_every_prompt(text, message):
    """The start-up check applies the rules the services and the engine apply (sam3_ros.prompts)."""
    with pytest.raises(SettingsError, match=re.escape(message)):
        Settings.default({"prompt.text": text, "prompt.max_phrases": 2, "prompt.max_phrase_chars": 20})


def test_the_engine_reads_only_its_part_of_the_settings():
    settings = Settings.default({"tracking.max_objects": 7, "input.max_image_pixels": 1000000, "output.overlay": True})
    engine = settings.engine
    assert engine.tracking.max_objects == 7 and engine.max_image_pixels == 1000000
    assert not any(hasattr(engine, name) for name in ("input", "output", "depth", "placement"))
    assert EngineSettings.from_dict(engine.to_dict()) == engine  # as the sharded engine's workers receive it
