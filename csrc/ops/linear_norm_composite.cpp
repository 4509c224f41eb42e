// linear_norm's CPU composite for the fp32 and bf16 recipes, written once: a GEMM by row
// blocks (bf16 x bf16 -> fp32 on the CPU's AVX512-BF16 instructions for the bf16 recipe,
// csrc/ops/cpu/bf16_gemm.h; the BLAS's sgemm for fp32) with the add_norm epilogue run on each row block as soon as the
// GEMM has written it, and the backward (add_norm_backward, then the dgrad and wgrad
// GEMMs). Registered as recperf_kernels ops, called by the CPU fast path
// (linear_norm_fast_path.cpp) and by the dispatcher's cpp backend
// (recperf/ops/linear_norm_composite.py), which keeps only the FP8 and CUDA paths.
#include <ATen/Parallel.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <torch/library.h>

#include <algorithm>
#include <optional>
#include <tuple>
#include <vector>

#include "add_norm_epilogue.h"
#include "checks.h"
#include "cpu/bf16_gemm.h"
#include "op_handle.h"

TORCH_LIBRARY_FRAGMENT(recperf_kernels, m) {
  // a [.., M, K] . b [.., N, K]^T in fp32 (rank 2, or rank 3 with a group dim), precision
  // 'fp32' or 'bf16' (operands rounded to bf16, products accumulated in fp32).
  m.def("linear_gemm(Tensor a, Tensor b, str precision) -> Tensor");
  // (out, preact) of linear_norm / grouped_linear_norm for recipe 'fp32' or 'bf16'.
  m.def("linear_norm_composite_forward(Tensor x, Tensor weight, Tensor? bias, "
        "Tensor? residual, Tensor? norm_weight, Tensor? norm_bias, str norm, float eps, "
        "str recipe) -> (Tensor, Tensor)");
  // (dx, dweight, dbias, dresidual, dnorm_weight, dnorm_bias), empty where absent; from
  // preact when given, else the forward GEMM is recomputed.
  m.def("linear_norm_composite_backward(Tensor grad, Tensor x, Tensor weight, Tensor? bias, "
        "Tensor? residual, Tensor? norm_weight, Tensor? norm_bias, str norm, float eps, "
        "str recipe, Tensor? preact) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
}

namespace recperf {
namespace {

using at::Tensor;
using std::optional;

bool is_bf16_precision(c10::string_view precision, const char* name) {
  TORCH_CHECK_VALUE(precision == "fp32" || precision == "bf16", name,
                    " must be 'fp32' or 'bf16' (the CPU composite's GEMM precisions), got '",
                    precision, "'");
  return precision == "bf16";
}

// Rows of one GEMM task: a block of C that stays in L2 (256 KiB of fp32) while its
// epilogue runs, large enough that the library's packing of b is amortized.
int64_t block_rows(int64_t N) { return std::clamp<int64_t>(65536 / std::max<int64_t>(N, 1), 16, 256); }

// c [G, M, N] (or [M, N]) = a . b^T for a [.., M, K], b [.., N, K], c fp32 contiguous;
// epilogue->rows runs on each row block right after the GEMM has written it.
void gemm_into(const Tensor& a, const Tensor& b, bool bf16, Tensor& c,
               const AddNormEpilogue* epilogue) {
  TORCH_CHECK_VALUE((a.dim() == 2 || a.dim() == 3) && b.dim() == a.dim(),
                    "a and b must both have rank 2 or both rank 3, got shapes ",
                    shape_str(a.sizes()), " and ", shape_str(b.sizes()));
  TORCH_CHECK_VALUE(a.size(-1) == b.size(-1) && (a.dim() == 2 || a.size(0) == b.size(0)),
                    "b must be [.., N, K] with a's group count and K, a has shape ",
                    shape_str(a.sizes()), ", b has shape ", shape_str(b.sizes()));
  TORCH_CHECK_TYPE(at::isFloatingType(a.scalar_type()) && at::isFloatingType(b.scalar_type()),
                   "a and b must be floating-point, got ", a.scalar_type(), " and ",
                   b.scalar_type());
  RECPERF_CHECK_SAME_DEVICE(b, "b", a, "a");
  RECPERF_CHECK_DEVICE_TYPE(a, "a", c10::DeviceType::CPU);
  const int64_t G = a.dim() == 3 ? a.size(0) : 1;
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-2);
  if (c.numel() == 0) return;
  if (K == 0) {
    c.zero_();
    if (epilogue) epilogue->rows(0, G * M);
    return;
  }
  const int64_t rows = block_rows(N);
  const int64_t blocks = (M + rows - 1) / rows;
  const Tensor c3 = c.view({G, M, N});
  float* C = c.data_ptr<float>();
  // Runs gemm(g, m0, m1) on row block [m0, m1) of group g, then the epilogue on it.
  const auto for_row_blocks = [&](auto&& gemm) {
    at::parallel_for(0, G * blocks, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t g = t / blocks, m0 = (t % blocks) * rows, m1 = std::min(M, m0 + rows);
        gemm(g, m0, m1);
        if (epilogue) epilogue->rows(g * M + m0, g * M + m1);
      }
    });
  };
  if (bf16 && cpu::use_bf16_instructions()) {
    const Tensor A = a.to(at::kBFloat16).contiguous().view({G, M, K});
    // b [G, N, K] in bf16, any strides: the packing reads it as B = b^T [K, N].
    const Tensor B = b.to(at::kBFloat16).reshape({G, N, K});
    std::vector<cpu::Bf16PackedB> packed(G);
    const auto* a_ptr = reinterpret_cast<const uint16_t*>(A.const_data_ptr<c10::BFloat16>());
    const auto* b_ptr = reinterpret_cast<const uint16_t*>(B.const_data_ptr<c10::BFloat16>());
    at::parallel_for(0, G, 1, [&](int64_t g0, int64_t g1) {
      for (int64_t g = g0; g < g1; ++g) {
        cpu::pack_bf16_b(b_ptr + g * B.stride(0), B.stride(2), B.stride(1), K, N, packed[g]);
      }
    });
    for_row_blocks([&](int64_t g, int64_t m0, int64_t m1) {
      cpu::bf16_gemm_rows(a_ptr + (g * M + m0) * K, K, packed[g], C + (g * M + m0) * N, N,
                          m1 - m0);
    });
    return;
  }
  // fp32 operands (bf16 values where the CPU lacks bf16 instructions: their products are
  // exact in fp32, so only the accumulation order differs); the BLAS runs on the calling
  // thread inside the parallel region.
  const auto operand = [&](const Tensor& t) {
    return bf16 ? t.to(at::kBFloat16).to(at::kFloat) : t.to(at::kFloat);
  };
  const Tensor A = operand(a.reshape({G, M, K})), B = operand(b.reshape({G, N, K}));
  for_row_blocks([&](int64_t g, int64_t m0, int64_t m1) {
    Tensor out = c3[g].narrow(0, m0, m1 - m0);
    at::mm_out(out, A[g].narrow(0, m0, m1 - m0), B[g].t());
  });
}

