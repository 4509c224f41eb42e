#!/usr/bin/env bash
# CI compile check of the CUDA sources, runnable on a machine without a GPU:
#   (a) every `cuda` source of csrc/sources.txt (torch-free .cu) compiles with plain nvcc to
#       real sm_90a code; ptxas' register / spill report goes to $LOG_DIR/ptxas.log, and a
#       one-line-per-kernel summary is printed;
#   (b) every `cuda-binding` source passes g++ -fsyntax-only against the installed torch's
#       headers (a CPU build of torch works: the one generated header it lacks,
#       c10/cuda/impl/cuda_cmake_macros.h, is shimmed by an empty file).
# Environment: CUDA_HOME (else nvcc from PATH), PYTHON (default: python, with torch),
# CXX (default: g++), LOG_DIR (default: build/check_cuda).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [[ -n "${CUDA_HOME:-}" && -x "${CUDA_HOME}/bin/nvcc" ]]; then
  NVCC="${CUDA_HOME}/bin/nvcc"
elif command -v nvcc >/dev/null 2>&1; then
  NVCC="$(command -v nvcc)"
else
  echo "check_cuda_sources: nvcc not found (set CUDA_HOME or put nvcc on PATH)" >&2
  exit 2
fi
# The CUDA headers for g++: $CUDA_HOME/include, else where nvcc itself looks (nvcc may be
# a wrapper script outside the toolkit).
if [[ -n "${CUDA_HOME:-}" && -f "${CUDA_HOME}/include/cuda_runtime.h" ]]; then
  CUDA_INCLUDE="${CUDA_HOME}/include"
else
  CUDA_INCLUDE="$("$NVCC" --dryrun -x cu -c /dev/null -o /dev/null 2>&1 |
    sed -n -E 's/^#\$ INCLUDES="-I([^"]*)".*/\1/p' | head -n 1 | sed -E 's/ +$//')"
fi
if [[ ! -f "$CUDA_INCLUDE/cuda_runtime.h" ]]; then
  echo "check_cuda_sources: cuda_runtime.h not found (looked in '$CUDA_INCLUDE')" >&2
  exit 2
fi
PYTHON="${PYTHON:-python}"
CXX="${CXX:-g++}"
LOG_DIR="${LOG_DIR:-$ROOT/build/check_cuda}"
mkdir -p "$LOG_DIR"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# `kind path` lines of csrc/sources.txt, comments stripped.
sources_of_kind() {
  sed -e 's/#.*//' csrc/sources.txt | awk -v kind="$1" 'NF == 2 && $1 == kind { print $2 }'
}

failures=0

# (a) nvcc: the flags setup.py uses, plus the defines torch's build adds to .cu files.
NVCC_FLAGS=(-std=c++17 -O3 -lineinfo --expt-relaxed-constexpr
  -gencode=arch=compute_90a,code=sm_90a
  -D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__
  -D__CUDA_NO_BFLOAT16_CONVERSIONS__ -D__CUDA_NO_HALF2_OPERATORS__
  -Icsrc -Xptxas -v)
PTXAS_LOG="$LOG_DIR/ptxas.log"
: >"$PTXAS_LOG"
echo "nvcc: $("$NVCC" --version | tail -n 2 | head -n 1)"
mapfile -t cuda_sources < <(sources_of_kind cuda)
for src in "${cuda_sources[@]}"; do
  obj="$TMP/$(basename "$src").o"
  log="$TMP/$(basename "$src").log"
  if "$NVCC" "${NVCC_FLAGS[@]}" -c "$src" -o "$obj" >"$log" 2>&1; then
    if grep -q "for 'sm_90a'" "$log" && [[ -s "$obj" ]]; then
      echo "ok    nvcc  $src"
    else
      echo "FAIL  nvcc  $src: no sm_90a code was generated" >&2
      failures=$((failures + 1))
    fi
  else
    echo "FAIL  nvcc  $src" >&2
    cat "$log" >&2
    failures=$((failures + 1))
  fi
  { echo "### $src"; cat "$log"; } >>"$PTXAS_LOG"
done

# Per kernel: registers, spill stores / loads, stack (from ptxas -v).
if [[ ${#cuda_sources[@]} -gt 0 ]]; then
  echo "ptxas (sm_90a): regs  spill-st  spill-ld  stack  kernel   [full log: $PTXAS_LOG]"
  demangle=(cat)
  command -v c++filt >/dev/null 2>&1 && demangle=(c++filt)
  awk '
    /Function properties for/ { name = $NF; stack = st = ld = 0 }
    /bytes stack frame/ { stack = $1; st = $5; ld = $9 }
    /Used [0-9]+ registers/ {
      for (i = 1; i < NF; i++) if ($(i + 1) == "registers,") regs = $i
      printf "  %4s  %8s  %8s  %5s  %s\n", regs, st, ld, stack, name
    }
  ' "$PTXAS_LOG" | "${demangle[@]}" |
    sed -E -e 's/recperf::cuda::detail::(\(anonymous namespace\)::)?//' -e 's/^(.*[^ ])\(.*\)$/\1/'
fi

# (b) g++ -fsyntax-only of the torch bindings.
mapfile -t binding_sources < <(sources_of_kind cuda-binding)
if [[ ${#binding_sources[@]} -gt 0 ]]; then
  mapfile -t torch_includes < <("$PYTHON" -c \
    "import torch.utils.cpp_extension as c; print('\n'.join(c.include_paths()))")
  shim="$TMP/shim"
  mkdir -p "$shim/c10/cuda/impl"
  : >"$shim/c10/cuda/impl/cuda_cmake_macros.h"
  CXX_FLAGS=(-std=c++20 -fsyntax-only -Wall -Wno-unused-function -Icsrc)
  for inc in "${torch_includes[@]}"; do CXX_FLAGS+=(-isystem "$inc"); done
  # The shim comes after torch's own include paths, so a CUDA build's real header wins.
  CXX_FLAGS+=(-isystem "$shim" -isystem "$CUDA_INCLUDE")
  for src in "${binding_sources[@]}"; do
    log="$TMP/$(basename "$src").log"
    if "$CXX" "${CXX_FLAGS[@]}" "$src" >"$log" 2>&1; then
      echo "ok    $CXX   $src"
      [[ -s "$log" ]] && cat "$log"
    else
      echo "FAIL  $CXX   $src" >&2
      cat "$log" >&2
      failures=$((failures + 1))
    fi
  done
fi

if [[ $failures -gt 0 ]]; then
  echo "check_cuda_sources: $failures failure(s)" >&2
  exit 1
fi
echo "check_cuda_sources: ${#cuda_sources[@]} cuda and" \
  "${#binding_sources[@]} cuda-binding source(s) ok"
