// Autograd of linear_norm and grouped_linear_norm in C++; why C++, and why their
// *_forward and *_backward ops refuse a derivative: autograd_common.h.
#include <torch/autograd.h>
#include <torch/library.h>

#include <optional>
#include <string>
#include <tuple>

#include "autograd_common.h"
#include "op_handle.h"

namespace recperf {
namespace {

using at::Tensor;
using std::optional;
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// ---------------------------------------------------------------------------------------
// linear_norm and grouped_linear_norm(x, weight, bias, residual, norm_weight, norm_bias,
// norm, eps, recipe, backend): one formula, two ops of the same signature. On CPU tensors
// the forward is the *_forward op, whose GEMM product (preact) the backward starts from
// instead of recomputing it; on the GPU the backward recomputes it (see
// recperf/ops/linear_norm.py).

using LinearNormSig = Tensor(const Tensor&, const Tensor&, const optional<Tensor>&,
                             const optional<Tensor>&, const optional<Tensor>&,
                             const optional<Tensor>&, c10::string_view, double,
                             c10::string_view, c10::string_view);
using LinearNormTrainSig = std::tuple<Tensor, Tensor>(
    const Tensor&, const Tensor&, const optional<Tensor>&, const optional<Tensor>&,
    const optional<Tensor>&, const optional<Tensor>&, c10::string_view, double,
    c10::string_view, c10::string_view);
using LinearNormBwdSig = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>(
    const Tensor&, const Tensor&, const Tensor&, const optional<Tensor>&,
    const optional<Tensor>&, const optional<Tensor>&, const optional<Tensor>&,
    c10::string_view, double, c10::string_view, c10::string_view, const optional<Tensor>&);

template <bool Grouped>
struct LinearNorm : torch::autograd::Function<LinearNorm<Grouped>> {
  static constexpr const char* kOp = Grouped ? "recperf::grouped_linear_norm"
                                             : "recperf::linear_norm";
  static constexpr const char* kForward = Grouped ? "recperf::grouped_linear_norm_forward"
                                                  : "recperf::linear_norm_forward";
  static constexpr const char* kBackward = Grouped ? "recperf::grouped_linear_norm_backward"
                                                   : "recperf::linear_norm_backward";

  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& weight,
                        const optional<Tensor>& bias, const optional<Tensor>& residual,
                        const optional<Tensor>& norm_weight,
                        const optional<Tensor>& norm_bias, c10::string_view norm, double eps,
                        c10::string_view recipe, c10::string_view backend) {
    static const auto plain = op_handle<LinearNormSig>(kOp);
    static const auto keeping = op_handle<LinearNormTrainSig>(kForward);
    ctx->saved_data["norm"] = std::string(norm);
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["recipe"] = std::string(recipe);
    ctx->saved_data["backend"] = std::string(backend);
    at::AutoDispatchBelowADInplaceOrView below;
    Tensor out, preact;
    if (x.device().is_cpu()) {
      std::tie(out, preact) = keeping.call(x, weight, bias, residual, norm_weight, norm_bias,
                                           norm, eps, recipe, backend);
    } else {
      out = plain.call(x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe,
                       backend);
    }
    ctx->save_for_backward({x, weight, or_undefined(bias), or_undefined(residual),
                            or_undefined(norm_weight), or_undefined(norm_bias), preact});
    return out;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    static const auto bwd = op_handle<LinearNormBwdSig>(kBackward);
    const auto s = ctx->get_saved_variables();
    const std::string norm = ctx->saved_data["norm"].toStringRef();
    const std::string recipe = ctx->saved_data["recipe"].toStringRef();
    const std::string backend = ctx->saved_data["backend"].toStringRef();
    auto [dx, dw, db, dr, dnw, dnb] =
        bwd.call(grads[0], s[0], s[1], as_optional(s[2]), as_optional(s[3]),
                 as_optional(s[4]), as_optional(s[5]), norm,
                 ctx->saved_data["eps"].toDouble(), recipe, backend, as_optional(s[6]));
    return {dx,
            dw,
            grad_if(db, s[2]),
            grad_if(dr, s[3]),
            grad_if(dnw, s[4]),
            grad_if(dnb, s[5]),
            Tensor(),
            Tensor(),
            Tensor(),
            Tensor()};
  }
};

// Without gradients to track, the plain op: nothing kept for a backward.
template <bool Grouped>
Tensor linear_norm_autograd(const Tensor& x, const Tensor& weight, const optional<Tensor>& bias,
                            const optional<Tensor>& residual,
                            const optional<Tensor>& norm_weight,
                            const optional<Tensor>& norm_bias, c10::string_view norm,
                            double eps, c10::string_view recipe, c10::string_view backend) {
  const auto needs_grad = [](const optional<Tensor>& t) { return t && t->requires_grad(); };
  if (!at::GradMode::is_enabled() ||
      !(x.requires_grad() || weight.requires_grad() || needs_grad(bias) ||
        needs_grad(residual) || needs_grad(norm_weight) || needs_grad(norm_bias))) {
    static const auto plain = op_handle<LinearNormSig>(LinearNorm<Grouped>::kOp);
    at::AutoDispatchBelowADInplaceOrView below;
    return plain.call(x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe,
                      backend);
  }
  return LinearNorm<Grouped>::apply(x, weight, bias, residual, norm_weight, norm_bias, norm,
                                    eps, recipe, backend);
}

}  // namespace

TORCH_LIBRARY_IMPL(recperf, Autograd, m) {
  m.impl("linear_norm", &linear_norm_autograd<false>);
  m.impl("grouped_linear_norm", &linear_norm_autograd<true>);
  for (const char* op : {"linear_norm_forward", "linear_norm_backward",
                         "grouped_linear_norm_forward", "grouped_linear_norm_backward"}) {
    m.impl(op, no_derivative());
  }
}

}  // namespace recperf
