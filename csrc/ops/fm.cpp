// FM interactions: schemas of the public ops and of their compiled kernels, and the CPU
// kernels. Shapes: x [B, n, d], proj [n, k]; every kernel runs one example per step of
// a parallel loop over the batch, with the example's operands in L1/L2 and fp32
// accumulation whatever the input dtype.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include "cpu/add_norm_rows.h"
#include "cpu/gram_product.h"
#include "cpu/row_norm.h"
#include "cpu/small_gemm.h"
#include "fm_checks.h"

namespace recperf {
namespace {

using cpu::gemm_packed;
using cpu::layer_norm_apply;
using cpu::row_moments;
using cpu::pack_b;
using cpu::packed_b_size;
using cpu::PrefetchStream;

// Dispatch over the three kernel dtypes; float64 is served by the torch backend.
#define RECPERF_DISPATCH_KERNEL_FLOAT(dtype, name, ...)                          \
  [&] {                                                                          \
    switch (dtype) {                                                             \
      case at::kFloat: { using scalar_t = float; return __VA_ARGS__(); }         \
      case at::kBFloat16: { using scalar_t = at::BFloat16; return __VA_ARGS__(); } \
      case at::kHalf: { using scalar_t = at::Half; return __VA_ARGS__(); }       \
      default: TORCH_CHECK_TYPE(false, name, ": unsupported dtype ", dtype);     \
    }                                                                            \
  }()

// A rows x cols matrix of a strided tensor, as fp32 row-major in dst.
template <typename scalar_t>
void load_matrix(const scalar_t* src, int64_t rows, int64_t cols, int64_t rs, int64_t cs,
                 float* dst) {
  for (int64_t r = 0; r < rows; ++r) {
    const scalar_t* row = src + r * rs;
    float* out = dst + r * cols;
    if (cs == 1) {
      for (int64_t c = 0; c < cols; ++c) out[c] = static_cast<float>(row[c]);
    } else {
      for (int64_t c = 0; c < cols; ++c) out[c] = static_cast<float>(row[c * cs]);
    }
  }
}

template <typename scalar_t>
void store_row(const float* src, int64_t count, scalar_t* dst) {
  for (int64_t i = 0; i < count; ++i) dst[i] = static_cast<scalar_t>(src[i]);
}

// Example b of x [B, n, d] as fp32 row-major n x d: a pointer into x when it already is
// one, else a copy in buf. In the first case `next` is set to the next example, for the
// caller's first GEMM to prefetch: the GEMMs read an example column by column, a pattern
// the hardware prefetcher follows poorly (+20% at B=2048; spread over the GEMM to L2
// rather than to L1 in one burst, another 8%, in-process A/B).
template <typename scalar_t>
const float* example_f32(const at::Tensor& x, int64_t b, float* buf,
                         cpu::PrefetchStream& next) {
  const int64_t n = x.size(1), d = x.size(2);
  const scalar_t* base = x.const_data_ptr<scalar_t>() + b * x.stride(0);
  next = {};
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (x.stride(2) == 1 && x.stride(1) == d) {
      if (b + 1 < x.size(0)) next = {base + x.stride(0), n * d * int64_t{sizeof(float)}};
      return base;
    }
  }
  load_matrix(base, n, d, x.stride(1), x.stride(2), buf);
  return buf;
}

// fp32 contiguous copy of a parameter (proj, weight, bias); small, made once per call.
at::Tensor f32(const at::Tensor& t) { return t.to(at::kFloat).contiguous(); }

// Per-thread partial sums of a parameter gradient, reduced after the batch loop.
struct ThreadPartials {
  explicit ThreadPartials(int64_t size)
      : size_(size), data_(static_cast<size_t>(at::get_num_threads() * size), 0.f) {}
  float* local() { return data_.data() + at::get_thread_num() * size_; }
  at::Tensor reduce(at::ScalarType dtype) const {
    auto sum = at::zeros({size_}, at::kFloat);
    float* s = sum.data_ptr<float>();
    for (size_t t = 0; t < data_.size() / size_; ++t)
      for (int64_t i = 0; i < size_; ++i) s[i] += data_[t * size_ + i];
    return sum.to(dtype);
  }

