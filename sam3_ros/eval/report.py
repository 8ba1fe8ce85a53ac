"""An evaluation's outputs: report.json, report.md, plots, and the one-screen summary."""

from __future__ import annotations

import json
from pathlib import Path

from .evaluate import EvalRun

METRICS = ("cgF1", "pmF1", "IL_MCC", "HOTA", "IDF1", "id_switches")


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    return str(value) if isinstance(value, int) else f"{value:.{digits}f}"


def summary(run: EvalRun, context: dict) -> str:
    """A short text summary: what ran, accuracy, speed."""
    r = run.report
    lines = [
        f"sam3_ros evaluation: {context.get('bag', '')} ({context.get('pacing', '')}, "
        f"model {context.get('model', '')}, {context.get('transport', 'in-process')})",
        "  " + "  ".join(f"{k} {_fmt(r[k], 3 if k in ('pmF1', 'IL_MCC') else 2)}" for k in METRICS),
        f"  frames {r['frames']}  dropped {r['dropped']}  missed in transport {r['missed_in_transport']}  "
        f"fps {r['fps']:.1f}  latency p50 {r['latency_ms']['p50']:.1f} ms  p99 {r['latency_ms']['p99']:.1f} ms",
        "  per concept (cgF1 / HOTA / IDF1):",
    ]
    for phrase, m in r["per_concept"].items():
        kind = "" if m["positive_frames"] else "  [negative phrase]"
        lines.append(f"    {phrase:<24} {_fmt(m['cgF1']):>7} / {_fmt(m['HOTA']):>6} / {_fmt(m['IDF1']):>6}{kind}")
    if "depth_3d" in r:
        lines.append("  3D error, median (p90), centroid / extent:")
        lines += [f"    {label:<24} {_depth_line(r['depth_3d'][key])}" for key, label in DEPTH_ROWS]
    return "\n".join(lines)


DEPTH_ROWS = (("from_gt_masks", "ground-truth masks"), ("from_model_masks", "model masks"))


def _depth_line(errors: dict) -> str:
    def metres(stats):
        return "n/a" if stats is None else f"{stats['median'] * 100:.2f} cm ({stats['p90'] * 100:.2f} cm)"

    return (
        f"{metres(errors['centroid_error_m'])} / {metres(errors['extent_error_m'])}, {errors['objects']} objects, "
        f"{errors['without_3d']} without 3D"
    )


def write_report(out_dir: str | Path, run: EvalRun, context: dict) -> list[Path]:
    """Write report.json, report.md, latency.png and per_concept.png into ``out_dir``; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "report.json", out_dir / "report.md", out_dir / "latency.png", out_dir / "per_concept.png"]
    paths[0].write_text(json.dumps(run.report, indent=2) + "\n")
    paths[1].write_text(_markdown(run, context))
    _plot_latency(run, paths[2])
    _plot_concepts(run, paths[3])
    return paths


def _markdown(run: EvalRun, context: dict) -> str:
    r = run.report
    rows = "\n".join(f"| {k} | {_fmt(r[k], 3)} |" for k in METRICS)
    concept_rows = "\n".join(
        f"| {p} | {_fmt(m['cgF1'])} | {_fmt(m['pmF1'], 3)} | {_fmt(m['IL_MCC'], 3)} | {_fmt(m['HOTA'])} | "
        f"{_fmt(m['IDF1'])} | {m['id_switches']} | {m['positive_frames']} | {m['gt_objects']} |"
        for p, m in r["per_concept"].items()
    )
    setup = "\n".join(f"- {k}: `{v}`" for k, v in context.items())
    speed = (
        f"| {r['frames']} | {r['frames'] - r['dropped'] - r['missed_in_transport']} | {r['dropped']} | "
        f"{r['missed_in_transport']} | {run.failed} | {r['fps']:.2f} | {r['latency_ms']['p50']:.1f} | "
        f"{r['latency_ms']['p99']:.1f} | {run.wall_s:.1f} |"
    )
    return f"""# sam3_ros evaluation

{setup}

## Accuracy

Predictions count only with score >= 0.5. cgF1 (percent), pmF1 and IL_MCC as the official SAM 3 evaluator
computes them (`sam3/eval/cgf1_eval.py`); HOTA and IDF1 in percent.

| metric | value |
|---|---|
{rows}

| phrase | cgF1 | pmF1 | IL_MCC | HOTA | IDF1 | ID switches | positive frames | GT objects |
|---|---|---|---|---|---|---|---|---|
{concept_rows}

Ignored predictions: {run.ignored_low_score} with score under 0.5, {run.ignored_other_concept} of a phrase not scored.

## Speed

| frames | processed | dropped | missed in transport | rejected images | fps | p50 (ms) | p99 (ms) | wall (s) |
|---|---|---|---|---|---|---|---|---|
{speed}

![latency](latency.png) ![per concept](per_concept.png)
""" + _depth_markdown(r)


def _depth_markdown(r: dict) -> str:
    if "depth_3d" not in r:
        return ""
    rows = "\n".join(f"| {label} | {_depth_line(r['depth_3d'][key])} |" for key, label in DEPTH_ROWS)
    return f"""
## 3D from depth

The 3D step on the bag's depth image, from the ground-truth masks and from the model's masks (each paired with
the ground-truth object it overlaps most, IoU >= 0.5); error against the ground truth's 3D, in the camera
optical frame.

| masks | centroid / extent error, median (p90) |
|---|---|
{rows}
"""


def _plot_latency(run: EvalRun, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3))
    if run.latencies:
        t, ms = zip(*run.latencies)
        ax.plot(t, ms, ".-", lw=0.8, ms=3)
    ax.set_xlabel("time in clip (s)")
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"latency per processed frame ({run.report['dropped']} of {run.report['frames']} dropped)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_concepts(run: EvalRun, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    per = run.report["per_concept"]
    names = list(per)
    fig, ax = plt.subplots(figsize=(max(5, 1.4 * len(names)), 3.5))
    x = np.arange(len(names))
    for k, key in enumerate(("cgF1", "HOTA", "IDF1")):
        ax.bar(x + (k - 1) * 0.27, [per[n][key] or 0.0 for n in names], 0.27, label=key)
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.set_ylabel("percent")
    ax.set_ylim(-5, 105)
    ax.legend()
    ax.set_title("per noun phrase")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
