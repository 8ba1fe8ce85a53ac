"""``toy``: a small SAM 3 trained by this project on the synthetic concept world (``sam3-ros train-toy``).

The real transformers SAM 3 video architecture (ViT + FPN necks, CLIP text encoder, geometry encoder,
DETR encoder/decoder with presence token, mask decoder, tracker with memory attention and memory
encoder) at a size that trains on two CPU cores, with a word-level tokenizer over the world's
vocabulary. The trained files in ``TOY_DIR`` (``config.json``, ``model.safetensors`` in fp16, ``tokenizer.json``, and
``training.json``: the recipe that made them) load through the same loader as real SAM 3 weights.
"""

from __future__ import annotations

from pathlib import Path

from .small import SmallSizes, small_config

TOY_DIR = Path(__file__).resolve().parent / "toy"
TOY_IMAGE_SIZE = 168  # 12 x 12 patches; masks at 48 x 48
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[BOS]", "[EOS]")  # ids 0..3 (eos != 2: CLIP's legacy pooling path)
LOCALITY_PAIRS = 6  # RoPE frequency pairs per axis the memory attention's locality prior uses (the highest)
LOCALITY_GAIN = 30.0  # norm of its query and key: ~9 logits less per grid cell of distance
HIGH_RES_SKIP_GAIN = 0.1  # the tracker mask decoder's high-res skips start this small
ANCHOR_GRID = 8  # the DETR decoder's queries start as an ANCHOR_GRID x ANCHOR_GRID grid of boxes
ANCHOR_SIZE = 0.2  # their width and height (image fractions): about a world object's size


def toy_vocabulary() -> list[str]:
    """Every token of the toy text encoder: the specials, then the world's colour and shape words."""
    from ..eval.synthetic import COLORS, SHAPES

    return [*SPECIAL_TOKENS, *COLORS, *SHAPES]


def toy_config():
    """The ``Sam3VideoConfig`` of the toy model."""
    return small_config(
        SmallSizes(
            image_size=TOY_IMAGE_SIZE,
            vit_width=128,
            vit_layers=4,
            vit_heads=4,
            global_attention=(1, 3),
            vocab_size=len(toy_vocabulary()),
            bos_token_id=2,
            eos_token_id=3,
            text_width=64,
            text_layers=2,
            heads=4,
            mlp=256,
            detr_layers=2,
            queries=ANCHOR_GRID**2,
            iou_head=64,
        )
    )


