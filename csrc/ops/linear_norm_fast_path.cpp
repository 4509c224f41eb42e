// The CPU kernels of linear_norm and grouped_linear_norm (forward, training forward,
// backward): for the fp32 and bf16 recipes, the cpp backend's composite
// (linear_norm_composite.cpp, the one the dispatcher's cpp backend calls); for anything
// else the Python dispatcher (csrc/ops/fast_path.h). The predicates mirror recperf/ops/linear_norm.py's checks.
#include <torch/library.h>

#include <optional>
#include <tuple>

#include "fast_path.h"

namespace recperf {
namespace {

using at::Tensor;
using std::optional;
using Grads = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;

// The arguments every linear_norm op shares.
struct Args {
  const Tensor& x;
  const Tensor& weight;
  const optional<Tensor>& bias;
  const optional<Tensor>& residual;
  const optional<Tensor>& norm_weight;
  const optional<Tensor>& norm_bias;
  c10::string_view norm;
  double eps;
  c10::string_view recipe;
};

// A vector (bias, norm weight or bias) [.., N] or residual [.., M, N] of the call.
bool operand_fits(const optional<Tensor>& t, const Tensor& x, at::IntArrayRef shape) {
  return !t.has_value() ||
         (is_kernel_dtype(*t) && on_device_of(*t, x) && t->sizes() == shape);
}

// The fast path's reach: the checks of check_linear_norm pass, and the dispatcher would
// run the cpp backend on a recipe whose GEMMs are fp32 or bf16 (FP8 takes Python).
template <bool Grouped>
bool fits(const Args& a) {
  constexpr int64_t lead = Grouped ? 1 : 0;
  const Tensor& x = a.x;
  const Tensor& w = a.weight;
  if (!(x.device().is_cpu() && is_kernel_dtype(x) && x.dim() == 2 + lead &&
        is_kernel_dtype(w) && on_device_of(w, x) && w.dim() == 2 + lead)) {
    return false;
  }
  const int64_t M = x.size(lead), K = x.size(lead + 1), N = w.size(lead);
  if (M < 1 || K < 1 || N < 1 || w.size(lead + 1) != K) return false;
  if (Grouped && (x.size(0) < 1 || w.size(0) != x.size(0))) return false;
  if (!(a.recipe == "fp32" || a.recipe == "bf16") || !is_valid_eps(a.eps)) return false;
  const bool layer = a.norm == "layer", rms = a.norm == "rms", none = a.norm == "none";
  if (!(layer || rms || none)) return false;
  if (rms && a.norm_bias) return false;
  if (none && (a.norm_weight || a.norm_bias)) return false;
  std::vector<int64_t> vec{N}, mat{M, N};
  if (Grouped) {
    vec.insert(vec.begin(), x.size(0));
    mat.insert(mat.begin(), x.size(0));
  }
  return operand_fits(a.bias, x, vec) && operand_fits(a.norm_weight, x, vec) &&
         operand_fits(a.norm_bias, x, vec) && operand_fits(a.residual, x, mat);
}

// The composite itself (csrc/ops/linear_norm_composite.cpp), which the dispatcher's cpp
// backend calls too.
std::tuple<Tensor, Tensor> forward_keeping(const Args& a) {
  static const auto forward = compiled_kernel<std::tuple<Tensor, Tensor>(
      const Tensor&, const Tensor&, const optional<Tensor>&, const optional<Tensor>&,
      const optional<Tensor>&, const optional<Tensor>&, c10::string_view, double,
      c10::string_view)>("linear_norm_composite_forward");
  return forward.call(a.x, a.weight, a.bias, a.residual, a.norm_weight, a.norm_bias, a.norm,
                      a.eps, a.recipe);
}

Grads backward(const Tensor& grad, const Args& a, const optional<Tensor>& preact) {
  static const auto backward = compiled_kernel<Grads(
      const Tensor&, const Tensor&, const Tensor&, const optional<Tensor>&,
      const optional<Tensor>&, const optional<Tensor>&, const optional<Tensor>&,
      c10::string_view, double, c10::string_view, const optional<Tensor>&)>(
      "linear_norm_composite_backward");
  return backward.call(grad, a.x, a.weight, a.bias, a.residual, a.norm_weight, a.norm_bias,
                       a.norm, a.eps, a.recipe, preact);
}

// ---------------------------------------------------------------------------------------
// Entry points, one set per op (Grouped picks grouped_linear_norm).

template <bool Grouped>
struct Names {
  static constexpr const char* forward = "linear_norm";
  static constexpr const char* keeping = "linear_norm_forward";
  static constexpr const char* backward = "linear_norm_backward";
};
template <>
struct Names<true> {
  static constexpr const char* forward = "grouped_linear_norm";
  static constexpr const char* keeping = "grouped_linear_norm_forward";
  static constexpr const char* backward = "grouped_linear_norm_backward";
};

#define RECPERF_LINEAR_NORM_PARAMS                                                      \
  const Tensor &x, const Tensor &weight, const optional<Tensor>&bias,                   \
      const optional<Tensor>&residual, const optional<Tensor>&norm_weight,               \
      const optional<Tensor>&norm_bias, c10::string_view norm, double eps,               \
      c10::string_view recipe
#define RECPERF_LINEAR_NORM_ARGS \
  x, weight, bias, residual, norm_weight, norm_bias, norm, eps, recipe

using ForwardSig = Tensor(RECPERF_LINEAR_NORM_PARAMS, c10::string_view);
using KeepingSig = std::tuple<Tensor, Tensor>(RECPERF_LINEAR_NORM_PARAMS, c10::string_view);
using BackwardSig = Grads(const Tensor&, RECPERF_LINEAR_NORM_PARAMS, c10::string_view,
                         const optional<Tensor>&);

template <bool Grouped>
Tensor forward_entry(RECPERF_LINEAR_NORM_PARAMS, c10::string_view backend) {
  const Args a{RECPERF_LINEAR_NORM_ARGS};
  if (cpp_backend_in_force(backend) && fits<Grouped>(a)) return std::get<0>(forward_keeping(a));
  static const auto slow = python_dispatcher<ForwardSig>(Names<Grouped>::forward);
  return slow.call(RECPERF_LINEAR_NORM_ARGS, backend);
}

template <bool Grouped>
std::tuple<Tensor, Tensor> keeping_entry(RECPERF_LINEAR_NORM_PARAMS, c10::string_view backend) {
  const Args a{RECPERF_LINEAR_NORM_ARGS};
  if (cpp_backend_in_force(backend) && fits<Grouped>(a)) return forward_keeping(a);
  static const auto slow = python_dispatcher<KeepingSig>(Names<Grouped>::keeping);
  return slow.call(RECPERF_LINEAR_NORM_ARGS, backend);
}

template <bool Grouped>
Grads backward_entry(const Tensor& grad, RECPERF_LINEAR_NORM_PARAMS, c10::string_view backend,
                     const optional<Tensor>& preact) {
  const Args a{RECPERF_LINEAR_NORM_ARGS};
  if (cpp_backend_in_force(backend) && fits<Grouped>(a)) {
    std::vector<int64_t> out_shape = x.sizes().vec();
    out_shape.back() = weight.size(-2);
    const bool preact_fits = !preact || (preact->scalar_type() == at::kFloat &&
                                         on_device_of(*preact, x) &&
                                         preact->sizes() == at::IntArrayRef(out_shape));
    if (is_grad_of(grad, x, out_shape) && preact_fits) return backward(grad, a, preact);
  }
  static const auto slow = python_dispatcher<BackwardSig>(Names<Grouped>::backward);
  return slow.call(grad, RECPERF_LINEAR_NORM_ARGS, backend, preact);
}

#undef RECPERF_LINEAR_NORM_ARGS
#undef RECPERF_LINEAR_NORM_PARAMS

}  // namespace

TORCH_LIBRARY_IMPL(recperf, CPU, m) {
  m.impl("linear_norm", &forward_entry<false>);
  m.impl("linear_norm_forward", &keeping_entry<false>);
  m.impl("linear_norm_backward", &backward_entry<false>);
  m.impl("grouped_linear_norm", &forward_entry<true>);
  m.impl("grouped_linear_norm_forward", &keeping_entry<true>);
  m.impl("grouped_linear_norm_backward", &backward_entry<true>);
}

}  // namespace recperf
