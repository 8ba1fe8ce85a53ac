"""Whether the geometry encoder's token for an exemplar box carries the boxed concept: single positive boxes on
held-out training-style frames (``data.exemplar_sample``, generator seed 123), the detector run on each, and a
linear probe (``training.probe.linear_probe_accuracy``: fitted on half, scored on the other half) reading the
concept from the box token, the geometry encoder's CLS token, and the DETR encoder's mean image token.

    python bench/toy_box_tokens.py MODEL [FRAMES]      MODEL: toy or a trained directory

Prints the number of prompts, the majority share (chance) and each probe's held-out accuracy.
"""

import sys

import numpy as np
import torch

from sam3_ros.engine.loading import load_model
from sam3_ros.eval.synthetic import all_concepts
from sam3_ros.training.auxiliary import captured_output
from sam3_ros.training.data import PhraseTarget, exemplar_sample
from sam3_ros.training.detector import exemplar_inputs, vision_features, vision_rows
from sam3_ros.training.probe import linear_probe_accuracy


@torch.no_grad()
def main(model: str, frames: int) -> None:
    loaded = load_model(model)
    detector, cpu, concepts = loaded.model.detector_model, torch.device("cpu"), all_concepts()
    rng = np.random.default_rng(123)
    found: dict[str, list[torch.Tensor]] = {"box token": [], "CLS token": [], "DETR encoder, mean": []}
    labels: list[int] = []
    for _ in range(frames):
        sample = exemplar_sample(rng, 4)
        targets = [  # positive boxes only, one box each
            PhraseTarget(t.phrase, t.masks, t.boxes[:1], t.box_labels[:1], text_twin=t.text_twin)
            for t in sample.targets
            if len(t.boxes) and t.box_labels[0] and t.text_twin in concepts
        ]
        if not targets:
            continue
        vision = vision_features(loaded.model, [sample.image], cpu)
        tokens = loaded.tokenize([t.phrase for t in targets])
        with captured_output(detector.geometry_encoder) as geometry, captured_output(detector.detr_encoder) as encoder:
            detector(
                vision_embeds=vision_rows(vision, torch.zeros(len(targets), dtype=torch.long)),
                input_ids=tokens["input_ids"],
                attention_mask=tokens["attention_mask"],
                **exemplar_inputs(targets, [sample.image.shape[:2]] * len(targets), cpu),
            )
        prompt = geometry["output"].last_hidden_state  # (prompts, box + CLS, hidden)
        found["box token"].append(prompt[:, 0])
        found["CLS token"].append(prompt[:, -1])
        found["DETR encoder, mean"].append(encoder["output"].last_hidden_state.mean(1))
        labels += [concepts.index(t.text_twin) for t in targets]
    y = torch.tensor(labels)
    print(f"{model}: {len(y)} prompts, {len(set(labels))} concepts, chance {np.bincount(labels).max() / len(y):.2f}")
    for name, rows in found.items():
        print(f"  {name}: held-out probe accuracy {linear_probe_accuracy(torch.cat(rows).float(), y, steps=800):.2f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "toy", int(sys.argv[2]) if len(sys.argv) > 2 else 150)
