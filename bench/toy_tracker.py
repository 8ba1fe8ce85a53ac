"""Whether a model's tracker says when an object is gone: held-out training-style clips of 8 frames (a generator
seed training never uses), half of them showing an object that goes away (out of view, covered, or gone from the
world). The objects start from their true first-frame masks and are tracked with the engine's tracker code.

    python bench/toy_tracker.py MODEL [CLIPS]        MODEL: toy or a trained directory

Prints, over the tracked frames: the share of frames where the tracker's object score says "present" for an
object that is gone (its mask then drifts onto whatever is near, a false detection in the benchmark), the share
where it says "absent" for a visible object, and the median mask IoU on frames where the object is visible and
said present.
"""

import sys

import numpy as np
import torch

from sam3_ros.engine.loading import load_model
from sam3_ros.training.probe import PROBE_SEED, track_clips


def main(model: str, clips: int) -> None:
    with torch.no_grad():
        tracked = track_clips(
            load_model(model), clips, np.random.default_rng(PROBE_SEED), torch.device("cpu"), 8, 6, vanishing=0.5
        )
    visible, present = tracked["visible"], tracked["present"]
    gone = ~visible
    print(f"{model}: {clips} clips")
    print(f"  gone object said present: {(present & gone).sum() / max(gone.sum(), 1):.3f} of {gone.sum()} frames")
    print(
        f"  visible object said absent: {(~present & visible).sum() / max(visible.sum(), 1):.3f} "
        f"of {visible.sum()} frames"
    )
    print(f"  median mask IoU, visible and said present: {np.median(tracked['iou'][visible & present]):.3f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "toy", int(sys.argv[2]) if len(sys.argv) > 2 else 24)