def build_toy_tokenizer():
    """The toy model's tokenizer: lower-cased words, punctuation dropped, unknown words -> ``[UNK]``,
    ``[BOS] words [EOS]`` (a transformers fast tokenizer, saved as ``tokenizer.json``)."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(toy_vocabulary())}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Lowercase(), normalizers.Replace(Regex(r"[^\w\s]"), " ")]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", vocab["[BOS]"]), ("[EOS]", vocab["[EOS]"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]", eos_token="[EOS]"
    )


EDGE_FOCUS = 8.0  # attention logit per unit of log-scaled distance from a head's box edge (~2 per cell)


def _edge_attention_prior(decoder) -> None:
    """Start the DETR decoder's box position bias (box RPB) as a prior that head ``h`` looks at edge
    ``h % 4`` (left, right, top, bottom) of its query's box: logits fall with the distance to that edge
    along its axis and outside the box along the other.

    Without it the bias starts near zero, every query attends to the whole image alike, and a small
    model trained for minutes never learns to move its boxes (they stay at fixed per-query anchors).
    With it, what a head reads near its edge says whether the object extends past it."""
    import torch

    # the bias MLPs read (coordinate - box start, coordinate - box end) per axis; hidden units 0..3 are
    # relu(d0), relu(-d0), relu(d1), relu(-d1): |d0| = u0 + u1, |d1| = u2 + u3, outside the box = u1 + u2
    distance = {"start": (0, 1), "end": (2, 3), "outside": (1, 2)}
    roles = {  # per edge: what the x and the y bias measure
        0: ("start", "outside"),
        1: ("end", "outside"),
        2: ("outside", "start"),
        3: ("outside", "end"),
    }
    with torch.no_grad():
        for axis, mlp in enumerate((decoder.box_rpb_embed_x, decoder.box_rpb_embed_y)):
            first, second = mlp.layer1, mlp.layer2
            first.weight[:4] = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
            first.bias[:4] = 0.0
            second.weight[:, :4] = 0.0
            second.bias.zero_()
            for head in range(second.out_features):
                for unit in distance[roles[head % 4][axis]]:
                    second.weight[head, unit] = -EDGE_FOCUS


def _anchor_grid(decoder) -> None:
    """Start the DETR decoder's query boxes (``reference_points``, cxcywh before the sigmoid) on a regular grid
    over the image, each about an object's size. transformers' init puts every query at the image centre
    with half its size; two refinement layers then cannot reach objects near the border, and queries spread
    out only slowly under one-to-one matching."""
    import torch

    with torch.no_grad():
        centres = (torch.arange(ANCHOR_GRID, dtype=torch.float32) + 0.5) / ANCHOR_GRID
        cy, cx = torch.meshgrid(centres, centres, indexing="ij")
        size = torch.full_like(cx, ANCHOR_SIZE)
        boxes = torch.stack([cx, cy, size, size], dim=-1).reshape(-1, 4)
        decoder.reference_points.weight.copy_(torch.logit(boxes))


def _tracker_init(model) -> None:
    """Start the tracker (and its neck) where its masks can depend on the object it tracks.

    With transformers' std-0.02 weights at width 128 every signal in the tracker shrinks layer by layer,
    and training finds a mask that ignores memory: the union of all objects (its high-res skip features
    alone), the same mask for every object (probe: IoU 1.00 between two objects' masks). Here:
    - every linear / conv weight is drawn with fan-in scaling (unit gain);
    - the mask decoder's high-res skips start small, so the memory-conditioned embedding leads at first;
    - memory attention starts local: its query and key start as one constant vector on RoPE's highest
      frequency pairs of both axes, so a frame position attends to the memories at (and next to) the
      same position, and an object's past mask shows where it is now. (On all pairs alike the prior
      is hardly local: most pairs turn too slowly to tell neighbouring cells apart.)
    With the full recipe's 800 tracker steps (``train-toy --probe``): IoU 0.82 with the truth (copying the
    last true mask: 0.64) and IoU 0.00 between two objects' masks; with transformers' init: 0.13 and 1.00."""
    import torch

    tracker = model.tracker_model
    with torch.no_grad():
        for module in [*tracker.modules(), *model.tracker_neck.modules()]:
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                module.weight.normal_(0.0, module.weight[0].numel() ** -0.5)
            elif isinstance(module, torch.nn.ConvTranspose2d):  # stride = kernel: one tap per output pixel
                module.weight.normal_(0.0, module.in_channels**-0.5)
        decoder = tracker.mask_decoder
        for conv in (decoder.conv_s0, decoder.conv_s1):
            conv.weight.mul_(HIGH_RES_SKIP_GAIN)
            conv.bias.zero_()
        for layer in tracker.memory_attention.layers:
            attention = layer.cross_attn_image
            width = attention.q_proj.out_features
            prior = torch.zeros(width)
            # dims (2i, 2i+1) rotate at frequency i of the height axis for i < width / 4, of the width axis after
            for pair in [*range(LOCALITY_PAIRS), *range(width // 4, width // 4 + LOCALITY_PAIRS)]:
                prior[2 * pair] = 1.0
            for projection in (attention.q_proj, attention.k_proj):
                projection.bias.copy_(LOCALITY_GAIN * prior / prior.norm())
                projection.weight.mul_(0.1)


def build_toy(seed: int = 0):
    """An untrained toy ``Sam3VideoModel`` with weights drawn from ``seed`` (CPU, fp32).

    transformers initializes every projection with std 0.02, tuned for SAM 3's width: at width 128 the
    phrase reaches the image features at ~2% of their scale and the detector learns to ignore it. The
    value/output projections of every attention that reads the prompt start at unit gain instead, the
    decoder's box position bias starts as an edge prior (``_edge_attention_prior``), its query boxes as a
    grid over the image (``_anchor_grid``), and the tracker starts as ``_tracker_init`` says."""
    import torch
    from transformers import Sam3VideoModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Sam3VideoModel(toy_config())
        detector = model.detector_model
        prompt_attention = [layer.cross_attn for layer in detector.detr_encoder.layers]
        prompt_attention += [layer.text_cross_attn for layer in detector.detr_decoder.layers]
        prompt_attention.append(detector.mask_decoder.prompt_cross_attn)
        with torch.no_grad():
            for attention in prompt_attention:
                for linear in (attention.v_proj, attention.o_proj):
                    linear.weight.normal_(0.0, linear.in_features**-0.5)
        _edge_attention_prior(detector.detr_decoder)
        _anchor_grid(detector.detr_decoder)
        _tracker_init(model)
    return model
