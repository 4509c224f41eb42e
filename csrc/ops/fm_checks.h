// Argument checks of the FM kernels, shared by the CPU and CUDA entry points.
#pragma once

#include <optional>

#include "checks.h"

namespace recperf {

// x: [B, n, d] in a kernel float dtype.
inline void check_fm_x(const at::Tensor& x) {
  RECPERF_CHECK_RANK(x, "x", 3);
  RECPERF_CHECK_KERNEL_FLOAT(x, "x");
}

// A parameter (proj, weight, bias) may be x's dtype or float32 (master weights).
inline void check_fm_param_dtype(const at::Tensor& t, const char* name, const at::Tensor& x) {
  TORCH_CHECK_TYPE(t.scalar_type() == x.scalar_type() || t.scalar_type() == at::kFloat,
                   name, " must have x's dtype (", x.scalar_type(), ") or float32, got ",
                   t.scalar_type());
}

// proj: [n, k] on x's device.
inline void check_fm_proj(const at::Tensor& x, const at::Tensor& proj) {
  check_fm_x(x);
  RECPERF_CHECK_RANK(proj, "proj", 2);
  RECPERF_CHECK_SIZE(proj, "proj", 0, x.size(1));
  RECPERF_CHECK_SAME_DEVICE(proj, "proj", x, "x");
  check_fm_param_dtype(proj, "proj", x);
}

// weight / bias of the fused norm: [n * k] on x's device, or absent.
inline void check_fm_norm_param(const std::optional<at::Tensor>& t, const char* name,
                                const at::Tensor& x, int64_t features) {
  if (!t.has_value()) return;
  RECPERF_CHECK_RANK(*t, name, 1);
  RECPERF_CHECK_SIZE(*t, name, 0, features);
  RECPERF_CHECK_SAME_DEVICE(*t, name, x, "x");
  check_fm_param_dtype(*t, name, x);
}

// grad: the shape of the forward output, x's dtype, on x's device.
inline void check_fm_grad(const at::Tensor& grad, const at::Tensor& x,
                          at::IntArrayRef expected) {
  TORCH_CHECK_VALUE(grad.sizes() == expected, "grad must have shape ", shape_str(expected), ", got ",
                    shape_str(grad.sizes()));
  RECPERF_CHECK_SAME_DEVICE(grad, "grad", x, "x");
  TORCH_CHECK_TYPE(grad.scalar_type() == x.scalar_type(), "grad must have x's dtype (",
                   x.scalar_type(), "), got ", grad.scalar_type());
}

inline int64_t fm_pair_count(int64_t n, bool include_self) {
  return include_self ? n * (n + 1) / 2 : n * (n - 1) / 2;
}

}  // namespace recperf
