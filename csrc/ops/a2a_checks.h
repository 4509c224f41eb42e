// Argument checks of permute_chunks, shared by the CPU kernel (ops/a2a.cpp) and the CUDA
// binding (cuda/a2a_binding.cpp), and the chunk plan both kernels run from.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "checks.h"

namespace recperf {

// The non-empty output chunks, in output order: output rows [dst_start[i], dst_start[i] +
// rows[i]) are input rows [src_start[i], src_start[i] + rows[i]). dst_start is strictly
// increasing and starts at 0, so a row's chunk is the last i with dst_start[i] <= row.
struct ChunkPlan {
  std::vector<int64_t> dst_start, src_start, rows;
};

// chunk_sizes / order: int64 [C], on the CPU or on input's device.
inline void check_chunk_vector(const at::Tensor& t, const char* name, const at::Tensor& input) {
  TORCH_CHECK_TYPE(t.scalar_type() == at::kLong, name, " must be int64, got ",
                   t.scalar_type());
  RECPERF_CHECK_RANK(t, name, 1);
  TORCH_CHECK_VALUE(t.device().is_cpu() || t.device() == input.device(), name,
                    " must be on the CPU or on input's device (", input.device(), "), got ",
                    t.device());
}

// Checks everything (ranks, dtypes, chunk sizes >= 0 summing to R, order a permutation of
// 0..C-1) and returns the plan. Reads chunk_sizes and order on the host.
inline ChunkPlan check_permute_chunks(const at::Tensor& input, const at::Tensor& chunk_sizes,
                                      const at::Tensor& order) {
  TORCH_CHECK_VALUE(input.dim() >= 1, "input must have rank >= 1 ([R, ...] rows), got rank 0");
  check_chunk_vector(chunk_sizes, "chunk_sizes", input);
  check_chunk_vector(order, "order", input);
  const int64_t C = chunk_sizes.size(0);
  TORCH_CHECK_VALUE(order.size(0) == C, "order must have one entry per chunk (", C,
                    "), got ", order.size(0));
  const at::Tensor sizes_cpu = chunk_sizes.cpu().contiguous();
  const at::Tensor order_cpu = order.cpu().contiguous();
  const int64_t* sizes = sizes_cpu.const_data_ptr<int64_t>();
  const int64_t* ord = order_cpu.const_data_ptr<int64_t>();
  std::vector<int64_t> first_row(C);
  int64_t total = 0;
  for (int64_t j = 0; j < C; ++j) {
    TORCH_CHECK_VALUE(sizes[j] >= 0, "chunk_sizes must be >= 0, got chunk_sizes[", j,
                      "] = ", sizes[j]);
    first_row[j] = total;
    total += sizes[j];
  }
  TORCH_CHECK_VALUE(total == input.size(0), "chunk_sizes must sum to input's rows (",
                    input.size(0), "), got ", total);
  std::vector<bool> seen(C, false);
  for (int64_t i = 0; i < C; ++i) {
    TORCH_CHECK_VALUE(ord[i] >= 0 && ord[i] < C && !seen[ord[i]],
                      "order must be a permutation of 0..", C - 1, ", got order[", i,
                      "] = ", ord[i], (ord[i] >= 0 && ord[i] < C) ? " (repeated)" : "");
    seen[ord[i]] = true;
  }
  ChunkPlan plan;
  int64_t dst = 0;
  for (int64_t i = 0; i < C; ++i) {
    const int64_t j = ord[i];
    if (sizes[j] == 0) continue;
    plan.dst_start.push_back(dst);
    plan.src_start.push_back(first_row[j]);
    plan.rows.push_back(sizes[j]);
    dst += sizes[j];
  }
  return plan;
}

// Bytes of one row of input ([R, ...] with R > 0).
inline int64_t row_bytes(const at::Tensor& input) {
  return input.size(0) > 0 ? static_cast<int64_t>(input.nbytes()) / input.size(0) : 0;
}

}  // namespace recperf
