#!/usr/bin/env bash
# The CUDA kernels on a GPU, in one call: kernel == reference tests, the kernel benchmark, then
# compute-sanitizer (memcheck, racecheck) over the GPU tests at small sizes.
#
#   device tool:  bash bench/gpu_kernels.sh          (from the repository root; about 5 minutes)
#
# Results go to $OUT (the device tool's folder that comes back) or bench/results/:
#   gpu_tests.txt, bench.txt, kernels-<gpu>.json, sanitizer.txt. Commit the JSON under bench/results/.
# The exit status is non-zero if the tests or the benchmark failed (sanitizer findings: see its log).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEST=${OUT:-bench/results}
mkdir -p "$DEST"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-/tmp/sam3_ros_cache}

nvidia-smi -L
"$PY" -c 'import torch, cuda.bindings; from cuda.bindings import nvrtc
print("torch", torch.__version__, "CUDA", torch.version.cuda, torch.cuda.get_device_name(),
      "cuda-bindings", cuda.bindings.__version__, "NVRTC", nvrtc.nvrtcVersion()[1:])'

# pycocotools is not on the GPU image: run the test files that do not need it.
TESTS="tests/test_kernels_gpu.py tests/test_kernels_nvrtc.py tests/test_reference_ops.py"
"$PY" -m pytest -q -p no:cacheprovider $TESTS 2>&1 | tee "$DEST/gpu_tests.txt"
tests=${PIPESTATUS[0]}

gpu=$("$PY" -c 'import re, torch; print(re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name().lower()).strip("-"))')
"$PY" -m sam3_ros.cli bench kernels --out "$DEST/kernels-$gpu.json" 2>&1 | tee "$DEST/bench.txt"
bench=${PIPESTATUS[0]}

if command -v compute-sanitizer >/dev/null; then
  small='cuda and not 200 and not 700 and not 1000 and not 720 and not 1080'
  for tool in memcheck racecheck; do
    echo "== compute-sanitizer --tool $tool" | tee -a "$DEST/sanitizer.txt"
    timeout 150 compute-sanitizer --tool "$tool" --error-exitcode 9 \
      "$PY" -m pytest -q -p no:cacheprovider tests/test_kernels_gpu.py -k "$small" >>"$DEST/sanitizer.txt" 2>&1
    echo "exit status $?" | tee -a "$DEST/sanitizer.txt"
  done
fi
exit $(( tests != 0 || bench != 0 ))
