"""The synthetic benchmark: a camera bag rendered from the concept world, with its ground truth beside it."""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from .bags import write_camera_bag
from .groundtruth import GroundTruthBuilder
from .synthetic import World, WorldConfig

NEGATIVE_PHRASES = 2  # phrases with no object in the clip, scored too (image-level negatives)


def gt_path_for(bag: str | Path) -> Path:
    """Where the ground truth of a bag lives: ``<bag>.gt.json`` beside the bag directory."""
    bag = Path(bag)
    return bag.with_name(bag.name + ".gt.json")


def write_benchmark(bag: str | Path, config: WorldConfig, *, storage: str = "mcap",
                    topic: str = "/camera/image_raw", frame_id: str = "camera",
                    progress: bool = False) -> tuple[Path, Path]:
    """Render ``config`` into a camera bag and its SA-Co/VEval-style ground truth; returns both paths."""
    world = World(config)
    phrases = list(config.concepts) + world.negative_concepts[:NEGATIVE_PHRASES]
    builder = GroundTruthBuilder(Path(bag).name, config.width, config.height, phrases,
                                 info={"generator": "sam3_ros.eval.synthetic", "seed": config.seed, "fps": config.fps,
                                       "topic": topic, "frame_id": frame_id})

    def frames():
        for f in tqdm(world, total=config.frames, desc="render", unit="frame", disable=not progress):
            builder.add_frame(f.stamp_ns, f.ids, f.concepts, f.masks)
            yield f.stamp_ns, f.image

    write_camera_bag(bag, frames(), topic=topic, frame_id=frame_id, storage=storage)
    return Path(bag), builder.write(gt_path_for(bag))
