// add_norm and add_norm_backward: the fused epilogue of linear_norm (bias + residual +
// norm of a GEMM's fp32 output), schemas and CPU kernels. The CUDA kernels are in
// csrc/cuda/add_norm.cu; the callers are recperf/ops/linear_norm_composite.py.
//
// Every row is computed in fp32: h = (z + bias) + residual; layer: y = (h - mean) * rstd *
// w + b, rstd = 1 / sqrt(biased variance + eps), two passes; rms: y = h * r * w,
// r = 1 / sqrt(mean(h^2) + eps); none: y = h. The backward recomputes h. Its column sums
// (dnorm_weight, dnorm_bias) are deterministic: each group's rows are split into a number
// of chunks fixed by the shape, every chunk sums into its own partial row, and the partials
// are added in chunk order, whatever the thread count.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "add_norm_checks.h"
#include "add_norm_epilogue.h"
#include "cpu/add_norm_rows.h"
#include "cpu/row_norm.h"

TORCH_LIBRARY_FRAGMENT(recperf_kernels, m) {
  // z [R, N] or [G, M, N] fp32; bias, norm_weight, norm_bias [N] or [G, N]; residual z's
  // shape. norm in {layer, rms, none}. Returns Norm(z + bias + residual) in out_dtype.
  m.def("add_norm(Tensor z, Tensor? bias, Tensor? residual, Tensor? norm_weight, "
        "Tensor? norm_bias, str norm, float eps, ScalarType out_dtype) -> Tensor");
  // (dh, dnorm_weight, dnorm_bias): dh fp32 shaped like z, the gradient with respect to z
  // (and so to bias and residual, whose reductions are the caller's); dnorm_weight fp32
  // shaped like norm_weight (empty {0} without one); dnorm_bias fp32 [N] or [G, N], the sum
  // of grad over rows, for norm='layer' (empty {0} otherwise).
  m.def("add_norm_backward(Tensor grad, Tensor z, Tensor? bias, Tensor? residual, "
        "Tensor? norm_weight, str norm, float eps) -> (Tensor, Tensor, Tensor)");
}

namespace recperf {
namespace {

// The rows of z: G groups of M rows of N features (G = 1 for a rank-2 z).
struct Rows {
  int64_t G, M, N;
};

Rows rows_of(const at::Tensor& z) {
  if (z.dim() == 3) return {z.size(0), z.size(1), z.size(2)};
  return {1, z.size(0), z.size(1)};
}

const float* ptr_or_null(const at::Tensor& t) {
  return t.defined() ? t.const_data_ptr<float>() : nullptr;
}

// Row r of a [*, n] operand as fp32: the row itself, or its conversion into buf.
template <typename T>
const float* f32_row(const T* base, int64_t r, int64_t n, float* buf) {
  if constexpr (std::is_same_v<T, float>) {
    return base + r * n;
  } else {
    const T* src = base + r * n;
    for (int64_t i = 0; i < n; ++i) buf[i] = static_cast<float>(src[i]);
    return buf;
  }
}

// Calls f(tag) with a value of the C++ type of a kernel dtype.
template <typename F>
void with_kernel_type(at::ScalarType t, F&& f) {
  switch (t) {
    case at::kFloat: f(float()); break;
    case at::kBFloat16: f(at::BFloat16()); break;
    default: f(at::Half()); break;
  }
}

// ---------------------------------------------------------------------------------------
// Forward

template <typename res_t, typename out_t>
void add_norm_rows(const Rows& s, AddNormKind kind, double eps, const float* z,
                   const float* bias, const res_t* res, const float* w, const float* b,
                   out_t* out, int64_t r0, int64_t r1) {
  const int64_t N = s.N;
  std::vector<float> h(N), res_buf(res ? N : 0);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t g = r / s.M;
    const float* res_row = res ? f32_row(res, r, N, res_buf.data()) : nullptr;
    float* y = h.data();
    if constexpr (std::is_same_v<out_t, float>) y = out + r * N;
    cpu::add_row(z + r * N, bias ? bias + g * N : nullptr, res_row, N, h.data());
    if (kind == AddNormKind::kLayer) {
      const cpu::Moments m = cpu::row_moments(h.data(), N, eps);
      cpu::layer_norm_apply(h.data(), N, m, w ? w + g * N : nullptr, b ? b + g * N : nullptr,
                            y);
    } else if (kind == AddNormKind::kRms) {
      cpu::rms_apply(h.data(), N, cpu::rms_rstd(h.data(), N, eps), w ? w + g * N : nullptr, y);
    } else if (y != h.data()) {
      std::copy(h.begin(), h.end(), y);
    }
    if constexpr (!std::is_same_v<out_t, float>) {
      out_t* dst = out + r * N;
      for (int64_t i = 0; i < N; ++i) dst[i] = static_cast<out_t>(h[i]);
    }
  }
}

at::Tensor add_norm_cpu(const at::Tensor& z, const std::optional<at::Tensor>& bias,
                        const std::optional<at::Tensor>& residual,
                        const std::optional<at::Tensor>& norm_weight,
                        const std::optional<at::Tensor>& norm_bias, c10::string_view norm,
                        double eps, at::ScalarType out_dtype) {
  RECPERF_CHECK_DEVICE_TYPE(z, "z", c10::DeviceType::CPU);
  const AddNormEpilogue epilogue(z.contiguous(), bias, residual, norm_weight, norm_bias, norm,
                                 eps, out_dtype);
  const int64_t N = z.size(-1);
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(N, 1));
  at::parallel_for(0, epilogue.row_count(), grain,
                   [&](int64_t r0, int64_t r1) { epilogue.rows(r0, r1); });
  return epilogue.out();
}