std::vector<int64_t> product_shape(const Tensor& a, const Tensor& b) {
  std::vector<int64_t> shape = a.sizes().vec();
  shape.back() = b.size(-2);
  return shape;
}

// The entry points compute below autograd: a kernel of an op without an autograd formula
// may see inputs that require grad, and the out= GEMM inside refuses those.
Tensor linear_gemm(const Tensor& a, const Tensor& b, c10::string_view precision) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  const bool bf16 = is_bf16_precision(precision, "precision");
  Tensor c = at::empty(product_shape(a, b), a.options().dtype(at::kFloat));
  gemm_into(a, b, bf16, c, nullptr);
  return c;
}

std::tuple<Tensor, Tensor> composite_forward(const Tensor& x, const Tensor& weight,
                                             const optional<Tensor>& bias,
                                             const optional<Tensor>& residual,
                                             const optional<Tensor>& norm_weight,
                                             const optional<Tensor>& norm_bias,
                                             c10::string_view norm, double eps,
                                             c10::string_view recipe) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  const bool bf16 = is_bf16_precision(recipe, "recipe");
  Tensor preact = at::empty(product_shape(x, weight), x.options().dtype(at::kFloat));
  const AddNormEpilogue epilogue(preact, bias, residual, norm_weight, norm_bias, norm, eps,
                                 x.scalar_type());
  gemm_into(x, weight, bf16, preact, &epilogue);
  return {epilogue.out(), preact};
}

using Grads = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;

Grads composite_backward(const Tensor& grad, const Tensor& x, const Tensor& weight,
                         const optional<Tensor>& bias, const optional<Tensor>& residual,
                         const optional<Tensor>& norm_weight, const optional<Tensor>& norm_bias,
                         c10::string_view norm, double eps, c10::string_view recipe,
                         const optional<Tensor>& preact) {
  static const auto add_norm_backward =
      op_handle<std::tuple<Tensor, Tensor, Tensor>(
          const Tensor&, const Tensor&, const optional<Tensor>&, const optional<Tensor>&,
          const optional<Tensor>&, c10::string_view, double)>("recperf_kernels::add_norm_backward");
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  const bool bf16 = is_bf16_precision(recipe, "recipe");
  const c10::string_view precision = bf16 ? "bf16" : "fp32";
  const Tensor z = preact ? *preact : linear_gemm(x, weight, precision);
  auto [dz, d_nw, d_nb] =
      add_norm_backward.call(grad, z, bias, residual, norm_weight, norm, eps);
  const Tensor empty = x.new_empty({0});
  const auto cast_or_empty = [&](const optional<Tensor>& like, const Tensor& t) {
    return like ? t.to(like->scalar_type()) : empty;
  };
  (void)norm_bias;  // its gradient, d_nb, needs no value of it
  // dz rounded to bf16 once, in its own layout, for both GEMMs: the wgrad GEMM's
  // transposed copy of it is then a same-dtype transpose (ATen's blocked kernel), not a
  // strided conversion.
  const Tensor dz_op = bf16 ? dz.to(at::kBFloat16) : dz;
  return {linear_gemm(dz_op, weight.transpose(-2, -1), precision).to(x.scalar_type()),
          linear_gemm(dz_op.transpose(-2, -1), x.transpose(-2, -1), precision)
              .to(weight.scalar_type()),
          bias ? dz.sum(-2).to(bias->scalar_type()) : empty,
          cast_or_empty(residual, dz),
          cast_or_empty(norm_weight, d_nw),
          cast_or_empty(norm_bias, d_nb)};
}

}  // namespace

TORCH_LIBRARY_IMPL(recperf_kernels, CPU, m) {
  m.impl("linear_gemm", &linear_gemm);
  m.impl("linear_norm_composite_forward", &composite_forward);
  m.impl("linear_norm_composite_backward", &composite_backward);
}

}  // namespace recperf
