// Launchers of the add_norm CUDA kernels (add_norm.cu): a torch-free interface (raw
// pointers, sizes, a stream), so that the kernels compile with plain nvcc and the torch
// binding (add_norm_binding.cpp) with the host compiler.
//
// Rows: G groups of M rows of N features, contiguous (row r = g * M + m). z and dh are fp32;
// bias, norm_weight, norm_bias are fp32 [G, N] (G = 1 for ungrouped problems); residual,
// grad and out are in their DType. The arithmetic is that of csrc/ops/add_norm.cpp.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "fm_launch.h"  // DType

namespace recperf::cuda {

enum class NormKind : int { kLayer = 0, kRms = 1, kNone = 2 };

// What a launch needs, worked out on the host before any kernel runs.
struct AddNormPlan {
  bool fits = false;          // false: the shape is beyond the kernels (see below)
  const char* limit = "";     // what was exceeded, e.g. "bytes of shared memory per block"
  int64_t needed = 0;         // how much of it the shape needs ...
  int64_t available = 0;      // ... and how much the device (or the kernel) allows
  int threads_per_row = 0;    // 32 (a warp a row, N <= 1024) or 256 (a block a row)
  int64_t smem = 0;           // bytes of dynamic shared memory per block
  int64_t chunks = 0;         // backward: blocks per group, each over a run of rows
  int64_t rows_per_chunk = 0; // backward: rows of a chunk
  int64_t partial_rows = 0;   // backward: rows of the column-sum partials per group
};

struct AddNormArgs {
  int64_t G, M, N;
  NormKind norm;
  double eps;
  const float* z;           // [G * M, N]
  const float* bias;        // [G, N] or null
  const void* residual;     // [G * M, N] or null
  DType residual_dtype;
  const float* weight;      // [G, N] or null
  const float* norm_bias;   // [G, N] or null (forward only)
};

cudaError_t plan_add_norm(int64_t G, int64_t M, int64_t N, NormKind norm, bool backward,
                          bool has_weight, AddNormPlan* plan);

// out: [G * M, N] in out_dtype.
cudaError_t launch_add_norm_fwd(const AddNormPlan& plan, const AddNormArgs& args, void* out,
                                DType out_dtype, cudaStream_t stream);

// norm must be kLayer or kRms. grad: [G * M, N] in grad_dtype; dh: [G * M, N] fp32;
// dw_partials: [G, plan.partial_rows, N] fp32 when args.weight is set, else null;
// db_partials: the same shape for kLayer, else null. Every partial row is written (no
// zero-fill needed); the caller sums them over their middle dimension.
cudaError_t launch_add_norm_bwd(const AddNormPlan& plan, const AddNormArgs& args,
                                const void* grad, DType grad_dtype, float* dh,
                                float* dw_partials, float* db_partials, cudaStream_t stream);

}  // namespace recperf::cuda
