#!/usr/bin/env bash
# The one script a GPU run uses: build recperf with its CUDA kernels (sm_90a), run the
# GPU tests, run the benchmarks on CUDA, and collect everything under one folder.
#
#   bench/device_check.sh OUT_DIR        (on the lent machine: bench/device_check.sh "$OUT")
#
# The machine has no network: the build uses --no-build-isolation --no-deps against the
# torch already installed there. Each step is bounded by a timeout and a failing step
# does not stop the next, so one run yields everything it can. Budget: under 8 minutes.
set -uo pipefail

OUT_DIR="${1:?usage: bench/device_check.sh OUT_DIR}"
mkdir -p "$OUT_DIR"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 MAX_JOBS="${MAX_JOBS:-16}" TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0a}"
export RECPERF_FORCE_CUDA=1 RECPERF_COMMIT="${RECPERF_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}"
export TRITON_CACHE_DIR="${TRITON_CACHE_DIR:-/tmp/recperf-triton-cache}"
unset TRITON_INTERPRET
PY="${PYTHON:-python3}"
status=0
# The whole script stops within BUDGET_S: each step gets its own limit or what is left.
BUDGET_S="${BUDGET_S:-470}"
step() {  # step NAME TIMEOUT_S COMMAND...
    local name=$1 limit=$2; shift 2
    local start=$SECONDS left=$((BUDGET_S - SECONDS))
    if [ "$left" -le 5 ]; then
        echo "=== $name: skipped, the ${BUDGET_S}s budget is spent"
        status=1
        return 1
    fi
    [ "$limit" -le "$left" ] || limit=$left
    echo "=== $name (limit ${limit}s)"
    timeout "$limit" "$@"
    local rc=$?
    echo "=== $name: rc=$rc in $((SECONDS - start))s"
    [ $rc -eq 0 ] || status=1
    return $rc
}

{
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv
    "$PY" -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"
    nvcc --version | tail -1
} > "$OUT_DIR/env.txt" 2>&1
cat "$OUT_DIR/env.txt"

step build 240 "$PY" -m pip install --no-build-isolation --no-deps --no-index -e . \
    > "$OUT_DIR/build.log" 2>&1 || tail -40 "$OUT_DIR/build.log"
step info 60 "$PY" -m recperf.cli info >> "$OUT_DIR/env.txt" 2>&1
tail -30 "$OUT_DIR/env.txt"

step gpu-tests 260 "$PY" -m pytest tests/ops/test_fm_gpu.py tests/ops/test_fp8_gpu.py \
    tests/ops/test_linear_norm_gpu.py tests/ops/test_a2a_gpu.py -q -p no:cacheprovider \
    -n 4 --junitxml="$OUT_DIR/gpu_tests.xml" > "$OUT_DIR/gpu_tests.log" 2>&1
tail -25 "$OUT_DIR/gpu_tests.log"

step bench 200 "$PY" -m recperf.cli bench --device cuda --json "$OUT_DIR/bench_cuda.json" \
    --plot "$OUT_DIR/bench_cuda.png" \
    > "$OUT_DIR/bench.log" 2>&1
grep -E "fm_projected (fwd|fwd\+bwd) bfloat16 B=4096|^│ +│ (triton|cuda|eager|compile|torch) " "$OUT_DIR/bench.log" | head -20

step collect 60 "$PY" bench/collect_gpu_results.py --junit "$OUT_DIR/gpu_tests.xml" \
    --bench "$OUT_DIR/bench_cuda.json" --out "$OUT_DIR/results.json"
exit $status
