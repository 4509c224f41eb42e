// Autograd of the FM interactions (fm_pairwise, fm_projected, fm_projected_norm) in C++;
// why C++, and why their backward ops refuse a derivative: autograd_common.h.
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

}  // namespace

TORCH_LIBRARY_IMPL(recperf, Autograd, m) {
  m.impl("fm_pairwise", &fm_pairwise_autograd);
  m.impl("fm_projected", &fm_projected_autograd);
  m.impl("fm_projected_norm", &fm_projected_norm_autograd);
  m.impl("fm_pairwise_backward", no_derivative());
  m.impl("fm_projected_backward", no_derivative());
  m.impl("fm_projected_norm_backward", no_derivative());
}

}  // namespace recperf
