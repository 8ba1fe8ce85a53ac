#!/usr/bin/env bash
# The toy model's benchmark: `sam3-ros eval` (lockstep, default settings) on make-bag seeds 0-2, never trained on.
#
#   bash bench/eval_toy.sh MODEL OUT        MODEL: toy (the committed one) or a trained directory
#   SEEDS="3 4 5" bash bench/eval_toy.sh MODEL OUT    other make-bag seeds (training worlds use seeds from 10^6 up): the
#                                                     spread between seeds is as large as a model change often is
#
# Writes OUT/seedN/report.json per seed and OUT/summary.json (per seed and mean: cgF1, pmF1, IL_MCC, HOTA, IDF1).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:?usage: bench/eval_toy.sh MODEL OUT}
OUT=${2:?usage: bench/eval_toy.sh MODEL OUT}
PY=${PYTHON:-.venv/bin/python}
SEEDS=${SEEDS:-0 1 2}
mkdir -p "$OUT"
for seed in $SEEDS; do
    "$PY" -m sam3_ros.cli make-bag "$OUT/bag$seed" --seed "$seed" > /dev/null
    "$PY" -m sam3_ros.cli eval "$OUT/bag$seed" --model "$MODEL" --pacing lockstep --out "$OUT/seed$seed" | tail -n 3
done
"$PY" - "$OUT" $SEEDS <<'PYEOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
keys = ("cgF1", "pmF1", "IL_MCC", "HOTA", "IDF1")
seeds = {f"seed{s}": {k: json.loads((out / f"seed{s}" / "report.json").read_text())[k] for k in keys}
         for s in sys.argv[2:]}
mean = {k: round(sum(v[k] for v in seeds.values()) / len(seeds), 4) for k in keys}
(out / "summary.json").write_text(json.dumps({**seeds, "mean": mean}, indent=1) + "\n")
print("mean", " ".join(f"{k} {v}" for k, v in mean.items()))
PYEOF
