"""Instances -> InstanceArray: header copied, masks decode to the published boxes, order by id."""

import numpy as np
from pycocotools import mask as coco

from sam3_ros.engine.types import Frame, Instances
from sam3_ros.interfaces import typestore
from sam3_ros.pipeline.messages import instances_to_message, time_to_ns


def test_instances_to_message_round_trip():
    h, w = 24, 32
    masks = np.zeros((2, h, w), bool)
    masks[0, 2:10, 3:9] = True
    masks[1, 12:20, 20:30] = True
    inst = Instances(
        ids=np.array([9, 4]),
        scores=np.array([0.9, 0.6], np.float32),
        boxes=np.array([[3, 2, 9, 10], [20, 12, 30, 20]], np.float32),
        masks=masks,
        concept_index=np.array([1, -1]),
        detected=np.array([True, False]),
        age=np.array([5, 0]),
        frames_since_detected=np.array([0, 2]),
        phrases=["a", "b"],
        stamp_ns=1_500_000_123,
        frame_id="cam_optical",
        camera="/cam",
        image_size=(h, w),
    )
    msg = instances_to_message(inst, latency_ms=3.5, dropped_frames=2)
    assert time_to_ns(msg.header.stamp) == 1_500_000_123 and msg.header.frame_id == "cam_optical"
    assert [i.id for i in msg.instances] == [4, 9]
    assert [i.concept for i in msg.instances] == ["", "b"]
    for item in msg.instances:
        decoded = coco.decode(coco.frPyObjects({"size": [h, w], "counts": item.mask_rle.tolist()}, h, w))
        ys, xs = np.nonzero(decoded)
        assert [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == item.box.tolist()
    store = typestore()
    data = store.serialize_cdr(msg, "sam3_ros/msg/InstanceArray")
    assert store.deserialize_cdr(data, "sam3_ros/msg/InstanceArray").instances[1].id == 9


def test_empty_instances():
    frame = Frame(image=np.zeros((5, 6, 3), np.uint8), stamp_ns=7, frame_id="f", camera="/c")
    msg = instances_to_message(Instances.empty(frame, ["x"]))
    assert msg.instances == [] and msg.prompt == ["x"] and time_to_ns(msg.header.stamp) == 7


def test_objects_with_empty_masks_are_counted_not_listed():
    h, w = 8, 8
    masks = np.zeros((3, h, w), bool)
    masks[1, 2:4, 2:4] = True
    masks[2] = True  # a full mask is visible too (its counts start with an empty background run)
    inst = Instances(
        ids=np.array([1, 2, 3]),
        scores=np.full(3, 0.9, np.float32),
        boxes=np.zeros((3, 4), np.float32),
        masks=masks,
        concept_index=np.zeros(3, np.int64),
        detected=np.zeros(3, bool),
        age=np.zeros(3, np.int64),
        frames_since_detected=np.zeros(3, np.int64),
        phrases=["a"],
        image_size=(h, w),
    )
    msg = instances_to_message(inst)
    assert [i.id for i in msg.instances] == [2, 3] and msg.num_hidden_objects == 1
