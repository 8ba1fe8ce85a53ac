"""One typed settings object for the whole node.

Defaults live in ``config/tracker.yaml`` (ROS 2 parameter-file format, so ``ros2 launch`` can pass the
same file). Settings are grouped in sections (``input``, ``detection``, ...); ROS parameters use the
dotted names (``detection.score_threshold``). Everything is validated at load, and errors name the
field and the allowed values: ``detection.score_threshold: -0.1 is outside [0.0, 1.0]``.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from .prompts import check_phrases, split_phrases


class SettingsError(ValueError):
    """A setting has a bad value, an unknown name, or the file cannot be read."""


def _spec(
    default: Any,
    doc: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    choices: tuple[str, ...] | None = None,
    nonempty: bool = False,
) -> Any:
    """A dataclass field with its documentation and validation rule attached."""
    meta = {"doc": doc, "lo": lo, "hi": hi, "choices": choices, "nonempty": nonempty}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


QOS_PROFILE_NAMES = ("sensor_data", "reliable", "best_effort")


@dataclass
class InputSettings:
    topics: list[str] = _spec(["/camera/image_raw"], "camera topics to subscribe to", nonempty=True)
    compressed: bool = _spec(
        False,
        "all topics carry sensor_msgs/CompressedImage (jpeg/png) instead of Image; "
        "topics named .../compressed always do",
    )
    qos: str = _spec("sensor_data", "image subscription QoS profile", choices=QOS_PROFILE_NAMES)
    qos_depth: int = _spec(1, "image subscription history depth", lo=1, hi=100)
    max_image_pixels: int = _spec(4096 * 4096, "larger images are dropped (counted)", lo=1)
    largest_frame_bytes: int = _spec(
        1920 * 1080 * 3,
        "largest image message expected, in bytes (default: 1920x1080 "
        "rgb8); the DDS-direct transport sizes its socket receive buffer for it",
        lo=64 * 1024,
        hi=2**31 - 1,
    )
    depth_topics: list[str] = _spec(
        [],
        "aligned depth image topic of each camera, in input.topics order "
        "(sensor_msgs/Image, 16UC1 mm or 32FC1 m, registered to the colour image); "
        "'' for a camera without depth; [] = no 3D",
    )
    camera_info_topics: list[str] = _spec(
        [],
        "CameraInfo topic of each camera, in input.topics order; [] = the "
        "camera_info topic beside each camera topic (/cam/color/image_raw -> "
        "/cam/color/camera_info)",
    )


@dataclass
class PromptSettings:
    text: str = _spec("", "initial noun phrases, comma-separated ('' = none until set_prompt)")
    max_phrases: int = _spec(16, "most noun phrases in one prompt", lo=1, hi=256)
    max_phrase_chars: int = _spec(200, "longest accepted noun phrase, in characters", lo=1, hi=10000)
    max_exemplar_boxes: int = _spec(32, "most exemplar boxes in one prompt", lo=0, hi=1024)

    def phrases(self) -> list[str]:
        """The initial prompt as a list of stripped, non-empty phrases."""
        return split_phrases(self.text)


@dataclass
class DetectionSettings:
    score_threshold: float = _spec(0.5, "detections below this score are ignored", lo=0.0, hi=1.0)
    new_object_threshold: float = _spec(0.7, "a detection spawns a new object only above this score", lo=0.0, hi=1.0)
    nms_iou_threshold: float = _spec(
        0.1, "mask-IoU above which the lower-scoring detection is suppressed", lo=0.0, hi=1.0
    )


@dataclass
class TrackingSettings:
    assoc_iou_threshold: float = _spec(0.1, "detection-to-track mask IoU needed to match", lo=0.0, hi=1.0)
    track_assoc_iou_threshold: float = _spec(
        0.5, "IoU for a track to count as confirmed by a detection", lo=0.0, hi=1.0
    )
    keep_alive_frames: int = _spec(30, "frames an object survives without a detector match", lo=0, hi=100000)
    recondition_every: int = _spec(
        16, "re-condition a track on its matched detection every N frames (0 = never)", lo=0, hi=100000
    )
    hole_fill_area: int = _spec(
        16, "fill mask holes up to this area, in low-res mask pixels (0 = off)", lo=0, hi=1000000
    )
    max_objects: int = _spec(64, "most objects tracked at once per camera", lo=1, hi=4096)
    at_max_objects: str = _spec(
        "evict_lowest",
        "at max_objects: evict_lowest (lowest-scoring objects make room "
        "for higher-scoring detections) or refuse_new (new detections wait; the reference's "
        "rule)",
        choices=("evict_lowest", "refuse_new"),
    )


@dataclass
class MemorySettings:
    num_maskmem: int = _spec(7, "recent frames kept in each object's memory", lo=1, hi=64)
    max_cond_frames: int = _spec(4, "prompted (conditioning) frames kept per object", lo=1, hi=64)
    max_object_pointers: int = _spec(16, "object pointers kept per object", lo=1, hi=256)
    keep_keys_values: str = _spec(
        "auto",
        "keep each memory's attention keys and values, computed once, instead of "
        "recomputing them every frame: less work per frame, 2 x layers x width / mem_dim "
        "times the memory. auto: while they take at most 1 GiB per camera",
        choices=("auto", "always", "never"),
    )


@dataclass
class DepthSettings:
    max_stamp_diff_ms: float = _spec(
        20.0,
        "a depth image pairs with the colour image whose header stamp is closest, within this many milliseconds",
        lo=0.0,
        hi=10000.0,
    )
    min_m: float = _spec(0.1, "depth below this (metres) is invalid", lo=0.0, hi=1000.0)
    max_m: float = _spec(10.0, "depth above this (metres) is invalid", lo=0.0, hi=1000.0)
    erode_px: int = _spec(
        2,
        "erode each mask by this many pixels before reading depth (edge pixels mix the object with what is behind it)",
        lo=0,
        hi=100,
    )
    outlier_mads: float = _spec(
        3.0,
        "depth further from the instance's median than this many scaled median absolute "
        "deviations is an outlier (at least 1% of the median depth is kept)",
        lo=0.5,
        hi=100.0,
    )
    min_points: int = _spec(20, "an instance needs this many valid depth pixels for 3D", lo=1, hi=1000000)
    max_samples: int = _spec(
        256, "depth pixels read per instance at most: larger boxes are read on a regular grid", lo=16, hi=1000000
    )


@dataclass
class OutputSettings:
    instances_topic: str = _spec("/sam3/instances", "InstanceArray output topic", nonempty=True)
    overlay: bool = _spec(False, "publish /sam3/overlay (bgr8 image with colored masks and ids)")
    label_image: bool = _spec(False, "publish /sam3/labels (mono16, pixel = instance id)")
    point_cloud: bool = _spec(
        False,
        "with depth: publish sam3/points (PointCloud2 of the depth points behind each instance's 3D, fields x y z id)",
    )
    diagnostics_period_s: float = _spec(1.0, "seconds between /diagnostics messages", lo=0.05, hi=3600.0)
    stall_timeout_s: float = _spec(
        5.0,
        "a camera whose image has waited this long for an output is an ERROR in "
        "/diagnostics, with the reason (watchdog; it also restarts stopped workers)",
        lo=0.1,
        hi=3600.0,
    )


@dataclass
class EngineSettings:
    """What one engine (one camera stream) reads of ``Settings``, as ``Settings.engine`` gives it; topics,
    outputs, depth and placement belong to the node."""

    model: str
    devices: list[str]
    precision: str
    backend: str
    image_size: int
    max_image_pixels: int
    prompt: PromptSettings
    detection: DetectionSettings
    tracking: TrackingSettings
    memory: MemorySettings

    def to_dict(self) -> dict[str, Any]:
        """Nested plain data (what ``from_dict`` accepts), e.g. to cross a process spawn."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "EngineSettings":
        """From ``to_dict``'s output."""
        sections = {
            "prompt": PromptSettings,
            "detection": DetectionSettings,
            "tracking": TrackingSettings,
            "memory": MemorySettings,
        }
        return cls(**{k: sections[k](**v) if k in sections else v for k, v in values.items()})


