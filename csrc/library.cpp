// recperf._C: the compiled op library.
//
// Three namespaces:
//   recperf          the public ops (schemas only here; their device kernels are the
//                    Python dispatcher in recperf.ops, which picks a backend per call,
//                    and on the CPU a compiled fast path in front of it)
//   recperf_dispatch the Python dispatcher of the public ops that have a CPU fast path,
//                    which calls it when the fast path does not apply
//                    (csrc/ops/fast_path.h); not for direct use
//   recperf_kernels  the compiled backends: one op per kernel, a CPU implementation in
//                    csrc/ops/*.cpp and a CUDA one in csrc/cuda/*_binding.cpp
// Each op family adds its schemas with TORCH_LIBRARY_FRAGMENT in its own file.
#include <torch/library.h>

#include <string>

#include "ops/cpu/small_gemm.h"

#ifndef RECPERF_WITH_CUDA  // set by setup.py and CMakeLists.txt
#define RECPERF_WITH_CUDA 0
#endif

TORCH_LIBRARY(recperf, m) {}

TORCH_LIBRARY(recperf_dispatch, m) {}

TORCH_LIBRARY(recperf_kernels, m) {
  // What the build can tell about itself, for `recperf info`.
  m.def("cpu_isa() -> str", [] { return std::string(recperf::cpu::gemm_isa()); });
  m.def("built_with_cuda() -> bool", [] { return RECPERF_WITH_CUDA != 0; });
}
