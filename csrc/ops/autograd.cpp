// Autograd of the hot public ops (the FM interactions and linear + norm), in C++.
//
// The same formula as a Python torch.library.register_autograd (save the inputs, call
// the op's *_backward op, which recomputes what it needs; linear_norm also keeps its
// GEMM's product on the CPU, see below), without its Python wrapper:
// these ops run several times per training step of a small CTR model, where that
// wrapper cost more than the kernels (about 50 us of 95 for linear_norm at M=512,
// K=216, N=64 on the CPU). Forward and backward still go through the dispatcher, so the
// device kernels (the Python backend dispatcher), fake kernels and torch.compile see
// exactly the calls they did before.
#include <torch/autograd.h>
#include <torch/library.h>

#include <optional>
#include <string>
#include <tuple>

#include "op_handle.h"

namespace recperf {
namespace {

using at::Tensor;
using std::optional;
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// An optional tensor saved for backward (undefined when absent) and back.
Tensor or_undefined(const optional<Tensor>& t) { return t.has_value() ? *t : Tensor(); }
optional<Tensor> as_optional(const Tensor& t) {
  return t.defined() ? optional<Tensor>(t) : std::nullopt;
}
// The gradient of an optional input: none when the input was absent.
Tensor grad_if(const Tensor& grad, const Tensor& input) {
  return input.defined() ? grad : Tensor();
}

// ---------------------------------------------------------------------------------------
// fm_pairwise(x, include_self, backend)

using PairwiseSig = Tensor(const Tensor&, bool, c10::string_view);
using PairwiseBwdSig = Tensor(const Tensor&, const Tensor&, bool, c10::string_view);

struct FmPairwise : torch::autograd::Function<FmPairwise> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, bool include_self,
                        c10::string_view backend) {
    static const auto fwd = op_handle<PairwiseSig>("recperf::fm_pairwise");
    ctx->save_for_backward({x});
    ctx->saved_data["include_self"] = include_self;
    ctx->saved_data["backend"] = std::string(backend);
    at::AutoDispatchBelowADInplaceOrView below;
    return fwd.call(x, include_self, backend);
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    static const auto bwd = op_handle<PairwiseBwdSig>("recperf::fm_pairwise_backward");
    const auto saved = ctx->get_saved_variables();
    const std::string backend = ctx->saved_data["backend"].toStringRef();
    return {bwd.call(grads[0], saved[0], ctx->saved_data["include_self"].toBool(), backend),
            Tensor(), Tensor()};
  }
};

// ---------------------------------------------------------------------------------------
// fm_projected(x, proj, backend)

using ProjectedSig = Tensor(const Tensor&, const Tensor&, c10::string_view);
using ProjectedBwdSig = std::tuple<Tensor, Tensor>(const Tensor&, const Tensor&,
                                                   const Tensor&, c10::string_view);

struct FmProjected : torch::autograd::Function<FmProjected> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& proj,
                        c10::string_view backend) {
    static const auto fwd = op_handle<ProjectedSig>("recperf::fm_projected");
    ctx->save_for_backward({x, proj});
    ctx->saved_data["backend"] = std::string(backend);
    at::AutoDispatchBelowADInplaceOrView below;
    return fwd.call(x, proj, backend);
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    static const auto bwd = op_handle<ProjectedBwdSig>("recperf::fm_projected_backward");
    const auto saved = ctx->get_saved_variables();
    const std::string backend = ctx->saved_data["backend"].toStringRef();
    auto [grad_x, grad_proj] = bwd.call(grads[0], saved[0], saved[1], backend);
    return {grad_x, grad_proj, Tensor()};
  }
};

// ---------------------------------------------------------------------------------------
// fm_projected_norm(x, proj, weight, bias, eps, backend)

using ProjectedNormSig = Tensor(const Tensor&, const Tensor&, const optional<Tensor>&,
                                const optional<Tensor>&, double, c10::string_view);
using ProjectedNormBwdSig = std::tuple<Tensor, Tensor, Tensor, Tensor>(
    const Tensor&, const Tensor&, const Tensor&, const optional<Tensor>&,
    const optional<Tensor>&, double, c10::string_view);

struct FmProjectedNorm : torch::autograd::Function<FmProjectedNorm> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& proj,
                        const optional<Tensor>& weight, const optional<Tensor>& bias,
                        double eps, c10::string_view backend) {
    static const auto fwd = op_handle<ProjectedNormSig>("recperf::fm_projected_norm");
    ctx->save_for_backward({x, proj, or_undefined(weight), or_undefined(bias)});
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["backend"] = std::string(backend);
    at::AutoDispatchBelowADInplaceOrView below;
    return fwd.call(x, proj, weight, bias, eps, backend);
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    static const auto bwd = op_handle<ProjectedNormBwdSig>("recperf::fm_projected_norm_backward");
    const auto s = ctx->get_saved_variables();
    const std::string backend = ctx->saved_data["backend"].toStringRef();
    auto [grad_x, grad_proj, grad_w, grad_b] =
        bwd.call(grads[0], s[0], s[1], as_optional(s[2]), as_optional(s[3]),
                 ctx->saved_data["eps"].toDouble(), backend);
    return {grad_x, grad_proj, grad_if(grad_w, s[2]), grad_if(grad_b, s[3]), Tensor(),
            Tensor()};
  }
};

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

Tensor fm_pairwise_autograd(const Tensor& x, bool include_self, c10::string_view backend) {
  return FmPairwise::apply(x, include_self, backend);
}

Tensor fm_projected_autograd(const Tensor& x, const Tensor& proj, c10::string_view backend) {
  return FmProjected::apply(x, proj, backend);
}

Tensor fm_projected_norm_autograd(const Tensor& x, const Tensor& proj,
                                  const optional<Tensor>& weight,
                                  const optional<Tensor>& bias, double eps,
                                  c10::string_view backend) {
  return FmProjectedNorm::apply(x, proj, weight, bias, eps, backend);
}

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
  m.impl("fm_pairwise", &fm_pairwise_autograd);
  m.impl("fm_projected", &fm_projected_autograd);
  m.impl("fm_projected_norm", &fm_projected_norm_autograd);
  m.impl("linear_norm", &linear_norm_autograd<false>);
  m.impl("grouped_linear_norm", &linear_norm_autograd<true>);
}

}  // namespace recperf
