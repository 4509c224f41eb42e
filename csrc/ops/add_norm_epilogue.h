// The forward of add_norm as an epilogue a GEMM can run on its own row blocks: built once
// per call (checks, fp32 parameters, the output), then rows(r0, r1) turns rows r0..r1 of
// z (G*M rows of N, flattened over groups) into the output while they are still in cache.
// add_norm_cpu (add_norm.cpp) is this over all rows; linear_norm's CPU composite
// (linear_norm_composite.cpp) calls it after each row block of its GEMM.
#pragma once

#include <ATen/ATen.h>

#include <optional>

#include "add_norm_checks.h"

namespace recperf {

class AddNormEpilogue {
 public:
  // z fp32 [R, N] or [G, M, N]; it need not hold its values yet, only when rows() reads
  // them. Checks the arguments as add_norm does.
  AddNormEpilogue(const at::Tensor& z, const std::optional<at::Tensor>& bias,
                  const std::optional<at::Tensor>& residual,
                  const std::optional<at::Tensor>& norm_weight,
                  const std::optional<at::Tensor>& norm_bias, c10::string_view norm, double eps,
                  at::ScalarType out_dtype);

  // Rows [r0, r1) of z into out; z must be contiguous. Call from any thread.
  void rows(int64_t r0, int64_t r1) const;

  const at::Tensor& out() const { return out_; }
  int64_t row_count() const { return G_ * M_; }

 private:
  at::Tensor z_, bias_, residual_, weight_, norm_bias_, out_;
  AddNormKind kind_;
  double eps_;
  int64_t G_, M_, N_;
};

}  // namespace recperf
