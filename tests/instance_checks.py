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