 private:
  int64_t size_;
  std::vector<float> data_;
};

// ---------------------------------------------------------------------------------------
// fm_pairwise: out[b, p] = <x_i, x_j> over the pairs of triu_indices(n, n, offset).

template <typename scalar_t>
void pairwise_fwd(const at::Tensor& x, bool include_self, at::Tensor& out) {
  const int64_t B = x.size(0), n = x.size(1), d = x.size(2);
  const int64_t offset = include_self ? 0 : 1;
  scalar_t* out_base = out.data_ptr<scalar_t>();
  const int64_t pairs = out.size(1);
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> xbuf(n * d), xt_panels(packed_b_size(d, n)), gram(n * n);
    std::vector<float> row(pairs);
    for (int64_t b = b0; b < b1; ++b) {
      PrefetchStream next;
      const float* xb = example_f32<scalar_t>(x, b, xbuf.data(), next);
      pack_b(xb, 1, d, d, n, xt_panels.data());  // x^T as the B operand
      gemm_packed(n, n, d, xb, d, 1, xt_panels.data(), gram.data(), n, false, true, &next);
      int64_t p = 0;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = i + offset; j < n; ++j) row[p++] = gram[i * n + j];
      store_row(row.data(), pairs, out_base + b * pairs);
    }
  });
}

// grad_x = S . x with S the symmetric n x n matrix of the pair gradients (a self pair
// contributes 2 g x_i, so its diagonal entry is 2 g).
template <typename scalar_t>
void pairwise_bwd(const at::Tensor& grad, const at::Tensor& x, bool include_self,
                  at::Tensor& grad_x) {
  const int64_t B = x.size(0), n = x.size(1), d = x.size(2);
  const int64_t offset = include_self ? 0 : 1;
  const int64_t pairs = grad.size(1);
  scalar_t* gx_base = grad_x.data_ptr<scalar_t>();
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> xbuf(n * d), x_panels(packed_b_size(n, d)), sym(n * n), g(pairs);
    std::vector<float> gx(n * d);
    for (int64_t b = b0; b < b1; ++b) {
      PrefetchStream next;
      const float* xb = example_f32<scalar_t>(x, b, xbuf.data(), next);
      load_matrix(grad.const_data_ptr<scalar_t>() + b * grad.stride(0), 1, pairs, 0,
                  grad.stride(1), g.data());
      std::fill(sym.begin(), sym.end(), 0.f);
      int64_t p = 0;
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t j = i + offset; j < n; ++j, ++p) {
          if (i == j) {
            sym[i * n + i] = 2.f * g[p];
          } else {
            sym[i * n + j] = g[p];
            sym[j * n + i] = g[p];
          }
        }
      }
      pack_b(xb, d, 1, n, d, x_panels.data());
      gemm_packed(n, d, n, sym.data(), n, 1, x_panels.data(), gx.data(), d, false, false,
                  &next);
      store_row(gx.data(), n * d, gx_base + b * n * d);
    }
  });
}

// ---------------------------------------------------------------------------------------
// fm_projected: F = x . (x^T . P), never forming x . x^T.

// Workspace of one thread for the projected kernels. T and gT sit side by side in
// tg = [T | gT] (d x 2k), and G beside P in ga = [G | P] (n x 2k), so that
// grad_x = G . T^T + P . gT^T is one GEMM of depth 2k, ga . tg^T (the backward's only
// GEMM whose output is as wide as d).
// With allow_gram, the forward takes the Gram route, (x . x^T) . P, where it does fewer
// multiply-adds: fm_projected_norm's forward. fm_projected keeps its contract of never
// forming x . x^T (Wukong's point: O(n d k) where n grows), whatever the shape.
struct ProjectedScratch {
  std::vector<float> xbuf, tg, panels, f, g, ga, gx, gram;
  // p (n x k) is given for the backward kernels, which need ga and gx.
  ProjectedScratch(int64_t n, int64_t d, int64_t k, const float* p = nullptr,
                   bool allow_gram = false)
      : xbuf(n * d), tg(d * 2 * k), panels(panel_size(n, d, k)), f(n * k), g(n * k),
        ga(p ? n * 2 * k : 0), gx(p ? n * d : 0),
        gram(allow_gram && cpu::gram_route_pays(n, d, k) ? cpu::gram_workspace_size(n, d)
                                                         : 0) {
    for (int64_t r = 0; p && r < n; ++r) std::copy(p + r * k, p + (r + 1) * k, &ga[r * 2 * k + k]);
  }
  // One panel buffer serves every packed operand (n x k, d x k, 2k x d).
  static int64_t panel_size(int64_t n, int64_t d, int64_t k) {
    const int64_t m = std::max({n, d, 2 * k});
    return packed_b_size(m, m);
  }
};

