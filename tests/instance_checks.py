"""Checks of published ``InstanceArray`` messages with pycocotools, for the DDS-direct and the ROS 2 tests."""

import numpy as np
from pycocotools import mask as coco_mask


def check_masks(message, height: int, width: int, concept: str) -> None:
    """Every instance's RLE decodes with pycocotools to a non-empty ``height`` x ``width`` mask whose bounding box
    is the instance's box; concept and score are as expected."""
    for item in message.instances:
        assert (item.mask_height, item.mask_width) == (height, width)
        mask = coco_mask.decode(
            coco_mask.frPyObjects({"size": [height, width], "counts": [int(c) for c in item.mask_rle]}, height, width)
        ).astype(bool)
        ys, xs = np.nonzero(mask)
        assert len(xs), "published an empty mask"
        assert [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == [int(v) for v in item.box]
        assert item.concept == concept and 0 <= item.score <= 1


def check_depth_pixels(message, detections_3d, erode_px: int, min_points: int) -> None:
    """The 3D fields of every instance of ``message`` against its pixels, for a frame whose depth is one flat,
    valid plane over the whole image and whose masks are read at every pixel (``depth.max_samples`` above the box
    areas): pixels read = the mask (decoded with pycocotools) eroded by ``erode_px`` with scipy (a square of
    2 ``erode_px`` + 1, outside the image counting as background); all of them used (no outliers on a plane)
    when at least ``min_points``; ``has_3d`` exactly for the instances in ``detections_3d``."""
    from scipy import ndimage

    with_3d = {d.id for d in detections_3d.detections}
    for item in message.instances:
        height, width = item.mask_height, item.mask_width
        mask = coco_mask.decode(
            coco_mask.frPyObjects({"size": [height, width], "counts": [int(c) for c in item.mask_rle]}, height, width)
        ).astype(bool)
        square = np.ones((2 * erode_px + 1, 2 * erode_px + 1), bool)
        read = int(ndimage.binary_erosion(mask, square, border_value=0).sum())
        assert item.depth_pixels_read == read, (item.id, item.depth_pixels_read, read)
        assert item.depth_pixels_used == (read if read >= min_points else 0), (item.id, item.depth_pixels_used)
        assert item.has_3d == (str(item.id) in with_3d) == (read >= min_points), item.id
