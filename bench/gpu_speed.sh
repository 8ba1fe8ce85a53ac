#!/usr/bin/env bash
# Issue #8 on a lent GPU: the single-device speed work, measured on the full-size random-weight model
# (sam3-random: SAM 3's real sizes, bf16, 1008 px) against the transformers reference loop.
#
#   device tool:  bash bench/gpu_speed.sh STAGE        (from the repository root)
#
# One stage per call keeps each under the device tool's 10 minutes:
#   tests     GPU tests: no host sync in step but the plan read, memory stream == inline, compile == eager
#   engine    bench engine, 1280x720, objects 1/4/16/64: per-stage ms (preprocess, encoder, detector,
#             tracker, ...) and fps vs the reference loop; backend eager (16 objects also with compile)
#   e2e       bench e2e in process at 1280x720 and 1920x1080, objects 1/4/16/64, backend eager, with the
#             reference loop on the same frames
#   target    the issue's target case: 1280x720, 8 objects, backend compile, in process + the node over
#             DDS (lockstep and a 30 Hz camera) + the reference loop
#   tensorrt  build-engine bf16 + bench engine with backend tensorrt (only where TensorRT is installed)
#   export    export-onnx of the full-size encoder at 1008 px, checked with onnxruntime on the CPU
#             (needs onnx + onnxruntime; too big for the 23 GB dev box)
#   all       every stage in turn (about 30 minutes: for a machine without the 10-minute limit)
#
# Results go to $OUT (the device tool's folder that comes back) or bench/results/:
#   speed-<gpu>-<stage>-*.json and speed-<gpu>-<stage>.txt. Commit the JSON under bench/results/.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEST=${OUT:-bench/results}
STAGE=${1:-tests}
FRAMES=${FRAMES:-25}
mkdir -p "$DEST"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-/tmp/sam3_ros_cache}
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-$XDG_CACHE_HOME/inductor}  # compile once per machine

nvidia-smi -L
gpu=$("$PY" -c 'import re, torch; print(re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name().lower()).strip("-"))')
log="$DEST/speed-$gpu-$STAGE.txt"
status=0
run() { echo "== $*" | tee -a "$log"; "$@" 2>&1 | tee -a "$log"; status=$(( status || PIPESTATUS[0] )); }
bench_engine() {  # objects backend
  run "$PY" -m sam3_ros.cli bench engine --model sam3-random --device cuda --precision bf16 --size 1280x720 \
    --frames "$FRAMES" --objects "$1" --backend "$2" --json "$DEST/speed-$gpu-engine-$2-$1obj.json"
}
e2e() {  # WxH objects [extra args]
  local size=$1 objects=$2; shift 2
  run "$PY" -m sam3_ros.cli bench e2e --model sam3-random --device cuda --size "$size" --frames "$FRAMES" \
    --objects "$objects" --prompt "object" --rate 30 "$@" --json "$DEST/speed-$gpu-e2e-$size-$objects.json"
}

case $STAGE in
  tests|all)
    run "$PY" -m pytest -q -p no:cacheprovider tests/test_speed_gpu.py ;;&
  engine|all)
    for n in 1 4 16 64; do bench_engine "$n" eager; done
    bench_engine 16 compile ;;&
  e2e|all)
    for size in 1280x720 1920x1080; do
      for n in 1 4 16 64; do e2e "$size" "$n" --backend eager --reference --no-node; done
    done ;;&
  target|all)
    e2e 1280x720 8 --backend compile --reference ;;&
  tensorrt|all)
    if "$PY" -c 'import sys; from sam3_ros.engine.backends.tensorrt_runtime import tensorrt_version as v; sys.exit(v() is None)'; then
      run "$PY" -m sam3_ros.cli build-engine --model sam3-random --precision bf16
      bench_engine 16 tensorrt
    else
      echo "TensorRT is not installed on this machine: stage tensorrt skipped" | tee -a "$log"
    fi ;;&
  export|all)
    run "$PY" -m sam3_ros.cli export-onnx --model sam3-random --out "${TMPDIR:-/tmp}/sam3-random-encoder.onnx" ;;
  tests|engine|e2e|target|tensorrt) ;;
  *) echo "unknown stage $STAGE (tests, engine, e2e, target, tensorrt, export, all)"; exit 2 ;;
esac
exit $status