// F = x . x^T . P (n x k) for one example, prefetching `next`: through the Gram matrix
// when the scratch has its workspace, else T = x^T . P (d x k) and then F = x . T. T goes
// straight into the panels of the second GEMM's B operand, and also into tg when keep_t
// (the backward needs it).
void projected_forward_example(const float* xb, const float* p_panels, int64_t n, int64_t d,
                               int64_t k, ProjectedScratch& s, float* f,
                               PrefetchStream& next, bool keep_t = false) {
  if (!keep_t && !s.gram.empty()) {
    cpu::gram_product(n, d, k, xb, p_panels, s.gram.data(), f, k, &next);
    return;
  }
  if (keep_t) {
    const int64_t ld = 2 * k;
    gemm_packed(d, k, n, xb, 1, d, p_panels, s.tg.data(), ld, false, false, &next);
    pack_b(s.tg.data(), ld, 1, d, k, s.panels.data());
  } else {
    cpu::gemm_packed_to_panels(d, k, n, xb, 1, d, p_panels, s.panels.data(), &next);
  }
  gemm_packed(n, k, d, xb, d, 1, s.panels.data(), f, k, false);
}

// Given G = dL/dF (n x k) in s.g and T in tg: grad_x = G.T^T + P.(x^T.G)^T into s.gx,
// and grad_P += x . (x^T . G) into gp.
void projected_backward_example(const float* xb, int64_t n, int64_t d, int64_t k,
                                ProjectedScratch& s, float* gp) {
  const int64_t ld = 2 * k;
  float* gt = s.tg.data() + k;
  // gT = x^T . G  (d x k), beside T
  pack_b(s.g.data(), k, 1, n, k, s.panels.data());
  gemm_packed(d, k, n, xb, 1, d, s.panels.data(), gt, ld, false);
  // grad_x = [G | P] . [T | gT]^T  (n x d)
  for (int64_t r = 0; r < n; ++r) std::copy(&s.g[r * k], &s.g[(r + 1) * k], &s.ga[r * ld]);
  pack_b(s.tg.data(), 1, ld, ld, d, s.panels.data());
  gemm_packed(n, d, ld, s.ga.data(), ld, 1, s.panels.data(), s.gx.data(), d, false);
  // grad_P += x . gT  (n x k)
  pack_b(gt, ld, 1, d, k, s.panels.data());
  gemm_packed(n, k, d, xb, d, 1, s.panels.data(), gp, k, true);
}

template <typename scalar_t>
void projected_fwd(const at::Tensor& x, const at::Tensor& proj, at::Tensor& out) {
  const int64_t B = x.size(0), n = x.size(1), d = x.size(2), k = proj.size(1);
  const at::Tensor p = f32(proj);
  std::vector<float> p_panels(packed_b_size(n, k));
  pack_b(p.const_data_ptr<float>(), k, 1, n, k, p_panels.data());
  scalar_t* out_base = out.data_ptr<scalar_t>();
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    ProjectedScratch s(n, d, k);
    for (int64_t b = b0; b < b1; ++b) {
      PrefetchStream next;
      const float* xb = example_f32<scalar_t>(x, b, s.xbuf.data(), next);
      if constexpr (std::is_same_v<scalar_t, float>) {
        projected_forward_example(xb, p_panels.data(), n, d, k, s, out_base + b * n * k, next);
      } else {
        projected_forward_example(xb, p_panels.data(), n, d, k, s, s.f.data(), next);
        store_row(s.f.data(), n * k, out_base + b * n * k);
      }
    }
  });
}

template <typename scalar_t>
void projected_bwd(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& proj,
                   at::Tensor& grad_x, at::Tensor& grad_proj) {
  const int64_t B = x.size(0), n = x.size(1), d = x.size(2), k = proj.size(1);
  const at::Tensor p = f32(proj);
  std::vector<float> p_panels(packed_b_size(n, k));
  pack_b(p.const_data_ptr<float>(), k, 1, n, k, p_panels.data());
  ThreadPartials gp(n * k);
  scalar_t* gx_base = grad_x.data_ptr<scalar_t>();
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    ProjectedScratch s(n, d, k, p.const_data_ptr<float>());
    float* gp_local = gp.local();
    for (int64_t b = b0; b < b1; ++b) {
      PrefetchStream next;
      const float* xb = example_f32<scalar_t>(x, b, s.xbuf.data(), next);
      load_matrix(grad.const_data_ptr<scalar_t>() + b * grad.stride(0), n, k, grad.stride(1),
                  grad.stride(2), s.g.data());
      gemm_packed(d, k, n, xb, 1, d, p_panels.data(), s.tg.data(), 2 * k, false, false,
                  &next);  // T
      projected_backward_example(xb, n, d, k, s, gp_local);
      store_row(s.gx.data(), n * d, gx_base + b * n * d);
    }
  });
  grad_proj.copy_(gp.reduce(at::kFloat).view({n, k}));
}

