"""Per-instance 3D from aligned depth: the depth codec, pairing depth with colour by stamp, and the robust
statistics, checked against the synthetic depth world's ground truth (objects at known distances)."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from scipy import ndimage

from sam3_ros.codec import rle
from sam3_ros.codec.depth import Intrinsics, depth_to_array, depth_to_image_fields
from sam3_ros.eval.synthetic import World, WorldConfig
from sam3_ros.eval.synthetic_depth import FAR_M, NEAR_M, DepthRenderer
from sam3_ros.pipeline.depth import DepthInput, NoDepth3D, camera_info_topic, depth_inputs, locate_from_messages
from sam3_ros.pipeline.instances3d import locate_instances
from sam3_ros.pipeline.messages_3d import camera_info_message, depth_message
from sam3_ros.settings import DepthSettings, Settings, SettingsError

K = Intrinsics(fx=100.0, fy=100.0, cx=31.5, cy=23.5, width=64, height=48)


def box_of(mask: np.ndarray) -> list[float]:
    rows, cols = np.nonzero(mask)
    return [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]


def disc(h: int, w: int, cx: float, cy: float, r: float) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w]
    return (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r


# --- codec ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding, tolerance", [("16UC1", 0.0005), ("32FC1", 1e-6)])
def test_depth_round_trips_through_image_fields(encoding, tolerance):
    depth = np.random.default_rng(1).uniform(0.2, 5.0, (6, 7)).astype(np.float32)
    fields = depth_to_image_fields(depth, encoding)
    raw, scale = depth_to_array(SimpleNamespace(**fields))
    assert raw.shape == (6, 7) and np.abs(raw * scale - depth).max() <= tolerance


def test_depth_decoding_honours_row_padding_and_big_endian():
    millimetres = np.array([[1000, 2000, 65535], [1, 0, 1234]], ">u2")
    data = np.zeros((2, 8), np.uint8)  # step 8: 2 padding bytes a row
    data[:, :6] = millimetres.view(np.uint8).reshape(2, 6)
    msg = SimpleNamespace(height=2, width=3, step=8, encoding="16UC1", is_bigendian=1, data=data.reshape(-1))
    raw, scale = depth_to_array(msg)
    assert scale == 0.001 and raw.astype(int).tolist() == millimetres.astype(int).tolist()


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"encoding": "mono16"}, "unsupported depth encoding 'mono16'"),
        ({"encoding": "32FC1", "step": 6}, "step 6 is smaller than width 3"),
        ({"data": np.zeros(5, np.uint8)}, "data has 5 bytes"),
    ],
)
def test_bad_depth_images_raise_a_value_error_naming_the_problem(fields, expected):
    msg = SimpleNamespace(
        **{
            "height": 2,
            "width": 3,
            "step": 6,
            "encoding": "16UC1",
            "is_bigendian": 0,
            "data": np.zeros(12, np.uint8),
            **fields,
        }
    )
    with pytest.raises(ValueError, match=expected):
        depth_to_array(msg)


def test_intrinsics_from_camera_info_and_back():
    info = camera_info_message(K, 5, "cam")
    assert Intrinsics.from_camera_info(info) == K
    info.k = np.zeros(9)
    with pytest.raises(ValueError, match="zero or negative focal length"):
        Intrinsics.from_camera_info(info)
    with pytest.raises(ValueError, match="CameraInfo is for 64x48 images, the image is 32x24"):
        K.check_size(24, 32)


# --- settings and pairing ------------------------------------------------------------------------------------


def test_depth_inputs_from_settings():
    settings = Settings.default(
        {
            "input.topics": ["/front/color/image_raw", "/rear/image_raw/compressed"],
            "input.depth_topics": ["/front/aligned_depth_to_color/image_raw", ""],
        }
    )
    assert depth_inputs(settings) == {
        "/front/color/image_raw": ("/front/aligned_depth_to_color/image_raw", "/front/color/camera_info")
    }
    assert camera_info_topic("/rear/image_raw/compressed") == "/rear/camera_info"
    assert depth_inputs(Settings.default({})) == {}
    with pytest.raises(SettingsError, match=r"input.depth_topics: 2 topics for 1 cameras"):
        Settings.default({"input.topics": ["/a/image_raw"], "input.depth_topics": ["/a/depth", "/b/depth"]})
    with pytest.raises(SettingsError, match=r"depth.min_m: must be < depth.max_m"):
        Settings.default({"depth.min_m": 5.0, "depth.max_m": 4.0})


def stamped(stamp_ns: int):
    return depth_message(np.ones((2, 2)), stamp_ns)


def test_depth_pairs_with_the_closest_stamp_within_the_tolerance():
    pairing = DepthInput(max_stamp_diff_ns=10)
    for stamp in (70, 95, 108, 140):
        pairing.put_depth(stamped(stamp))
    pairing.want(100)
    pairing.put_depth(stamped(103))  # arrives while the engine runs: closer, wins
    pairing.put_depth(stamped(111))
    paired = pairing.take()
    assert paired.depth.header.stamp.nanosec == 103 and paired.camera_info is None
    pairing.want(125)  # nothing within 10 ns
    assert pairing.take().depth is None
    pairing.put_camera_info("info")
    pairing.want(141)
    assert pairing.take().camera_info == "info"
    assert pairing.received == 6


# --- 3D statistics -------------------------------------------------------------------------------------------


def test_a_disc_on_a_plane_with_holes_and_flying_pixels():
    """A disc at 1.5 m in front of a wall at 4 m; the mask bleeds one pixel onto the wall, its rim pixels mix
    both depths, a hole covers part of it: the centroid stays within millimetres of the truth."""
    h, w = K.height, K.width
    true_mask = disc(h, w, 30.0, 22.0, 12.0)
    depth = np.full((h, w), 4.0)
    depth[true_mask] = 1.5
    rim = disc(h, w, 30.0, 22.0, 13.0) & ~disc(h, w, 30.0, 22.0, 11.0)
    depth[rim] = np.random.default_rng(0).uniform(1.5, 4.0, rim.sum())
    depth[disc(h, w, 36.0, 20.0, 3.0)] = 0.0  # a hole
    depth[25, 25] = np.nan
    mask = disc(h, w, 30.0, 22.0, 13.0)  # a segmentation one pixel too large
    settings = DepthSettings(max_samples=100000)
    located = locate_instances(np.array([box_of(mask)], float), mask[None], depth.astype(np.float32), 1.0, K, settings)
    rows, cols = np.nonzero(true_mask)
    truth = np.array([(cols.mean() - K.cx) * 1.5 / K.fx, (rows.mean() - K.cy) * 1.5 / K.fy, 1.5])
    assert located.valid[0] and located.points_used[0] >= settings.min_points
    assert np.abs(located.centroid[0] - truth).max() < 0.005
    assert abs(located.size[0, 2]) < 0.01  # a flat disc has no depth extent
    assert np.abs(located.size[0, :2] - 26 * 1.5 / K.fx).max() < 0.02  # the (slightly too large) mask's box


def test_instances_without_valid_depth_have_no_3d():
    h, w = K.height, K.width
    depth = np.zeros((h, w), np.uint16)
    depth[:, 32:] = 2000
    depth[0, 0] = 20000  # beyond max_m: invalid too
    masks = np.stack([disc(h, w, 12, 20, 8), disc(h, w, 48, 20, 8), np.zeros((h, w), bool)])
    boxes = np.array([box_of(masks[0]), box_of(masks[1]), [0, 0, 0, 0]], float)
    located = locate_instances(boxes, masks, depth, 0.001, K, DepthSettings(), with_points=True)
    assert located.valid.tolist() == [False, True, False]
    assert located.points_used.tolist()[0::2] == [0, 0] and located.points_used[1] >= 20
    assert abs(located.centroid[1, 2] - 2.0) < 1e-9 and not located.centroid[0].any()
    assert len(located.points[1]) == located.points_used[1] and np.allclose(located.points[1][:, 2], 2.0)
    assert len(locate_instances(np.zeros((0, 4)), np.zeros((0, h, w), bool), depth, 0.001, K, DepthSettings())) == 0


def test_masks_as_torch_tensors_give_the_same_3d():
    h, w = K.height, K.width
    depth = (np.random.default_rng(2).normal(2.0, 0.01, (h, w)) * 1000).astype(np.uint16)
    masks = np.stack([disc(h, w, 20, 20, 9), disc(h, w, 40, 30, 6)])
    boxes = np.array([box_of(m) for m in masks], np.float32)
    from_numpy = locate_instances(boxes, masks, depth, 0.001, K, DepthSettings())
    from_torch = locate_instances(torch.from_numpy(boxes), torch.from_numpy(masks), depth, 0.001, K, DepthSettings())
    assert np.array_equal(from_numpy.centroid, from_torch.centroid) and np.array_equal(from_numpy.size, from_torch.size)


def test_pixels_read_and_used_are_what_the_pixels_give():
    """Every pixel read (a box smaller than max_samples): read = the mask eroded by erode_px (scipy, a square),
    used = those with depth neither 0, NaN, out of range nor an outlier; too few used: no 3D and 0 used."""
    h, w = K.height, K.width
    mask = disc(h, w, 30.0, 22.0, 11.0)
    depth = np.random.default_rng(5).normal(2.0, 0.002, (h, w))
    depth[18:21, 25:29] = 0.0  # a hole of 12 pixels
    depth[24, 24:27] = np.nan
    depth[27, 30] = 12.0  # beyond max_m
    depth[20, 33], depth[23, 35] = 2.5, 1.6  # in range, far from the rest: outliers
    settings = DepthSettings(max_samples=100000, erode_px=2)
    read = ndimage.binary_erosion(mask, np.ones((5, 5), bool), border_value=0)
    bad = np.isnan(depth) | (depth == 0) | (depth > settings.max_m) | (np.abs(depth - 2.0) > 0.3)
    located = locate_instances(np.array([box_of(mask)], float), mask[None], depth, 1.0, K, settings)
    assert located.valid[0]
    assert located.pixels_read[0] == read.sum() and located.points_used[0] == (read & ~bad).sum()
    assert (read & bad).sum() == 12 + 3 + 1 + 2  # every kind of bad pixel lies inside the eroded mask
    few = DepthSettings(max_samples=100000, erode_px=2, min_points=int(read.sum()) + 1)
    located = locate_instances(np.array([box_of(mask)], float), mask[None], depth, 1.0, K, few)
    assert not located.valid[0] and located.points_used[0] == 0 and located.pixels_read[0] == read.sum()


class RunsOnly(rle.RleMasks):
    """Masks as run lengths that refuse to be decoded to full frames."""

    def dense(self):
        raise AssertionError("decoded a full-frame mask")


def test_masks_as_run_lengths_are_read_inside_their_boxes_without_decoding():
    """The engine's masks (run lengths) give the same 3D as the same masks dense, on a 1280x720 frame with masks
    of many runs (speckle, a ring, a mask touching the frame's last pixel), never decoded to full frames."""
    h, w = 720, 1280
    rng = np.random.default_rng(4)
    ring = disc(h, w, 400.0, 300.0, 120.0) & ~disc(h, w, 400.0, 300.0, 60.0)
    speckle = np.zeros((h, w), bool)
    speckle[100:400, 600:1000] = rng.random((300, 400)) < 0.9
    corner = np.zeros((h, w), bool)
    corner[650:, 1200:] = True
    masks = np.stack([ring, speckle, corner, np.zeros((h, w), bool)])
    boxes = np.array([box_of(m) for m in masks[:3]] + [[0, 0, 0, 0]], float)
    depth = (rng.normal(2.0, 0.01, (h, w)) * 1000).astype(np.uint16)
    intrinsics = Intrinsics(fx=900.0, fy=900.0, cx=639.5, cy=359.5, width=w, height=h)
    for settings in (DepthSettings(), DepthSettings(max_samples=4096, erode_px=1)):
        dense = locate_instances(boxes, masks, depth, 0.001, intrinsics, settings)
        runs = locate_instances(boxes, RunsOnly(rle.encode(masks), (h, w)), depth, 0.001, intrinsics, settings)
        assert dense.valid.tolist() == runs.valid.tolist() == [True, True, True, False]
        for name in ("centroid", "size", "covariance", "pixels_read", "points_used"):
            assert np.array_equal(getattr(dense, name), getattr(runs, name)), name


def synthetic_errors(frames: int = 8, size=(640, 360), seed: int = 3):
    """Centroid and extent errors (metres) of every visible object of a synthetic depth clip, from its
    ground-truth masks and the rendered (noisy, holed) 16UC1 depth."""
    world = World(WorldConfig(width=size[0], height=size[1], frames=frames, seed=seed))
    renderer = DepthRenderer(world)
    centroid_errors, extent_errors, distances = [], [], []
    for frame in world:
        rendered = renderer.render(frame)
        if not len(frame.ids):
            continue
        masks = np.asarray(frame.masks, bool)
        raw = depth_message(rendered.depth, frame.stamp_ns)
        located = locate_from_messages(
            raw,
            camera_info_message(renderer.intrinsics, frame.stamp_ns),
            masks.shape[1:],
            SimpleNamespace(boxes=np.array([box_of(m) for m in masks], float), masks=masks),
            Settings.default({}),
        )
        assert located.valid.all()
        centroid_errors += np.linalg.norm(located.centroid - rendered.centroids, axis=1).tolist()
        extent_errors += np.abs(located.size - rendered.extents).max(1).tolist()
        distances += rendered.centroids[:, 2].tolist()
    return np.array(centroid_errors), np.array(extent_errors), np.array(distances)


def test_synthetic_depth_benchmark_meets_the_targets_from_ground_truth_masks():
    centroid, extent, z = synthetic_errors()
    assert len(z) >= 20 and z.min() >= NEAR_M and z.max() <= FAR_M
    assert np.median(centroid) <= 0.01, np.median(centroid)
    assert np.median(extent) <= 0.02, np.median(extent)


def test_bad_depth_input_is_a_no_depth_3d_with_its_reason():
    instances = SimpleNamespace(boxes=np.zeros((0, 4)), masks=np.zeros((0, 48, 64), bool))
    info, settings = camera_info_message(K, 0), Settings.default({})
    good = depth_message(np.ones((48, 64)), 0)
    cases = [
        (depth_message(np.ones((24, 32)), 0), info, "bad_depth", "depth image of 32x24, the colour image is 64x48"),
        (SimpleNamespace(**{**vars(good), "encoding": "rgb8"}), info, "bad_depth", "unsupported depth encoding"),
        (good, camera_info_message(Intrinsics(0.0, 0.0, 1, 1, 64, 48), 0), "bad_camera_info", "focal"),
    ]
    for depth, camera_info, reason, text in cases:
        with pytest.raises(NoDepth3D, match=text) as caught:
            locate_from_messages(depth, camera_info, (48, 64), instances, settings, topics=("/d", "/i"))
        assert caught.value.reason == reason
    assert len(locate_from_messages(good, info, (48, 64), instances, settings)) == 0
