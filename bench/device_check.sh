#!/usr/bin/env bash
# The one script a GPU run uses: check that everything is there, build recperf with its
# CUDA kernels (sm_90a), run the GPU tests, run the benchmarks on CUDA (headline cases
# first, each case's rows written as it finishes), and collect everything under one folder.
#
#   bench/device_check.sh OUT_DIR        (on the lent machine: bench/device_check.sh "$OUT")
#
# The machine has no network: the build uses --no-build-isolation --no-deps against the
# torch already installed there. A preflight of a few seconds names whatever is missing
# and stops the run there. After it each step is bounded by its limit, and a failing step
# does not stop the next, so one run yields everything it can. The limits add up to
# BUDGET_S (8 minutes) and no step may eat into the last RESERVE_S, which the collect step
# has to itself: it always runs (tests/test_device_check.py checks the arithmetic).
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
BUDGET_S="${BUDGET_S:-480}"
RESERVE_S="${RESERVE_S:-30}"  # the collect step's
step() {  # step NAME LIMIT_S COMMAND...: at most LIMIT_S, never into the collect reserve
    local name=$1 limit=$2; shift 2
    local start=$SECONDS left=$((BUDGET_S - SECONDS))
    [ "$name" = collect ] || left=$((left - RESERVE_S))
    if [ "$left" -le 5 ]; then
        echo "=== $name: skipped, the ${BUDGET_S}s budget is spent"
        status=1
        return 1
    fi
    [ "$limit" -le "$left" ] || limit=$left
    echo "=== $name (limit ${limit}s)"
    timeout -k 5 "$limit" "$@"
    local rc=$?
    echo "=== $name: rc=$rc in $((SECONDS - start))s"
    [ $rc -eq 0 ] || status=1
    return $rc
}

step preflight 15 "$PY" bench/preflight.py || exit 2
{
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv
    "$PY" -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"
    nvcc --version | tail -1
} > "$OUT_DIR/env.txt" 2>&1
cat "$OUT_DIR/env.txt"

step build 150 "$PY" -m pip install --no-build-isolation --no-deps --no-index -e . \
    > "$OUT_DIR/build.log" 2>&1 || tail -40 "$OUT_DIR/build.log"
step info 15 "$PY" -m recperf.cli info >> "$OUT_DIR/env.txt" 2>&1
tail -30 "$OUT_DIR/env.txt"

step gpu-tests 150 "$PY" -m pytest tests/ops/test_fm_gpu.py tests/ops/test_fp8_gpu.py \
    tests/ops/test_linear_norm_gpu.py tests/ops/test_a2a_gpu.py -q -p no:cacheprovider \
    -n 4 --junitxml="$OUT_DIR/gpu_tests.xml" > "$OUT_DIR/gpu_tests.log" 2>&1
tail -25 "$OUT_DIR/gpu_tests.log"

# The headline case of each op family first: a timeout keeps every row written so far.
step bench 120 "$PY" -m recperf.cli bench --device cuda --jsonl "$OUT_DIR/bench_cuda.jsonl" \
    --first "fm_projected fwd+bwd bfloat16 B=4096 n=128 d=128 k=32" \
    --first "linear_norm fp8_rowwise fwd bfloat16 M=8192 K=1024 N=1024" \
    --first "linear_norm bf16 fwd bfloat16 M=8192 K=1024 N=1024" \
    --first "grouped_linear_norm bf16 fwd bfloat16 G=8 M=4096 K=512 N=512" \
    --first "wukong train step" \
    > "$OUT_DIR/bench.log" 2>&1
grep -E "fm_projected (fwd|fwd\+bwd) bfloat16 B=4096|^│ +│ (triton|cuda|eager|compile|torch) " "$OUT_DIR/bench.log" | head -20

step collect 30 "$PY" bench/collect_gpu_results.py --junit "$OUT_DIR/gpu_tests.xml" \
    --bench "$OUT_DIR/bench_cuda.jsonl" --out "$OUT_DIR/results.json" \
    --plot "$OUT_DIR/bench_cuda.png"
exit $status