// ---------------------------------------------------------------------------------------
// fm_projected_norm: y = layer_norm(flatten(F)) * weight + bias over the n*k features.

template <typename scalar_t>
void projected_norm_fwd(const at::Tensor& x, const at::Tensor& proj,
                        const std::optional<at::Tensor>& weight,
                        const std::optional<at::Tensor>& bias, double eps, at::Tensor& out) {
  const int64_t B = x.size(0), n = x.size(1), d = x.size(2), k = proj.size(1);
  const int64_t features = n * k;
  const at::Tensor p = f32(proj);
  const at::Tensor w = weight ? f32(*weight) : at::Tensor();
  const at::Tensor bs = bias ? f32(*bias) : at::Tensor();
  const float* w_ptr = w.defined() ? w.const_data_ptr<float>() : nullptr;
  const float* b_ptr = bs.defined() ? bs.const_data_ptr<float>() : nullptr;
  std::vector<float> p_panels(packed_b_size(n, k));
  pack_b(p.const_data_ptr<float>(), k, 1, n, k, p_panels.data());
  scalar_t* out_base = out.data_ptr<scalar_t>();
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    ProjectedScratch s(n, d, k, nullptr, /*allow_gram=*/true);
    for (int64_t b = b0; b < b1; ++b) {
      PrefetchStream next;
      const float* xb = example_f32<scalar_t>(x, b, s.xbuf.data(), next);
      projected_forward_example(xb, p_panels.data(), n, d, k, s, s.f.data(), next);
      const cpu::Moments m = row_moments(s.f.data(), features, eps);
      if constexpr (std::is_same_v<scalar_t, float>) {
        // Streamed: the output is written once and read by the next op, not by this one.
        layer_norm_apply(s.f.data(), features, m, w_ptr, b_ptr, out_base + b * features,
                         /*stream_out=*/true);
      } else {
        layer_norm_apply(s.f.data(), features, m, w_ptr, b_ptr, s.f.data());
        store_row(s.f.data(), features, out_base + b * features);
      }
    }
  });
}

template <typename scalar_t>
void projected_norm_bwd(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& proj,
                        const std::optional<at::Tensor>& weight, double eps,
                        bool bias_present, at::Tensor& grad_x, at::Tensor& grad_proj,
                        at::Tensor& grad_weight, at::Tensor& grad_bias) {
  const int64_t B = x.size(0), n = x.size(1), d = x.size(2), k = proj.size(1);
  const int64_t features = n * k;
  const at::Tensor p = f32(proj);
  const at::Tensor w = weight ? f32(*weight) : at::Tensor();
  const float* w_ptr = w.defined() ? w.const_data_ptr<float>() : nullptr;
  std::vector<float> p_panels(packed_b_size(n, k));
  pack_b(p.const_data_ptr<float>(), k, 1, n, k, p_panels.data());
  ThreadPartials gp(features), gw(features), gb(features);
  scalar_t* gx_base = grad_x.data_ptr<scalar_t>();
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    ProjectedScratch s(n, d, k, p.const_data_ptr<float>());
    std::vector<float> dy(features);
    float* gp_local = gp.local();
    float* gw_local = gw.local();
    float* gb_local = gb.local();
    for (int64_t b = b0; b < b1; ++b) {
      PrefetchStream next;
      const float* xb = example_f32<scalar_t>(x, b, s.xbuf.data(), next);
      projected_forward_example(xb, p_panels.data(), n, d, k, s, s.f.data(), next,
                                /*keep_t=*/true);
      const cpu::Moments norm = row_moments(s.f.data(), features, eps);
      load_matrix(grad.const_data_ptr<scalar_t>() + b * grad.stride(0), 1, features, 0,
                  grad.stride(1), dy.data());
      // Layer-norm backward into G = dL/dF (vectorized; the row is n * k long).
      cpu::layer_norm_backward_row(s.f.data(), dy.data(), features, norm, w_ptr, s.g.data(),
                                   gw_local, gb_local);
      // tg still holds T = x^T . P from the forward recomputation.
      projected_backward_example(xb, n, d, k, s, gp_local);
      store_row(s.gx.data(), n * d, gx_base + b * n * d);
    }
  });
  grad_proj.copy_(gp.reduce(at::kFloat).view({n, k}));
  if (grad_weight.numel()) grad_weight.copy_(gw.reduce(at::kFloat));
  if (bias_present) grad_bias.copy_(gb.reduce(at::kFloat));
}

