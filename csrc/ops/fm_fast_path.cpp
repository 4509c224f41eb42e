// The CPU kernels of the public FM ops: the compiled kernel when the dispatcher would
// surely run it on arguments its checks surely accept, else the Python dispatcher
// (csrc/ops/fast_path.h). The predicates mirror recperf/ops/fm.py's checks and the cpp
// backend's reach (kernel dtypes, a non-empty batch).
#include <torch/library.h>

#include <optional>
#include <tuple>

#include "fast_path.h"
#include "fm_checks.h"

namespace recperf {
namespace {

using at::Tensor;
using std::optional;

// x [B, n, d] with B, n, d >= 1, a kernel dtype, on the CPU.
bool x_fits(const Tensor& x) {
  return x.device().is_cpu() && is_kernel_dtype(x) && x.dim() == 3 && x.size(0) > 0 &&
         x.size(1) > 0 && x.size(2) > 0;
}

// proj [n, k], k >= 1.
bool proj_fits(const Tensor& x, const Tensor& proj) {
  return x_fits(x) && proj.dim() == 2 && proj.size(0) == x.size(1) && proj.size(1) > 0 &&
         is_param_of(proj, x);
}

bool norm_fits(const Tensor& x, const Tensor& proj, const optional<Tensor>& weight,
               const optional<Tensor>& bias, double eps) {
  if (!proj_fits(x, proj) || !is_valid_eps(eps)) return false;
  const int64_t features = x.size(1) * proj.size(1);
  for (const auto* t : {&weight, &bias}) {
    if (t->has_value() &&
        !((*t)->dim() == 1 && (*t)->size(0) == features && is_param_of(**t, x))) {
      return false;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------

using PairwiseSig = Tensor(const Tensor&, bool, c10::string_view);
using PairwiseBwdSig = Tensor(const Tensor&, const Tensor&, bool, c10::string_view);

Tensor pairwise(const Tensor& x, bool include_self, c10::string_view backend) {
  if (cpp_backend_in_force(backend) && x_fits(x)) {
    static const auto fast = compiled_kernel<Tensor(const Tensor&, bool)>("fm_pairwise_fwd");
    return fast.call(x, include_self);
  }
  static const auto slow = python_dispatcher<PairwiseSig>("fm_pairwise");
  return slow.call(x, include_self, backend);
}

Tensor pairwise_backward(const Tensor& grad, const Tensor& x, bool include_self,
                         c10::string_view backend) {
  if (cpp_backend_in_force(backend) && x_fits(x) &&
      is_grad_of(grad, x, {x.size(0), fm_pair_count(x.size(1), include_self)})) {
    static const auto fast =
        compiled_kernel<Tensor(const Tensor&, const Tensor&, bool)>("fm_pairwise_bwd");
    return fast.call(grad, x, include_self);
  }
  static const auto slow = python_dispatcher<PairwiseBwdSig>("fm_pairwise_backward");
  return slow.call(grad, x, include_self, backend);
}

// ---------------------------------------------------------------------------------------

using ProjectedSig = Tensor(const Tensor&, const Tensor&, c10::string_view);
using ProjectedGrads = std::tuple<Tensor, Tensor>;
using ProjectedBwdSig = ProjectedGrads(const Tensor&, const Tensor&, const Tensor&,
                                       c10::string_view);

Tensor projected(const Tensor& x, const Tensor& proj, c10::string_view backend) {
  if (cpp_backend_in_force(backend) && proj_fits(x, proj)) {
    static const auto fast = compiled_kernel<Tensor(const Tensor&, const Tensor&)>("fm_projected_fwd");
    return fast.call(x, proj);
  }
  static const auto slow = python_dispatcher<ProjectedSig>("fm_projected");
  return slow.call(x, proj, backend);
}

ProjectedGrads projected_backward(const Tensor& grad, const Tensor& x, const Tensor& proj,
                                  c10::string_view backend) {
  if (cpp_backend_in_force(backend) && proj_fits(x, proj) &&
      is_grad_of(grad, x, {x.size(0), x.size(1), proj.size(1)})) {
    static const auto fast =
        compiled_kernel<ProjectedGrads(const Tensor&, const Tensor&, const Tensor&)>("fm_projected_bwd");
    return fast.call(grad, x, proj);
  }
  static const auto slow = python_dispatcher<ProjectedBwdSig>("fm_projected_backward");
  return slow.call(grad, x, proj, backend);
}

// ---------------------------------------------------------------------------------------

using NormSig = Tensor(const Tensor&, const Tensor&, const optional<Tensor>&,
                       const optional<Tensor>&, double, c10::string_view);
using NormGrads = std::tuple<Tensor, Tensor, Tensor, Tensor>;
using NormBwdSig = NormGrads(const Tensor&, const Tensor&, const Tensor&,
                             const optional<Tensor>&, const optional<Tensor>&, double,
                             c10::string_view);

Tensor projected_norm(const Tensor& x, const Tensor& proj, const optional<Tensor>& weight,
                      const optional<Tensor>& bias, double eps, c10::string_view backend) {
  if (cpp_backend_in_force(backend) && norm_fits(x, proj, weight, bias, eps)) {
    static const auto fast =
        compiled_kernel<Tensor(const Tensor&, const Tensor&, const optional<Tensor>&,
                      const optional<Tensor>&, double)>("fm_projected_norm_fwd");
    return fast.call(x, proj, weight, bias, eps);
  }
  static const auto slow = python_dispatcher<NormSig>("fm_projected_norm");
  return slow.call(x, proj, weight, bias, eps, backend);
}

NormGrads projected_norm_backward(const Tensor& grad, const Tensor& x, const Tensor& proj,
                                  const optional<Tensor>& weight,
                                  const optional<Tensor>& bias, double eps,
                                  c10::string_view backend) {
  if (cpp_backend_in_force(backend) && norm_fits(x, proj, weight, bias, eps) &&
      is_grad_of(grad, x, {x.size(0), x.size(1) * proj.size(1)})) {
    static const auto fast =
        compiled_kernel<NormGrads(const Tensor&, const Tensor&, const Tensor&, const optional<Tensor>&,
                         const optional<Tensor>&, double)>("fm_projected_norm_bwd");
    return fast.call(grad, x, proj, weight, bias, eps);
  }
  static const auto slow = python_dispatcher<NormBwdSig>("fm_projected_norm_backward");
  return slow.call(grad, x, proj, weight, bias, eps, backend);
}

}  // namespace

TORCH_LIBRARY_IMPL(recperf, CPU, m) {
  m.impl("fm_pairwise", &pairwise);
  m.impl("fm_pairwise_backward", &pairwise_backward);
  m.impl("fm_projected", &projected);
  m.impl("fm_projected_backward", &projected_backward);
  m.impl("fm_projected_norm", &projected_norm);
  m.impl("fm_projected_norm_backward", &projected_norm_backward);
}

}  // namespace recperf
