"""The vision encoder as one module with flat tensor outputs: what every encoder backend computes.

``VisionEncoder`` runs what ``Engine.step`` needs from a frame's pixels: the detector's vision features
(``Sam3Model.get_vision_features``: ViT + FPN neck) and the tracker's features
(``Sam3VideoModel.get_vision_features_for_tracker``: tracker neck + the mask decoder's two high-res
projections). Its outputs are a flat tuple of tensors, so the same module is what ``torch.compile``
and the ONNX export see. Position encodings depend only on the input shape: they are computed once
per backend and not part of the exported graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .folded_neck import NeckLevel


@dataclass
class VisionFeatures:
    """One frame's features in the forms the engine reads."""

    detector: object  # transformers Sam3VisionEncoderOutput (last_hidden_state, fpn_hidden_states, positions)
    tracker_feats: list[torch.Tensor]  # per level (HW, 1, C)
    tracker_pos: list[torch.Tensor]  # per level (HW, 1, C)


class VisionEncoder(torch.nn.Module):
    """pixels (1, 3, S, S) -> (last_hidden_state, *fpn_hidden_states, *tracker_feats), all data-dependent.

    Holds only the modules it runs (ViT, the two necks' levels, two mask-decoder projections), so an export
    or a compiled graph carries about half of the model's weights, not all of them. Each level's trailing
    convolutions are folded into one where that is less work (``NeckLevel``): the same features up to
    rounding, for inputs of the model's image size. The tracker neck's coarsest level, which the tracker
    never reads, is not computed.
    """

    def __init__(self, model):
        super().__init__()
        self.vision = model.detector_model.vision_encoder  # shared with the model, not copied
        self.patch_size = self.vision.config.backbone_config.patch_size
        side = tuple(model.tracker_model.prompt_encoder.image_embedding_size)
        decoder = model.tracker_model.mask_decoder

        def levels(neck, posts):
            return torch.nn.ModuleList(
                NeckLevel(layer, post, tuple(int(s * layer.scale_factor) for s in side))
                for layer, post in zip(neck.fpn_layers, posts)
            )

        self.detector_levels = levels(self.vision.neck, [None] * len(self.vision.neck.fpn_layers))
        # Sam3VideoModel.get_vision_features_for_tracker: all levels but the last, the first two projected
        posts = [decoder.conv_s0, decoder.conv_s1] + [None] * (len(model.tracker_neck.fpn_layers) - 3)
        self.tracker_levels = levels(model.tracker_neck, posts)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        hidden = self.vision.backbone(pixel_values=pixels).last_hidden_state
        h, w = (s // self.patch_size for s in pixels.shape[-2:])
        spatial = hidden.view(hidden.shape[0], h, w, -1).permute(0, 3, 1, 2)
        detector = [level(spatial) for level in self.detector_levels]
        tracker = [level(spatial).flatten(2).permute(2, 0, 1) for level in self.tracker_levels]
        return (hidden, *detector, *tracker)


@torch.inference_mode()
def reference_features(model, pixels: torch.Tensor) -> tuple[VisionFeatures, "FeatureLayout"]:
    """The features of ``pixels`` from the transformers calls themselves, and the layout that turns
    ``VisionEncoder`` outputs back into them (with the constant position encodings)."""
    vision = model.detector_model.get_vision_features(pixel_values=pixels)
    feats, pos = model.get_vision_features_for_tracker(vision)
    layout = FeatureLayout(
        levels=len(vision.fpn_hidden_states),
        detector_pos=tuple(vision.fpn_position_encoding),
        tracker_pos=list(pos),
        output_type=type(vision),
    )
    return VisionFeatures(vision, list(feats), list(pos)), layout


@dataclass
class FeatureLayout:
    """How a ``VisionEncoder``'s flat outputs map back to ``VisionFeatures`` (with the constant positions)."""

    levels: int
    detector_pos: tuple[torch.Tensor, ...]
    tracker_pos: list[torch.Tensor]
    output_type: type

    def unflatten(self, outputs: tuple[torch.Tensor, ...] | list[torch.Tensor]) -> VisionFeatures:
        """``VisionFeatures`` from ``VisionEncoder`` outputs (in its order)."""
        if len(outputs) != 1 + self.levels + len(self.tracker_pos):
            raise ValueError(f"expected {1 + self.levels + len(self.tracker_pos)} encoder outputs, got {len(outputs)}")
        detector = self.output_type(
            last_hidden_state=outputs[0],
            fpn_hidden_states=tuple(outputs[1 : 1 + self.levels]),
            fpn_position_encoding=self.detector_pos,
        )
        return VisionFeatures(detector, list(outputs[1 + self.levels :]), self.tracker_pos)

    def output_names(self) -> list[str]:
        """Names of the flat outputs (ONNX / TensorRT bindings)."""
        return (
            ["last_hidden_state"]
            + [f"fpn_{i}" for i in range(self.levels)]
            + [f"tracker_feat_{i}" for i in range(len(self.tracker_pos))]
        )


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    """max |got - expected| / max |expected| (in fp32): the error relative to the tensor's scale."""
    got, expected = got.float(), expected.float()
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    return float((got - expected).abs().max()) / max(scale, 1e-12) if expected.numel() else 0.0
