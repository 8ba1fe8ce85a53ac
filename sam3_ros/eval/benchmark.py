"""The synthetic benchmark: a camera bag rendered from the concept world, with its ground truth beside it.

With depth, the bag also holds an aligned depth image (16UC1) and the camera's CameraInfo per frame, and the
ground truth each object's 3D (``synthetic_depth``).
"""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from ..codec.image import rgb_to_image_fields
from ..pipeline.depth import camera_info_topic
from ..pipeline.messages import image_message
from ..pipeline.messages_3d import camera_info_message, depth_message
from ..ros.names import CAMERA_INFO_TYPE, IMAGE_TYPE
from .bags import BagWriter
from .groundtruth import GroundTruthBuilder
from .synthetic import World, WorldConfig
from .synthetic_depth import DepthRenderer

NEGATIVE_PHRASES = 2  # phrases with no object in the clip, scored too (image-level negatives)


def gt_path_for(bag: str | Path) -> Path:
    """Where the ground truth of a bag lives: ``<bag>.gt.json`` beside the bag directory."""
    bag = Path(bag)
    return bag.with_name(bag.name + ".gt.json")


def write_benchmark(
    bag: str | Path,
    config: WorldConfig,
    *,
    storage: str = "mcap",
    topic: str = "/camera/image_raw",
    frame_id: str = "camera",
    depth_topic: str | None = None,
    progress: bool = False,
) -> tuple[Path, Path]:
    """Render ``config`` into a camera bag and its SA-Co/VEval-style ground truth; returns both paths. With
    ``depth_topic``, also the aligned depth there and the CameraInfo beside ``topic``, and the 3D truth."""
    world = World(config)
    phrases = list(config.concepts) + world.negative_concepts[:NEGATIVE_PHRASES]
    builder = GroundTruthBuilder(
        Path(bag).name,
        config.width,
        config.height,
        phrases,
        info={
            "generator": "sam3_ros.eval.synthetic",
            "seed": config.seed,
            "fps": config.fps,
            "topic": topic,
            "frame_id": frame_id,
        },
    )
    renderer = DepthRenderer(world) if depth_topic else None
    info_topic = camera_info_topic(topic)
    if renderer is not None:
        k = renderer.intrinsics
        builder.depth = {
            "camera_info": {"fx": k.fx, "fy": k.fy, "cx": k.cx, "cy": k.cy, "width": k.width, "height": k.height},
            "depth_topic": depth_topic,
            "camera_info_topic": info_topic,
        }
    with BagWriter(bag, storage) as writer:
        for f in tqdm(world, total=config.frames, desc="render", unit="frame", disable=not progress):
            writer.write(
                topic, IMAGE_TYPE, f.stamp_ns, image_message(rgb_to_image_fields(f.image), f.stamp_ns, frame_id)
            )
            if renderer is None:
                builder.add_frame(f.stamp_ns, f.ids, f.concepts, f.masks)
                continue
            rendered = renderer.render(f)
            builder.add_frame(f.stamp_ns, f.ids, f.concepts, f.masks, rendered.centroids, rendered.extents)
            writer.write(depth_topic, IMAGE_TYPE, f.stamp_ns, depth_message(rendered.depth, f.stamp_ns, frame_id))
            writer.write(
                info_topic, CAMERA_INFO_TYPE, f.stamp_ns, camera_info_message(renderer.intrinsics, f.stamp_ns, frame_id)
            )
    return Path(bag), builder.write(gt_path_for(bag))