// ---------------------------------------------------------------------------------------
// Backward

// Row chunks per group for the column sums: a function of M only (deterministic).
int64_t chunk_rows(int64_t M) {
  const int64_t chunks = std::min<int64_t>(64, std::max<int64_t>(1, (M + 15) / 16));
  return (M + chunks - 1) / chunks;
}

template <typename res_t, typename grad_t>
void add_norm_backward_rows(const Rows& s, AddNormKind kind, double eps, const grad_t* grad,
                            const float* z, const float* bias, const res_t* res,
                            const float* w, float* dh, float* dw_part, float* db_part,
                            int64_t rows_per_chunk, int64_t chunks) {
  const int64_t N = s.N;
  at::parallel_for(0, s.G * chunks, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> h(N), res_buf(res ? N : 0), grad_buf(N);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t g = t / chunks, c = t % chunks;
      const int64_t m0 = c * rows_per_chunk, m1 = std::min(s.M, m0 + rows_per_chunk);
      const float* wg = w ? w + g * N : nullptr;
      float* dw_acc = dw_part ? dw_part + t * N : nullptr;
      float* db_acc = db_part ? db_part + t * N : nullptr;
      for (int64_t m = m0; m < m1; ++m) {
        const int64_t r = g * s.M + m;
        const float* res_row = res ? f32_row(res, r, N, res_buf.data()) : nullptr;
        cpu::add_row(z + r * N, bias ? bias + g * N : nullptr, res_row, N, h.data());
        const float* dy = f32_row(grad, r, N, grad_buf.data());
        if (kind == AddNormKind::kLayer) {
          const cpu::Moments mo = cpu::row_moments(h.data(), N, eps);
          cpu::layer_norm_backward_row(h.data(), dy, N, mo, wg, dh + r * N, dw_acc, db_acc);
        } else {
          const float rr = cpu::rms_rstd(h.data(), N, eps);
          cpu::rms_norm_backward_row(h.data(), dy, N, rr, wg, dh + r * N, dw_acc);
        }
      }
    }
  });
}