// ---------------------------------------------------------------------------------------
// Entry points (device-independent checks, then the CPU kernel).

void check_cpu(const at::Tensor& x) { RECPERF_CHECK_DEVICE_TYPE(x, "x", c10::DeviceType::CPU); }

at::Tensor fm_pairwise_fwd_cpu(const at::Tensor& x, bool include_self) {
  check_fm_x(x);
  check_cpu(x);
  auto out = at::empty({x.size(0), fm_pair_count(x.size(1), include_self)}, x.options());
  RECPERF_DISPATCH_KERNEL_FLOAT(x.scalar_type(), "fm_pairwise_fwd",
                                [&] { pairwise_fwd<scalar_t>(x, include_self, out); });
  return out;
}

at::Tensor fm_pairwise_bwd_cpu(const at::Tensor& grad, const at::Tensor& x,
                               bool include_self) {
  check_fm_x(x);
  check_cpu(x);
  check_fm_grad(grad, x, {x.size(0), fm_pair_count(x.size(1), include_self)});
  auto grad_x = at::empty(x.sizes(), x.options());
  RECPERF_DISPATCH_KERNEL_FLOAT(x.scalar_type(), "fm_pairwise_bwd", [&] {
    pairwise_bwd<scalar_t>(grad, x, include_self, grad_x);
  });
  return grad_x;
}

at::Tensor fm_projected_fwd_cpu(const at::Tensor& x, const at::Tensor& proj) {
  check_fm_proj(x, proj);
  check_cpu(x);
  auto out = at::empty({x.size(0), x.size(1), proj.size(1)}, x.options());
  RECPERF_DISPATCH_KERNEL_FLOAT(x.scalar_type(), "fm_projected_fwd",
                                [&] { projected_fwd<scalar_t>(x, proj, out); });
  return out;
}

std::tuple<at::Tensor, at::Tensor> fm_projected_bwd_cpu(const at::Tensor& grad,
                                                        const at::Tensor& x,
                                                        const at::Tensor& proj) {
  check_fm_proj(x, proj);
  check_cpu(x);
  check_fm_grad(grad, x, {x.size(0), x.size(1), proj.size(1)});
  auto grad_x = at::empty(x.sizes(), x.options());
  auto grad_proj = at::empty(proj.sizes(), proj.options());
  RECPERF_DISPATCH_KERNEL_FLOAT(x.scalar_type(), "fm_projected_bwd", [&] {
    projected_bwd<scalar_t>(grad, x, proj, grad_x, grad_proj);
  });
  return {grad_x, grad_proj};
}

void check_norm_args(const at::Tensor& x, const at::Tensor& proj,
                     const std::optional<at::Tensor>& weight,
                     const std::optional<at::Tensor>& bias, double eps) {
  check_fm_proj(x, proj);
  check_cpu(x);
  const int64_t features = x.size(1) * proj.size(1);
  check_fm_norm_param(weight, "weight", x, features);
  check_fm_norm_param(bias, "bias", x, features);
  TORCH_CHECK_VALUE(eps >= 0.0 && std::isfinite(eps), "eps must be finite and >= 0, got ",
                    eps);
}

at::Tensor fm_projected_norm_fwd_cpu(const at::Tensor& x, const at::Tensor& proj,
                                     const std::optional<at::Tensor>& weight,
                                     const std::optional<at::Tensor>& bias, double eps) {
  check_norm_args(x, proj, weight, bias, eps);
  auto out = at::empty({x.size(0), x.size(1) * proj.size(1)}, x.options());
  RECPERF_DISPATCH_KERNEL_FLOAT(x.scalar_type(), "fm_projected_norm_fwd", [&] {
    projected_norm_fwd<scalar_t>(x, proj, weight, bias, eps, out);
  });
  return out;
}

