"""Messages of the vision_msgs and depth path, as rosbags dataclasses (transport-neutral, like ``messages``).

Out: ``vision_msgs/Detection2DArray`` (every frame), ``vision_msgs/Detection3DArray`` (frames with depth) and
``sensor_msgs/PointCloud2`` (the depth points behind each instance's 3D), each with the source image's header.
In: the depth ``Image`` and ``CameraInfo`` a depth camera publishes (for bags, test cameras and clients).

Detection2D: ``results[0].hypothesis`` = (concept, score), ``id`` = the track id as text, ``bbox`` in pixels
with pixel centres at integer coordinates (as ``CameraInfo``'s ``k``): centre ((x_min + x_max - 1) / 2, ...),
size (x_max - x_min, ...) for the instance's box [x_min, x_max). Detection3D: the same hypothesis and id; the
hypothesis' pose is the centroid (orientation identity; covariance: the centroid's, position rows only) and
``bbox`` the axis-aligned box in the optical frame (orientation identity), in metres. What a consumer needs to judge
an estimate rides on the ``InstanceArray`` of the same frame: each ``Instance``'s ``has_3d``, ``depth_pixels_read``
and ``depth_pixels_used`` (vision_msgs has no field for them).
"""

from __future__ import annotations

import numpy as np

from ..codec.depth import Intrinsics, depth_to_image_fields
from ..interfaces import typestore
from .instances3d import Instances3D
from .messages import header

POINT_FIELDS = (("x", 0, 7), ("y", 4, 7), ("z", 8, 7), ("id", 12, 6))  # name, offset, FLOAT32 = 7 / UINT32 = 6
POINT_STEP = 16


def _hypotheses(concept: str, score: float, pose=None) -> list:
    types = typestore().types
    if pose is None:
        pose = types["geometry_msgs/msg/PoseWithCovariance"](pose=_pose(np.zeros(3)), covariance=np.zeros(36))
    return [
        types["vision_msgs/msg/ObjectHypothesisWithPose"](
            hypothesis=types["vision_msgs/msg/ObjectHypothesis"](class_id=concept, score=float(score)), pose=pose
        )
    ]


def _pose(position: np.ndarray):
    types = typestore().types
    return types["geometry_msgs/msg/Pose"](
        position=types["geometry_msgs/msg/Point"](x=float(position[0]), y=float(position[1]), z=float(position[2])),
        orientation=types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
    )


def detections_2d_message(instance_array):
    """``vision_msgs/Detection2DArray`` of an ``InstanceArray``: one detection per listed instance."""
    types = typestore().types
    Detection2D, Box, Pose2D, Point2D = (
        types[f"vision_msgs/msg/{name}"] for name in ("Detection2D", "BoundingBox2D", "Pose2D", "Point2D")
    )
    detections = []
    for item in instance_array.instances:
        x0, y0, x1, y1 = (float(v) for v in item.box)
        box = Box(
            center=Pose2D(position=Point2D(x=(x0 + x1 - 1) / 2, y=(y0 + y1 - 1) / 2), theta=0.0),
            size_x=x1 - x0,
            size_y=y1 - y0,
        )
        detections.append(
            Detection2D(
                header=instance_array.header, results=_hypotheses(item.concept, item.score), bbox=box, id=str(item.id)
            )
        )
    return types["vision_msgs/msg/Detection2DArray"](header=instance_array.header, detections=detections)


def _listed_rows(instance_array, ids) -> list[tuple[object, int | None]]:
    """Each listed instance of ``instance_array`` with its row in arrays over the engine's ``ids`` (None: not
    there)."""
    row_of = {int(i): row for row, i in enumerate(np.asarray(ids).tolist())}
    return [(item, row_of.get(int(item.id))) for item in instance_array.instances]


def add_3d_to_instances(instance_array, ids, located: Instances3D) -> None:
    """Fill in the 3D fields of the listed instances of ``instance_array`` (``has_3d``, ``depth_pixels_read``,
    ``depth_pixels_used``); ``located`` row i belongs to the engine's instance ``ids[i]``."""
    for item, row in _listed_rows(instance_array, ids):
        if row is not None:
            item.has_3d = bool(located.valid[row])
            item.depth_pixels_read = int(located.pixels_read[row])
            item.depth_pixels_used = int(located.points_used[row])


def detections_3d_message(instance_array, ids, located: Instances3D):
    """``vision_msgs/Detection3DArray`` of the listed instances of ``instance_array`` that have 3D; ``located``
    row i belongs to the engine's instance ``ids[i]``."""
    types = typestore().types
    detections = []
    for item, row in _listed_rows(instance_array, ids):
        if row is None or not located.valid[row]:
            continue
        covariance = np.zeros((6, 6))
        covariance[:3, :3] = located.covariance[row]
        pose = types["geometry_msgs/msg/PoseWithCovariance"](
            pose=_pose(located.centroid[row]), covariance=covariance.reshape(-1)
        )
        size = located.size[row]
        box = types["vision_msgs/msg/BoundingBox3D"](
            center=_pose(located.center[row]),
            size=types["geometry_msgs/msg/Vector3"](x=float(size[0]), y=float(size[1]), z=float(size[2])),
        )
        detections.append(
            types["vision_msgs/msg/Detection3D"](
                header=instance_array.header,
                results=_hypotheses(item.concept, item.score, pose),
                bbox=box,
                id=str(item.id),
            )
        )
    return types["vision_msgs/msg/Detection3DArray"](header=instance_array.header, detections=detections)


def point_cloud_message(instance_array, ids, located: Instances3D):
    """``sensor_msgs/PointCloud2`` (x, y, z float32, id uint32) of the depth points behind the 3D of the listed
    instances (``located`` computed ``with_points``)."""
    types = typestore().types
    listed = {int(item.id) for item in instance_array.instances}
    parts = [
        (int(i), located.points[row])
        for row, i in enumerate(np.asarray(ids).tolist())
        if i in listed and located.valid[row]
    ]
    count = sum(len(points) for _, points in parts)
    cloud = np.zeros(count, np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("id", "<u4")]))
    if parts:
        points = np.concatenate([points for _, points in parts])
        cloud["x"], cloud["y"], cloud["z"] = points[:, 0], points[:, 1], points[:, 2]
        cloud["id"] = np.concatenate([np.full(len(points), object_id) for object_id, points in parts])
    PointField = types["sensor_msgs/msg/PointField"]
    return types["sensor_msgs/msg/PointCloud2"](
        header=instance_array.header,
        height=1,
        width=count,
        fields=[PointField(name=name, offset=offset, datatype=kind, count=1) for name, offset, kind in POINT_FIELDS],
        is_bigendian=False,
        point_step=POINT_STEP,
        row_step=POINT_STEP * count,
        data=cloud.view(np.uint8).reshape(-1),
        is_dense=True,
    )


def depth_message(depth_m: np.ndarray, stamp_ns: int, frame_id: str = "", encoding: str = "16UC1"):
    """``sensor_msgs/Image`` of a (H, W) depth array in metres (``16UC1``: millimetres, 0 = no depth)."""
    return typestore().types["sensor_msgs/msg/Image"](
        header=header(stamp_ns, frame_id), **depth_to_image_fields(depth_m, encoding)
    )


def camera_info_message(intrinsics: Intrinsics, stamp_ns: int, frame_id: str = ""):
    """``sensor_msgs/CameraInfo`` of pinhole intrinsics (no distortion)."""
    types = typestore().types
    roi = types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return types["sensor_msgs/msg/CameraInfo"](
        header=header(stamp_ns, frame_id), roi=roi, **intrinsics.camera_info_fields()
    )
