"""PerceptionNode with a depth camera, in process with the real tiny-random engine: the vision_msgs outputs, the 3D
of each instance on a known depth scene, and bad depth input counted in /diagnostics while the 2D outputs go on."""

import numpy as np
import pytest

from sam3_ros.codec.depth import Intrinsics
from sam3_ros.codec.image import rgb_to_image_fields
from sam3_ros.codec import rle
from sam3_ros.pipeline.messages import image_message, time_to_ns
from sam3_ros.pipeline.messages_3d import camera_info_message, depth_message
from sam3_ros.pipeline.node import PerceptionNode, engine_factory
from sam3_ros.settings import Settings

from instance_checks import check_depth_pixels
from node_faults import Outputs

CAMERA, DEPTH, INFO = "/cam/color/image_raw", "/cam/depth/image_raw", "/cam/color/camera_info"
H, W = 40, 56
K = Intrinsics(fx=50.0, fy=50.0, cx=27.5, cy=19.5, width=W, height=H)
PLANE_M = 2.0


@pytest.fixture(scope="module")
def settings():
    return Settings.default(
        {
            "devices": ["cpu"],
            "model": "tiny-random",
            "input.topics": [CAMERA],
            "input.depth_topics": [DEPTH],
            "prompt.text": "cat",
            "output.point_cloud": True,
            "detection.score_threshold": 0.0,
            "detection.new_object_threshold": 0.0,
            "depth.max_samples": 100000,
            "depth.min_points": 1,
            "output.diagnostics_period_s": 0.05,
        }
    )


@pytest.fixture(scope="module")
def node(settings):
    outputs = Outputs()
    tracker = PerceptionNode(settings, engine_factory(settings), outputs)
    tracker.outputs = outputs
    tracker.start()
    yield tracker
    tracker.stop()


def colour(stamp_ns):
    rgb = np.random.default_rng(stamp_ns).integers(0, 256, (H, W, 3), dtype=np.uint8)
    return image_message(rgb_to_image_fields(rgb), stamp_ns, "cam_optical")


def of_kind(outputs, kind, stamp_ns):
    return [m for k, m in outputs.messages if k == kind and time_to_ns(m.header.stamp) == stamp_ns]


def counters_of(message):
    status = next((s for s in message.status if s.name.endswith(CAMERA)), None)
    return {v.key: v.value for v in status.values if v.key.startswith("depth.")} if status else {}


def depth_counters(outputs, where=lambda counters: "depth.received" in counters):
    """The depth counters of the latest diagnostics (waiting for one) for which ``where`` holds."""
    return counters_of(outputs.wait_diagnostics(where=lambda message: where(counters_of(message))))


def test_detections_carry_the_instances_and_3d_lies_on_the_depth_plane(node):
    stamp = 1_000_000
    node.on_camera_info(CAMERA, camera_info_message(K, stamp, "cam_optical"))
    node.on_depth(CAMERA, depth_message(np.full((H, W), PLANE_M), stamp + 3_000_000, "cam_optical"))
    node.on_image(CAMERA, colour(stamp))
    instances = node.outputs.wait_instances(stamp)
    assert instances.instances, "tiny-random with threshold 0 finds objects"
    [detections] = of_kind(node.outputs, "detections", stamp)
    [detections_3d] = of_kind(node.outputs, "detections_3d", stamp)
    [points] = of_kind(node.outputs, "points", stamp)
    assert detections.header == detections_3d.header == points.header == instances.header
    assert [d.id for d in detections.detections] == [str(i.id) for i in instances.instances]
    for item, det in zip(instances.instances, detections.detections):
        x0, y0, x1, y1 = item.box
        assert det.results[0].hypothesis.class_id == item.concept == "cat"
        assert det.results[0].hypothesis.score == pytest.approx(item.score)
        assert (det.bbox.center.position.x, det.bbox.size_x) == pytest.approx(((x0 + x1 - 1) / 2, x1 - x0))
    by_id = {str(i.id): i for i in instances.instances}
    assert detections_3d.detections
    for det in detections_3d.detections:
        # every mask pixel lies on the plane: the centroid is the mask's mean pixel back-projected at 2 m
        mask = rle.decode(np.asarray(by_id[det.id].mask_rle), H, W).astype(bool)
        rows, cols = np.nonzero(mask)
        expected = ((cols.mean() - K.cx) * PLANE_M / K.fx, (rows.mean() - K.cy) * PLANE_M / K.fy, PLANE_M)
        position = det.results[0].pose.pose.position
        assert (position.x, position.y, position.z) == pytest.approx(expected, abs=1e-6)
        assert det.bbox.size.z == pytest.approx(0.0, abs=1e-6)
    cloud = np.frombuffer(points.data.tobytes(), np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("id", "<u4")]))
    assert len(cloud) == points.width and np.allclose(cloud["z"], PLANE_M)
    assert {str(i) for i in np.unique(cloud["id"])} == {d.id for d in detections_3d.detections}
    # each instance says how many depth pixels its 3D was read from and rests on: its eroded mask, all on the plane
    check_depth_pixels(instances, detections_3d, node.settings.depth.erode_px, node.settings.depth.min_points)
    assert any(item.has_3d and item.depth_pixels_used > 0 for item in instances.instances)
    assert depth_counters(node.outputs, lambda c: c.get("depth.frames_3d") == "1")


@pytest.mark.parametrize(
    "depth, camera_info, reason",
    [
        (None, K, "no_depth"),  # no depth image within the stamp tolerance
        (np.full((H // 2, W // 2), PLANE_M), K, "bad_depth"),  # not registered to the colour image
        ("32FC3", K, "bad_depth"),  # unsupported encoding
        (np.full((H, W), PLANE_M), Intrinsics(0.0, 0.0, 1.0, 1.0, W, H), "bad_camera_info"),  # not calibrated
    ],
)
def test_bad_depth_input_is_counted_and_the_2d_outputs_go_on(node, depth, camera_info, reason):
    stamp = 2_000_000 + 100_000_000 * len(node.outputs.messages)
    node.on_camera_info(CAMERA, camera_info_message(camera_info, stamp))
    if isinstance(depth, str):
        message = depth_message(np.full((H, W), PLANE_M), stamp)
        message.encoding = depth
        node.on_depth(CAMERA, message)
    elif depth is not None:
        node.on_depth(CAMERA, depth_message(depth, stamp))
    before = int(depth_counters(node.outputs).get(f"depth.dropped.{reason}", 0))
    node.on_image(CAMERA, colour(stamp))
    instances = node.outputs.wait_instances(stamp)
    assert of_kind(node.outputs, "detections", stamp) and not of_kind(node.outputs, "detections_3d", stamp)
    assert not any(i.has_3d or i.depth_pixels_read or i.depth_pixels_used for i in instances.instances)
    node.outputs.messages.clear()
    counters = depth_counters(node.outputs, lambda c: int(c.get(f"depth.dropped.{reason}", 0)) == before + 1)
    assert counters["depth.last_error"].startswith(reason)


def test_no_camera_info_yet_is_counted(settings):
    outputs = Outputs()
    tracker = PerceptionNode(settings, engine_factory(settings), outputs)
    tracker.start()
    try:
        tracker.on_depth(CAMERA, depth_message(np.full((H, W), PLANE_M), 5))
        tracker.on_image(CAMERA, colour(5))
        outputs.wait_instances(5)
        assert of_kind(outputs, "detections", 5) and not of_kind(outputs, "detections_3d", 5)
        assert depth_counters(outputs, lambda c: c.get("depth.dropped.no_camera_info") == "1")
    finally:
        tracker.stop()
