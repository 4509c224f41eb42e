// Argument checks of add_norm / add_norm_backward, shared by the CPU kernels
// (ops/add_norm.cpp) and the CUDA binding (cuda/add_norm_binding.cpp).
//
// z is the fp32 output of a GEMM, [R, N], or [G, M, N] for G independent problems; then
// bias, norm_weight and norm_bias are [G, N] (else [N]) and residual is shaped like z.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <optional>
#include <vector>

#include "checks.h"

namespace recperf {

enum class AddNormKind : int { kLayer = 0, kRms = 1, kNone = 2 };

// The shape of bias / norm_weight / norm_bias: z's leading group dim (if any) and N.
inline std::vector<int64_t> add_norm_param_shape(const at::Tensor& z) {
  if (z.dim() == 3) return {z.size(0), z.size(2)};
  return {z.size(-1)};
}

inline void check_add_norm_param(const std::optional<at::Tensor>& t, const char* name,
                                 const at::Tensor& z, at::IntArrayRef expected) {
  if (!t.has_value()) return;
  TORCH_CHECK_TYPE(at::isFloatingType(t->scalar_type()), name,
                   " must be a floating-point tensor, got ", t->scalar_type());
  TORCH_CHECK_VALUE(t->sizes() == expected, name, " must have shape ", shape_str(expected), " (z has shape ",
                    shape_str(z.sizes()), "), got ", shape_str(t->sizes()));
  RECPERF_CHECK_SAME_DEVICE(*t, name, z, "z");
}

inline AddNormKind check_add_norm_args(const at::Tensor& z,
                                       const std::optional<at::Tensor>& bias,
                                       const std::optional<at::Tensor>& residual,
                                       const std::optional<at::Tensor>& norm_weight,
                                       const std::optional<at::Tensor>& norm_bias,
                                       c10::string_view norm, double eps) {
  TORCH_CHECK_VALUE(z.dim() == 2 || z.dim() == 3,
                    "z must have rank 2 ([R, N]) or 3 ([G, M, N]), got rank ", z.dim(),
                    " (shape ", shape_str(z.sizes()), ")");
  TORCH_CHECK_TYPE(z.scalar_type() == at::kFloat, "z must be float32, got ", z.scalar_type());
  TORCH_CHECK_VALUE(norm == "layer" || norm == "rms" || norm == "none",
                    "norm must be 'layer', 'rms' or 'none', got '", norm, "'");
  TORCH_CHECK_VALUE(std::isfinite(eps) && eps >= 0.0, "eps must be finite and >= 0, got ", eps);
  const std::vector<int64_t> param = add_norm_param_shape(z);
  check_add_norm_param(bias, "bias", z, param);
  check_add_norm_param(norm_weight, "norm_weight", z, param);
  check_add_norm_param(norm_bias, "norm_bias", z, param);
  if (residual.has_value()) {
    TORCH_CHECK_TYPE(at::isFloatingType(residual->scalar_type()),
                     "residual must be a floating-point tensor, got ", residual->scalar_type());
    TORCH_CHECK_VALUE(residual->sizes() == z.sizes(), "residual must have z's shape ",
                      shape_str(z.sizes()), ", got ", shape_str(residual->sizes()));
    RECPERF_CHECK_SAME_DEVICE(*residual, "residual", z, "z");
  }
  if (norm == "rms") {
    TORCH_CHECK_VALUE(!norm_bias.has_value(), "norm='rms' takes no norm_bias, got one of shape ",
                      shape_str(norm_bias->sizes()));
    return AddNormKind::kRms;
  }
  if (norm == "none") {
    TORCH_CHECK_VALUE(!norm_weight.has_value() && !norm_bias.has_value(),
                      "norm='none' takes neither norm_weight nor norm_bias, got ",
                      norm_weight.has_value() ? "norm_weight" : "norm_bias");
    return AddNormKind::kNone;
  }
  return AddNormKind::kLayer;
}

inline void check_add_norm_out_dtype(at::ScalarType out_dtype) {
  TORCH_CHECK_TYPE(is_kernel_float(out_dtype),
                   "out_dtype must be float32, bfloat16 or float16, got ", out_dtype);
}

inline void check_add_norm_grad(const at::Tensor& grad, const at::Tensor& z) {
  TORCH_CHECK_TYPE(at::isFloatingType(grad.scalar_type()),
                   "grad must be a floating-point tensor, got ", grad.scalar_type());
  TORCH_CHECK_VALUE(grad.sizes() == z.sizes(), "grad must have z's shape ", shape_str(z.sizes()), ", got ",
                    shape_str(grad.sizes()));
  RECPERF_CHECK_SAME_DEVICE(grad, "grad", z, "z");
}

// A row operand (residual, grad) as the kernels read it: contiguous, and fp32 unless it is
// already a kernel dtype (bfloat16 / float16 are read as they are).
inline at::Tensor add_norm_row_operand(const at::Tensor& t) {
  return is_kernel_float(t.scalar_type()) ? t.contiguous() : t.to(at::kFloat).contiguous();
}

// A parameter (bias, norm_weight, norm_bias) as the kernels read it: fp32, contiguous.
inline at::Tensor add_norm_param_f32(const std::optional<at::Tensor>& t) {
  return t.has_value() ? t->to(at::kFloat).contiguous() : at::Tensor();
}

}  // namespace recperf