// out[g] = sum over c of part[g, c] ([G, chunks, N] -> [G, N]), in chunk order.
void sum_partials(const float* part, int64_t G, int64_t chunks, int64_t N, float* out) {
  at::parallel_for(0, G, 1, [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; ++g) {
      float* dst = out + g * N;
      std::fill(dst, dst + N, 0.f);
      for (int64_t c = 0; c < chunks; ++c) cpu::add_to(dst, part + (g * chunks + c) * N, N);
    }
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> add_norm_backward_cpu(
    const at::Tensor& grad, const at::Tensor& z, const std::optional<at::Tensor>& bias,
    const std::optional<at::Tensor>& residual, const std::optional<at::Tensor>& norm_weight,
    c10::string_view norm, double eps) {
  const AddNormKind kind =
      check_add_norm_args(z, bias, residual, norm_weight, std::nullopt, norm, eps);
  check_add_norm_grad(grad, z);
  RECPERF_CHECK_DEVICE_TYPE(z, "z", c10::DeviceType::CPU);
  const auto f32 = z.options().dtype(at::kFloat);
  const at::Tensor empty = at::empty({0}, f32);
  if (kind == AddNormKind::kNone) {  // distinct empties: outputs must not alias
    return {at::empty(z.sizes(), f32).copy_(grad), empty, at::empty({0}, f32)};
  }
  const std::vector<int64_t> param = add_norm_param_shape(z);
  auto dh = at::empty(z.sizes(), f32);
  auto d_nw = norm_weight ? at::zeros(param, f32) : empty;
  auto d_nb = kind == AddNormKind::kLayer ? at::zeros(param, f32) : at::empty({0}, f32);
  if (z.numel() == 0) return {dh, d_nw, d_nb};
  const Rows s = rows_of(z);
  const int64_t rows_per_chunk = chunk_rows(s.M);
  const int64_t chunks = (s.M + rows_per_chunk - 1) / rows_per_chunk;
  const at::Tensor dw_part = d_nw.numel() ? at::zeros({s.G, chunks, s.N}, f32) : at::Tensor();
  const at::Tensor db_part = d_nb.numel() ? at::zeros({s.G, chunks, s.N}, f32) : at::Tensor();
  const at::Tensor zc = z.contiguous();
  const at::Tensor bias_f = add_norm_param_f32(bias);
  const at::Tensor w = add_norm_param_f32(norm_weight);
  const at::Tensor res = residual ? add_norm_row_operand(*residual) : at::Tensor();
  const at::Tensor g = add_norm_row_operand(grad);
  with_kernel_type(res.defined() ? res.scalar_type() : at::kFloat, [&](auto res_tag) {
    using res_t = decltype(res_tag);
    with_kernel_type(g.scalar_type(), [&](auto grad_tag) {
      using grad_t = decltype(grad_tag);
      add_norm_backward_rows<res_t, grad_t>(
          s, kind, eps, g.const_data_ptr<grad_t>(), zc.const_data_ptr<float>(),
          ptr_or_null(bias_f), res.defined() ? res.const_data_ptr<res_t>() : nullptr,
          ptr_or_null(w), dh.data_ptr<float>(),
          dw_part.defined() ? dw_part.data_ptr<float>() : nullptr,
          db_part.defined() ? db_part.data_ptr<float>() : nullptr, rows_per_chunk, chunks);
    });
  });
  if (dw_part.defined()) {
    sum_partials(dw_part.const_data_ptr<float>(), s.G, chunks, s.N, d_nw.data_ptr<float>());
  }
  if (db_part.defined()) {
    sum_partials(db_part.const_data_ptr<float>(), s.G, chunks, s.N, d_nb.data_ptr<float>());
  }
  return {dh, d_nw, d_nb};
}

}  // namespace

AddNormEpilogue::AddNormEpilogue(const at::Tensor& z, const std::optional<at::Tensor>& bias,
                                 const std::optional<at::Tensor>& residual,
                                 const std::optional<at::Tensor>& norm_weight,
                                 const std::optional<at::Tensor>& norm_bias,
                                 c10::string_view norm, double eps, at::ScalarType out_dtype)
    : kind_(check_add_norm_args(z, bias, residual, norm_weight, norm_bias, norm, eps)),
      eps_(eps) {
  check_add_norm_out_dtype(out_dtype);
  const Rows s = rows_of(z);
  G_ = s.G, M_ = s.M, N_ = s.N;
  z_ = z;
  bias_ = add_norm_param_f32(bias);
  weight_ = add_norm_param_f32(norm_weight);
  norm_bias_ = add_norm_param_f32(norm_bias);
  residual_ = residual ? add_norm_row_operand(*residual) : at::Tensor();
  out_ = at::empty(z.sizes(), z.options().dtype(out_dtype));
}

void AddNormEpilogue::rows(int64_t r0, int64_t r1) const {
  if (r0 >= r1) return;
  TORCH_INTERNAL_ASSERT(z_.is_contiguous(), "AddNormEpilogue: z must be contiguous");
  const Rows s{G_, M_, N_};
  with_kernel_type(residual_.defined() ? residual_.scalar_type() : at::kFloat, [&](auto res_tag) {
    using res_t = decltype(res_tag);
    with_kernel_type(out_.scalar_type(), [&](auto out_tag) {
      using out_t = decltype(out_tag);
      add_norm_rows<res_t, out_t>(
          s, kind_, eps_, z_.const_data_ptr<float>(), ptr_or_null(bias_),
          residual_.defined() ? residual_.const_data_ptr<res_t>() : nullptr,
          ptr_or_null(weight_), ptr_or_null(norm_bias_), out_.data_ptr<out_t>(), r0, r1);
    });
  });
}

TORCH_LIBRARY_IMPL(recperf_kernels, CPU, m) {
  m.impl("add_norm", &add_norm_cpu);
  m.impl("add_norm_backward", &add_norm_backward_cpu);
}

}  // namespace recperf