// grad_weight / grad_bias are empty tensors when weight / bias are absent.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> fm_projected_norm_bwd_cpu(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& proj,
    const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& bias,
    double eps) {
  check_norm_args(x, proj, weight, bias, eps);
  check_fm_grad(grad, x, {x.size(0), x.size(1) * proj.size(1)});
  auto grad_x = at::empty(x.sizes(), x.options());
  auto grad_proj = at::empty(proj.sizes(), proj.options());
  auto grad_weight = weight ? at::empty(weight->sizes(), weight->options())
                            : at::empty({0}, x.options());
  auto grad_bias =
      bias ? at::empty(bias->sizes(), bias->options()) : at::empty({0}, x.options());
  RECPERF_DISPATCH_KERNEL_FLOAT(x.scalar_type(), "fm_projected_norm_bwd", [&] {
    projected_norm_bwd<scalar_t>(grad, x, proj, weight, eps, bias.has_value(), grad_x,
                                 grad_proj, grad_weight, grad_bias);
  });
  return {grad_x, grad_proj, grad_weight, grad_bias};
}

}  // namespace

namespace {

// The public FM ops: defined in recperf, and in recperf_dispatch for their Python
// dispatcher on the CPU (csrc/ops/fast_path.h). Their Python device and fake kernels are
// in recperf/ops/fm.py, their CPU fast path in fm_fast_path.cpp, autograd in fm_autograd.cpp.
const char* const kFmSchemas[] = {
    "fm_pairwise(Tensor x, bool include_self=False, str backend=\"auto\") -> Tensor",
    "fm_pairwise_backward(Tensor grad, Tensor x, bool include_self=False, "
    "str backend=\"auto\") -> Tensor",
    "fm_projected(Tensor x, Tensor proj, str backend=\"auto\") -> Tensor",
    "fm_projected_backward(Tensor grad, Tensor x, Tensor proj, str backend=\"auto\") "
    "-> (Tensor, Tensor)",
    "fm_projected_norm(Tensor x, Tensor proj, Tensor? weight=None, Tensor? bias=None, "
    "float eps=1e-05, str backend=\"auto\") -> Tensor",
    "fm_projected_norm_backward(Tensor grad, Tensor x, Tensor proj, Tensor? weight, "
    "Tensor? bias, float eps=1e-05, str backend=\"auto\") "
    "-> (Tensor, Tensor, Tensor, Tensor)",
};

}  // namespace

TORCH_LIBRARY_FRAGMENT(recperf, m) {
  const std::vector<at::Tag> tags{at::Tag::pt2_compliant_tag};
  for (const char* schema : kFmSchemas) m.def(schema, tags);
}

TORCH_LIBRARY_FRAGMENT(recperf_dispatch, m) {
  for (const char* schema : kFmSchemas) m.def(schema);
}

// Compiled kernels: CPU here, CUDA in csrc/cuda/fm_binding.cpp.
TORCH_LIBRARY_FRAGMENT(recperf_kernels, m) {
  m.def("fm_pairwise_fwd(Tensor x, bool include_self) -> Tensor");
  m.def("fm_pairwise_bwd(Tensor grad, Tensor x, bool include_self) -> Tensor");
  m.def("fm_projected_fwd(Tensor x, Tensor proj) -> Tensor");
  m.def("fm_projected_bwd(Tensor grad, Tensor x, Tensor proj) -> (Tensor, Tensor)");
  m.def("fm_projected_norm_fwd(Tensor x, Tensor proj, Tensor? weight, Tensor? bias, "
        "float eps) -> Tensor");
  m.def("fm_projected_norm_bwd(Tensor grad, Tensor x, Tensor proj, Tensor? weight, "
        "Tensor? bias, float eps) -> (Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(recperf_kernels, CPU, m) {
  m.impl("fm_pairwise_fwd", &fm_pairwise_fwd_cpu);
  m.impl("fm_pairwise_bwd", &fm_pairwise_bwd_cpu);
  m.impl("fm_projected_fwd", &fm_projected_fwd_cpu);
  m.impl("fm_projected_bwd", &fm_projected_bwd_cpu);
  m.impl("fm_projected_norm_fwd", &fm_projected_norm_fwd_cpu);
  m.impl("fm_projected_norm_bwd", &fm_projected_norm_bwd_cpu);
}

}  // namespace recperf