@dataclass
class Settings:
    """Everything the node needs, one section per concern."""

    model: str = _spec(
        "toy", "built-in model name (toy, tiny-random, sam3-random) or a local model directory", nonempty=True
    )
    devices: list[str] = _spec(["auto"], "devices to run on: auto, cpu, cuda, cuda:N", nonempty=True)
    placement: str = _spec(
        "cameras",
        "how work spreads over several devices: cameras (each camera on one device) "
        "or objects (one camera; detector on the first device, tracked objects over the others)",
        choices=("cameras", "objects"),
    )
    backend: str = _spec("auto", "vision encoder backend", choices=("auto", "tensorrt", "compile", "eager"))
    precision: str = _spec(
        "auto", "compute precision (auto = bf16 on GPU, fp32 on CPU)", choices=("auto", "fp32", "bf16")
    )
    image_size: int = _spec(0, "model input side in pixels (0 = the model's own)", lo=0, hi=4096)
    input: InputSettings = field(default_factory=InputSettings)
    prompt: PromptSettings = field(default_factory=PromptSettings)
    detection: DetectionSettings = field(default_factory=DetectionSettings)
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
    memory: MemorySettings = field(default_factory=MemorySettings)
    depth: DepthSettings = field(default_factory=DepthSettings)
    output: OutputSettings = field(default_factory=OutputSettings)

    def __post_init__(self) -> None:
        validate(self)

    # -- loading ---------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "Settings":
        """Build from nested (``{"detection": {"score_threshold": .5}}``) or dotted keys."""
        return _build(cls, _nest(values), prefix="")

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Mapping[str, Any] | None = None) -> "Settings":
        """Load a ROS 2 parameter file (``<node>: ros__parameters: {...}``) or a plain mapping,
        then apply ``overrides`` (dotted keys, e.g. from ``--set`` or ROS parameters)."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise SettingsError(f"cannot read settings file {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise SettingsError(f"settings file {path} is not valid YAML: {exc}") from None
        values = _nest(ros_parameters(data, path))
        _merge(values, _nest(overrides or {}))
        return cls.from_dict(values)

    @classmethod
    def default(cls, overrides: Mapping[str, Any] | None = None) -> "Settings":
        """The packaged defaults (``config/tracker.yaml``), with optional dotted-key overrides."""
        from .resources import shared_file

        return cls.from_yaml(shared_file("config", "tracker.yaml"), overrides)

    # -- views -----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Nested plain-data view (what ``from_dict`` accepts)."""
        return dataclasses.asdict(self)

    @property
    def engine(self) -> EngineSettings:
        """The part of these settings an engine reads (sections shared, not copied)."""
        return EngineSettings(
            model=self.model,
            devices=list(self.devices),
            precision=self.precision,
            backend=self.backend,
            image_size=self.image_size,
            max_image_pixels=self.input.max_image_pixels,
            prompt=self.prompt,
            detection=self.detection,
            tracking=self.tracking,
            memory=self.memory,
        )

    def flat(self) -> dict[str, Any]:
        """Dotted-name view, as ROS parameters are declared."""
        return _flatten(self.to_dict())

    def replace(self, **dotted: Any) -> "Settings":
        """A copy with some dotted-name fields changed, e.g. ``replace(**{"tracking.max_objects": 8})``."""
        values = self.to_dict()
        _merge(values, _nest(dotted))
        return Settings.from_dict(values)


