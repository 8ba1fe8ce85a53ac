"""Our msg/srv files parse with rosbags' parser and samples round-trip through CDR."""

import numpy as np
import pytest

from sam3_ros.interfaces import definitions, message_names, service_names, split_service, typestore


def test_all_files_registered():
    store = typestore()
    assert set(message_names()) == {"sam3_ros/msg/Instance", "sam3_ros/msg/InstanceArray"}
    assert set(service_names()) == {"sam3_ros/srv/SetPrompt", "sam3_ros/srv/AddPoints", "sam3_ros/srv/RemoveObject"}
    for name in definitions():
        assert name in store.types, name


def test_every_field_is_documented():
    """Each field has a comment beside it or in the comment block just above its group."""
    for name, text in definitions().items():
        if not name.startswith("sam3_ros/"):
            continue
        commented = False  # a comment seen since the last blank line
        for line in text.splitlines():
            stripped = line.strip()
            if not stripped:
                commented = False
            elif stripped.startswith("#"):
                commented = True
            else:
                assert "#" in stripped or commented, f"{name}: undocumented field {stripped!r}"


def test_split_service_rejects_missing_separator():
    with pytest.raises(ValueError, match="exactly one '---'"):
        split_service("int64 a\n")


def _instance(store, i):
    Instance = store.types["sam3_ros/msg/Instance"]
    return Instance(
        id=i,
        concept="red circle",
        score=0.75,
        box=np.array([1, 2, 30, 40], np.float32),
        mask_height=48,
        mask_width=64,
        mask_rle=np.array([100, 20, 2952], np.uint32),
        age=3,
        detected=True,
        frames_since_detected=0,
        has_3d=True,
        depth_pixels_read=240,
        depth_pixels_used=231,
    )


def _samples(store):
    T = store.types
    header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=12, nanosec=345), frame_id="cam")
    yield T["sam3_ros/msg/Instance"], _instance(store, 7)
    yield (
        T["sam3_ros/msg/InstanceArray"],
        T["sam3_ros/msg/InstanceArray"](
            header=header,
            camera="/camera/image_raw",
            instances=[_instance(store, 1), _instance(store, 2)],
            num_hidden_objects=1,
            prompt=["red circle", "blue square"],
            num_positive_exemplars=1,
            num_negative_exemplars=0,
            latency_ms=12.5,
            dropped_frames=3,
            missed_frames=2,
        ),
    )
    yield (
        T["sam3_ros/srv/SetPrompt_Request"],
        T["sam3_ros/srv/SetPrompt_Request"](
            phrases=["person", "forklift"],
            boxes=np.array([0, 0, 10, 10, 5, 5, 8, 8], np.float32),
            box_labels=np.array([True, False]),
            camera="",
            keep_tracks=True,
        ),
    )
    yield T["sam3_ros/srv/SetPrompt_Response"], T["sam3_ros/srv/SetPrompt_Response"](success=False, message="bad")
    yield (
        T["sam3_ros/srv/AddPoints_Request"],
        T["sam3_ros/srv/AddPoints_Request"](
            object_id=-1,
            points=np.array([3, 4, 5, 6], np.float32),
            labels=np.array([1, 0], np.int8),
            box=np.zeros(0, np.float32),
            stamp=T["builtin_interfaces/msg/Time"](sec=1, nanosec=2),
            camera="/cam",
        ),
    )
    yield (
        T["sam3_ros/srv/AddPoints_Response"],
        T["sam3_ros/srv/AddPoints_Response"](success=True, message="", object_id=42),
    )
    yield T["sam3_ros/srv/RemoveObject_Request"], T["sam3_ros/srv/RemoveObject_Request"](object_id=5, camera="")
    yield T["sam3_ros/srv/RemoveObject_Response"], T["sam3_ros/srv/RemoveObject_Response"](success=True, message="ok")


def _equal(a, b):
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if hasattr(a, "__dataclass_fields__"):
        return all(_equal(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    return a == b


@pytest.mark.parametrize("index", range(8))
def test_cdr_round_trip(index):
    store = typestore()
    cls, sample = list(_samples(store))[index]
    data = store.serialize_cdr(sample, cls.__msgtype__)
    back = store.deserialize_cdr(data, cls.__msgtype__)
    assert _equal(sample, back)
