"""Training of the built-in ``toy`` model in six phases.

1. Vision: the vision encoder (ViT + FPN neck) learns which concept covers each pixel (a training-only
   head, ``auxiliary.ConceptHead``) and where each pixel is (``auxiliary.PositionHead``), then stays frozen.
2. Binding: the text encoder and the DETR encoder learn, per image cell, whether the phrase's objects
   cover it (``auxiliary.MatchHead``), with nothing else competing for them.
3. Detector: text encoder and DETR detector (with presence and mask heads) on single frames of random
   worlds, several phrases per frame (present ones, hard negatives, unknown words), the match signal
   still on.
4. Scoring: the scoring and presence heads alone learn, on the frozen detector, to score each query by the
   quality of its mask, so that a good detection clears the engine's thresholds.
5. Exemplars: the geometry encoder alone learns SAM 3's visual prompts (positive and negative exemplar
   boxes, with or without a phrase) against the trained detector, whose text behaviour it cannot change.
6. Tracker: tracker neck, memory attention, memory encoder and mask decoder on short clips, on the
   frozen vision backbone.

A run is a function of its seed and its step counts. ``minutes`` instead picks the detector and
tracker step counts from the speed of their first steps and records them in ``training.json``, so
that run can be repeated exactly with those counts.

``start_from`` continues a trained model directory instead of fresh weights, and ``phases`` runs only
some phases: retraining the later phases of a model costs minutes, not the whole recipe. The
training-only heads (``auxiliary``) are not saved, so a resumed phase that uses one starts it anew.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..engine.loading import phrase_tokenizer
from ..models.toy import build_toy, build_toy_tokenizer
from .auxiliary import ConceptHead, MatchHead, PositionHead, QueryPositionHead
from .data import detector_sample, exemplar_sample, tracker_clip
from .detector import binding_step, detector_step, exemplar_step, scoring_parameters, scoring_step, vision_step
from .losses import LossWeights
from .tracker import balance_memory_encoder, tracker_step

PHASES = ("vision", "binding", "detector", "scoring", "exemplar", "tracker")
# of what a time budget leaves after the vision and binding phases: the detector needs more steps than the tracker
DETECTOR_SHARE = 0.65
_PROBE_STEPS = 30  # steps timed before a time budget fixes a phase's step count


@dataclass
class TrainConfig:
    seed: int = 0
    # fixed, also with ``minutes``: colour is learned in a few hundred steps, shape (what tells the hard
    # negatives apart) takes thousands, even with ``auxiliary.region_loss``
    vision_steps: int = 3000
    vision_images_per_step: int = 6
    binding_steps: int = 500  # fixed, also with ``minutes``
    detector_steps: int = 3000  # 0 with ``minutes``: chosen from the measured speed
    scoring_steps: int = 600  # fixed, also with ``minutes``
    exemplar_steps: int = 600  # fixed, also with ``minutes``
    tracker_steps: int = 1500
    minutes: float = 0.0  # > 0: a time budget for all phases (detector and tracker step counts follow from it)
    images_per_step: int = 3
    phrases_per_image: int = 3
    clip_length: int = 6
    clip_objects: int = 6
    # share of tracker clips in which an object visible at the start is gone later (0: clips as drawn)
    tracker_vanishing: float = 0.0
    lr: float = 1e-3
    # the detector phase's: at ``lr`` its early localization gains fade and presence degrades
    detector_lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 100
    grad_clip: float = 1.0
    start_from: str = ""  # a trained model directory to continue ("": fresh weights of ``seed``)
    phases: tuple[str, ...] = PHASES  # the phases to run, in PHASES order; the others are skipped

    def __post_init__(self):
        unknown = [p for p in self.phases if p not in PHASES]
        if unknown or not self.phases:
            raise ValueError(f"TrainConfig.phases: {unknown or 'none'} not among {', '.join(PHASES)}")
        if not 0.0 <= self.tracker_vanishing <= 1.0:
            raise ValueError(f"TrainConfig.tracker_vanishing: {self.tracker_vanishing} is outside [0, 1]")
        if self.clip_length < 2:
            raise ValueError(f"TrainConfig.clip_length: {self.clip_length} is under 2 (a start and a frame to track)")


def _schedule(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay to 5%."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))


def _run_phase(
    name: str,
    params: list[torch.nn.Parameter],
    step_fn,
    steps: int,
    budget_s: float,
    config: TrainConfig,
    history: list[dict],
    lr: float = 0.0,
) -> int:
    """Optimize ``params`` with ``step_fn() -> (loss, parts)`` for ``steps`` steps, or, with ``steps`` 0,
    for as many as fit in ``budget_s`` seconds at the speed of the first steps, at peak learning rate ``lr``
    (0: ``config.lr``). Returns the step count (0 for a phase not in ``config.phases``)."""
    if name not in config.phases:
        return 0
    lr = lr or config.lr
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)
    total = steps or _PROBE_STEPS
    bar = tqdm(total=total, desc=name, unit="step", dynamic_ncols=True)
    start = time.monotonic()
    step = 0
    while step < total:
        for group in optimizer.param_groups:
            group["lr"] = lr * _schedule(step, total, config.warmup_steps)
        loss, parts = step_fn()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        history.append({"phase": name, "step": step, "loss": float(loss.detach()), **parts})
        step += 1
        if not steps and step == _PROBE_STEPS:  # a time budget: fix the phase's length now
            per_step = (time.monotonic() - start) / step
            total = max(step + 1, int(budget_s / per_step))
            bar.total = total
            bar.set_description(f"{name} ({total} steps)")
        bar.set_postfix(
            {k: f"{v:.3f}" for k, v in parts.items()} | {"loss": f"{history[-1]['loss']:.3f}"}, refresh=False
        )
        bar.update()
    bar.close()
    return total


def _initial_model(config: TrainConfig):
    """Fresh toy weights of ``config.seed``, or the model in ``config.start_from`` (fp32)."""
    if not config.start_from:
        return build_toy(config.seed)
    from ..engine.loading import load_model

    return load_model(config.start_from).model


def train_toy(out: Path, config: TrainConfig, device: torch.device) -> dict:
    """Train the toy model and save it to ``out`` (transformers format, weights in fp16, tokenizer,
    ``training.json`` with the exact step counts, ``loss.png``). Returns the training record."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = _initial_model(config).to(device).eval()  # eval: no dropout, the engine's exact function
    tokenizer = build_toy_tokenizer()
    tokenize = phrase_tokenizer(tokenizer)
    weights = LossWeights()
    history: list[dict] = []
    started = time.monotonic()
    budget = config.minutes * 60.0

    detector = model.detector_model
    hidden = int(detector.config.detr_encoder_config.hidden_size)
    levels = len(detector.vision_encoder.neck.fpn_layers) - 1
    concept_head = ConceptHead(hidden, levels).to(device)
    position_head = PositionHead(hidden, levels).to(device)
    match_head = MatchHead(hidden).to(device)
    query_head = QueryPositionHead(hidden).to(device)

    def vision_fn():
        samples = [detector_sample(rng, 1) for _ in range(config.vision_images_per_step)]
        return vision_step(model, concept_head, position_head, samples, device)

    def binding_fn():
        samples = [detector_sample(rng, config.phrases_per_image) for _ in range(config.images_per_step)]
        return binding_step(model, tokenize, samples, match_head, device)

    def detector_fn():
        samples = [detector_sample(rng, config.phrases_per_image) for _ in range(config.images_per_step)]
        return detector_step(model, tokenize, samples, weights, device, match_head, query_head=query_head)

    def scoring_fn():
        samples = [detector_sample(rng, config.phrases_per_image) for _ in range(config.images_per_step)]
        return scoring_step(model, tokenize, samples, device)

    def exemplar_fn():
        samples = [exemplar_sample(rng, config.phrases_per_image) for _ in range(config.images_per_step)]
        return exemplar_step(model, tokenize, samples, weights, device)

    def tracker_fn():
        clip = tracker_clip(rng, config.clip_length, config.clip_objects, config.tracker_vanishing)
        return tracker_step(model, clip, device)

    vision_params = list(detector.vision_encoder.parameters())
    vision_heads = [*concept_head.parameters(), *position_head.parameters()]
    _run_phase("vision", vision_params + vision_heads, vision_fn, config.vision_steps, 0.0, config, history)
    for p in vision_params:
        p.requires_grad_(False)
    fusion = [
        *detector.text_encoder.parameters(),
        *detector.text_projection.parameters(),
        *detector.detr_encoder.parameters(),
        *match_head.parameters(),
    ]
    _run_phase("binding", fusion, binding_fn, config.binding_steps, 0.0, config, history)
    detector_params = [p for name, p in detector.named_parameters() if not name.startswith("vision_encoder.")]
    left = budget - (time.monotonic() - started)
    steps_det = _run_phase(
        "detector",
        [*detector_params, *match_head.parameters(), *query_head.parameters()],
        detector_fn,
        0 if budget else config.detector_steps,
        left * DETECTOR_SHARE,
        config,
        history,
        lr=config.detector_lr,
    )
    _run_phase("scoring", scoring_parameters(detector), scoring_fn, config.scoring_steps, 0.0, config, history)
    _run_phase(
        "exemplar",
        list(detector.geometry_encoder.parameters()),
        exemplar_fn,
        config.exemplar_steps,
        0.0,
        config,
        history,
    )
    tracker_params = [*model.tracker_neck.parameters(), *model.tracker_model.parameters()]
    balance = None
    if "tracker" in config.phases and not config.start_from:  # a trained memory encoder keeps its scale
        # a clip of its own stream: the tracker phase's clips stay those of the main stream
        balance = round(
            balance_memory_encoder(
                model, tracker_clip(np.random.default_rng(config.seed + 1), 2, config.clip_objects), device
            ),
            4,
        )
    left = budget - (time.monotonic() - started)
    steps_trk = _run_phase(
        "tracker", tracker_params, tracker_fn, 0 if budget else config.tracker_steps, left, config, history
    )

    out.mkdir(parents=True, exist_ok=True)
    model.to(torch.float16).save_pretrained(out)  # fp16 on disk keeps the file small; loads as fp32
    tokenizer.save_pretrained(out)
    record = {
        "config": {
            **asdict(config),
            "detector_steps": steps_det or config.detector_steps,
            "tracker_steps": steps_trk or config.tracker_steps,
            "minutes": 0.0,
        },
        "seconds": round(time.monotonic() - started, 1),
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "memory_encoder_image_scale": balance,
        "final": {phase: _last_mean(history, phase) for phase in PHASES},
    }
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    plot_losses(history, out / "loss.png")
    return record


def _last_mean(history: list[dict], phase: str, last: int = 100) -> dict[str, float]:
    rows = [h for h in history if h["phase"] == phase][-last:]
    keys = [k for k in rows[0] if k not in ("phase", "step")] if rows else []
    return {k: round(float(np.mean([r[k] for r in rows if k in r])), 4) for k in keys}


def plot_losses(history: list[dict], path: Path) -> None:
    """Loss curves of the phases (running mean over 25 steps), one panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PHASES), figsize=(6 * len(PHASES), 4))
    for ax, phase in zip(axes, PHASES):
        rows = [h for h in history if h["phase"] == phase]
        keys = sorted({k for r in rows for k in r} - {"phase", "step"})
        for key in keys:
            values = np.array([r.get(key, np.nan) for r in rows], float)
            kernel = np.ones(min(25, len(values))) / max(1, min(25, len(values)))
            ax.plot(np.convolve(np.nan_to_num(values), kernel, mode="valid"), label=key, lw=1)
        ax.set_title(f"{phase} ({len(rows)} steps)")
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