def ros_parameters(data: Any, source: Path | str = "<settings>") -> dict[str, Any]:
    """The parameter mapping inside a ROS 2 parameter file, or ``data`` itself if it is plain."""
    if not isinstance(data, dict):
        raise SettingsError(f"{source}: expected a mapping at the top level")
    for value in data.values():  # "/**:" or "<node name>:" wrapping "ros__parameters:"
        if isinstance(value, dict) and "ros__parameters" in value:
            return dict(value["ros__parameters"] or {})
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``key=value`` (value in YAML syntax) as given to ``--set``."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise SettingsError(f"--set expects key=value, got {text!r}")
    return key.strip(), yaml.safe_load(raw) if raw.strip() else ""


def describe() -> list[tuple[str, str, Any]]:
    """(dotted name, documentation, default) of every setting; for docs and ROS parameter declaration."""
    defaults = Settings().flat()
    return [(name, doc, defaults[name]) for name, doc in _docs(Settings, "").items()]


# -- internals -------------------------------------------------------------------------------------
def _nest(values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            value = _nest(value)
        node = out
        *parents, leaf = str(key).split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SettingsError(f"{key}: {part} is a value, not a section")
        if isinstance(value, dict) and isinstance(node.get(leaf), dict):
            _merge(node[leaf], value)
        else:
            node[leaf] = value
    return out


def _merge(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _docs(cls: type, prefix: str) -> dict[str, str]:
    hints = typing.get_type_hints(cls)
    out: dict[str, str] = {}
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out.update(_docs(hints[f.name], f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = f.metadata.get("doc", "")
    return out


def _build(cls: type, values: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(values, Mapping):
        raise SettingsError(f"{prefix.rstrip('.') or 'settings'}: expected a section (mapping), got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SettingsError(f"unknown setting {prefix}{unknown[0]}; known in this section: {', '.join(sorted(known))}")
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            kwargs[name] = _build(kind, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(f"{prefix}{name}", value, kind)
    if cls is Settings:
        return cls(**kwargs)
    obj = cls(**kwargs)
    _validate_section(obj, prefix)
    return obj


def _coerce(name: str, value: Any, kind: Any) -> Any:
    """Convert YAML/ROS-parameter values to the declared type, rejecting lossy conversions."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise SettingsError(f"{name}: expected true or false, got {value!r}")
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
            raise SettingsError(f"{name}: expected an integer, got {value!r}")
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingsError(f"{name}: expected a number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise SettingsError(f"{name}: expected a string, got {value!r}")
        return value
    if typing.get_origin(kind) is list:
        if isinstance(value, str):  # ROS launch arguments arrive as strings: "a,b"
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise SettingsError(f"{name}: expected a list, got {value!r}")
        (item,) = typing.get_args(kind)
        return [_coerce(f"{name}[{i}]", v, item) for i, v in enumerate(value)]
    raise TypeError(f"{name}: unsupported settings type {kind}")  # a bug in this module, not user input


def _validate_section(section: Any, prefix: str) -> None:
    for f in dataclasses.fields(section):
        if dataclasses.is_dataclass(f.type) or "doc" not in f.metadata:
            continue
        name, value, meta = f"{prefix}{f.name}", getattr(section, f.name), f.metadata
        if isinstance(value, float) and value != value:
            raise SettingsError(f"{name}: NaN is not allowed")
        lo, hi = meta["lo"], meta["hi"]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise SettingsError(f"{name}: {value!r} is outside [{lo}, {hi}]")
        if meta["choices"] and value not in meta["choices"]:
            raise SettingsError(f"{name}: {value!r} is not one of {', '.join(meta['choices'])}")
        if meta["nonempty"]:
            if isinstance(value, list) and (not value or any(not str(v).strip() for v in value)):
                raise SettingsError(f"{name}: must be a non-empty list of non-empty values")
            if isinstance(value, str) and not value.strip():
                raise SettingsError(f"{name}: must not be empty")


def _check_device(name: str) -> bool:
    if name in ("auto", "cpu", "cuda"):
        return True
    head, _, index = name.partition(":")
    return head == "cuda" and index.isdigit()


def _validate_depth(settings: Settings) -> None:
    inputs = settings.input
    for name in ("depth_topics", "camera_info_topics"):
        listed = getattr(inputs, name)
        if listed and len(listed) != len(inputs.topics):
            raise SettingsError(
                f"input.{name}: {len(listed)} topics for {len(inputs.topics)} cameras; list one per "
                "camera in input.topics order ('' for a camera without depth), or none"
            )
        for i, topic in enumerate(listed):
            if topic and not topic.startswith("/") and not topic[:1].isalpha():
                raise SettingsError(f"input.{name}[{i}]: {topic!r} is not a valid topic name")
            if topic and topic in inputs.topics:
                raise SettingsError(f"input.{name}[{i}]: {topic!r} is also a camera topic")
    if settings.depth.min_m >= settings.depth.max_m:
        raise SettingsError(f"depth.min_m: must be < depth.max_m ({settings.depth.min_m} >= {settings.depth.max_m})")


def validate(settings: Settings) -> None:
    """Check every field and the rules that span fields; raise SettingsError naming the field."""
    for f in dataclasses.fields(settings):
        section = getattr(settings, f.name)
        if dataclasses.is_dataclass(section):
            _validate_section(section, f"{f.name}.")
    _validate_section(settings, "")
    for i, device in enumerate(settings.devices):
        if not _check_device(device):
            raise SettingsError(f"devices[{i}]: {device!r} is not auto, cpu, cuda or cuda:N")
    for i, topic in enumerate(settings.input.topics):
        if not topic.startswith("/") and not topic[:1].isalpha():
            raise SettingsError(f"input.topics[{i}]: {topic!r} is not a valid topic name")
    if len(set(settings.input.topics)) != len(settings.input.topics):
        raise SettingsError("input.topics: lists the same topic twice")
    _validate_depth(settings)
    if settings.placement == "objects" and len(settings.devices) > 1 and len(settings.input.topics) > 1:
        raise SettingsError(
            "placement: objects shares one camera stream's objects over the devices; list one topic "
            "in input.topics, or use placement: cameras"
        )
    if settings.detection.new_object_threshold < settings.detection.score_threshold:
        raise SettingsError(
            "detection.new_object_threshold: must be >= detection.score_threshold "
            f"({settings.detection.new_object_threshold} < {settings.detection.score_threshold})"
        )
    try:
        check_phrases(settings.prompt.phrases(), settings.prompt)
    except ValueError as exc:
        raise SettingsError(f"prompt.text: {exc}") from None
