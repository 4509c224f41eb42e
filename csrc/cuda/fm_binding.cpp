// CUDA entry points of the FM kernels (recperf_kernels::fm_*): argument checks shared with
// the CPU kernels (ops/fm_checks.h), device guard and current stream, outputs and fp32
// workspaces, then the torch-free launchers of fm_pairwise.cu / fm_projected.cu. Host code
// only: it includes no ATen/cuda header, so it compiles against the headers of any torch.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cmath>
#include <optional>
#include <string>
#include <tuple>

#include "cuda/fm_launch.h"
#include "cuda/binding_utils.h"
#include "ops/fm_checks.h"

namespace recperf {
namespace {

using binding::check_cuda_error;
using binding::current_stream;
using binding::kernel_dtype;

using cuda::DType;
using cuda::FmPlan;
using cuda::FmProjectedOp;
using cuda::Strided;


void check_cuda(const at::Tensor& x) {
  RECPERF_CHECK_DEVICE_TYPE(x, "x", c10::DeviceType::CUDA);
}


// A shape beyond the kernels is a ValueError naming the limit, raised before any launch.
void check_plan(const FmPlan& plan, const char* op, const at::Tensor& x, int64_t k) {
  TORCH_CHECK_VALUE(plan.fits, op, " (CUDA): x of shape ", shape_str(x.sizes()),
                    k >= 0 ? " with k=" : "", k >= 0 ? std::to_string(k) : std::string(),
                    " needs ", plan.needed, " ", plan.limit, ", more than the limit of ",
                    plan.available);
}

Strided strided(const at::Tensor& t) {
  return {t.const_data_ptr(), t.stride(0), t.dim() > 1 ? t.stride(1) : 0,
          t.dim() > 2 ? t.stride(2) : 0};
}


// fp32 contiguous copy of a parameter (proj, weight, bias); a no-op when it already is one.
at::Tensor f32(const at::Tensor& t) { return t.to(at::kFloat).contiguous(); }

const float* ptr_or_null(const at::Tensor& t) {
  return t.defined() ? t.const_data_ptr<float>() : nullptr;
}

at::TensorOptions f32_options(const at::Tensor& x) { return x.options().dtype(at::kFloat); }

// ---------------------------------------------------------------------------------------
// fm_pairwise

at::Tensor fm_pairwise_fwd_cuda(const at::Tensor& x, bool include_self) {
  constexpr const char* op = "fm_pairwise_fwd";
  check_fm_x(x);
  check_cuda(x);
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t B = x.size(0), n = x.size(1), d = x.size(2);
  FmPlan plan;
  check_cuda_error(cuda::plan_fm_pairwise(B, n, d, false, &plan), op);
  check_plan(plan, op, x, -1);
  auto out = at::empty({B, fm_pair_count(n, include_self)}, x.options());
  check_cuda_error(cuda::launch_fm_pairwise_fwd(strided(x), B, n, d, include_self,
                                                out.data_ptr(), kernel_dtype(x.scalar_type()),
                                                current_stream(x)),
                   op);
  return out;
}

at::Tensor fm_pairwise_bwd_cuda(const at::Tensor& grad, const at::Tensor& x,
                                bool include_self) {
  constexpr const char* op = "fm_pairwise_bwd";
  check_fm_x(x);
  check_cuda(x);
  check_fm_grad(grad, x, {x.size(0), fm_pair_count(x.size(1), include_self)});
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t B = x.size(0), n = x.size(1), d = x.size(2);
  FmPlan plan;
  check_cuda_error(cuda::plan_fm_pairwise(B, n, d, true, &plan), op);
  check_plan(plan, op, x, -1);
  auto grad_x = at::empty(x.sizes(), x.options());
  check_cuda_error(cuda::launch_fm_pairwise_bwd(strided(grad), strided(x), B, n, d,
                                                include_self, grad_x.data_ptr(),
                                                kernel_dtype(x.scalar_type()),
                                                current_stream(x)),
                   op);
  return grad_x;
}

// ---------------------------------------------------------------------------------------
// fm_projected

FmPlan projected_plan(const char* op, const at::Tensor& x, int64_t k, FmProjectedOp which) {
  FmPlan plan;
  check_cuda_error(
      cuda::plan_fm_projected(x.size(0), x.size(1), x.size(2), k, which, &plan), op);
  check_plan(plan, op, x, k);
  return plan;
}

at::Tensor fm_projected_fwd_cuda(const at::Tensor& x, const at::Tensor& proj) {
  constexpr const char* op = "fm_projected_fwd";
  check_fm_proj(x, proj);
  check_cuda(x);
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t B = x.size(0), n = x.size(1), d = x.size(2), k = proj.size(1);
  const FmPlan plan = projected_plan(op, x, k, FmProjectedOp::kFwd);
  const at::Tensor p = f32(proj);
  auto out = at::empty({B, n, k}, x.options());
  check_cuda_error(cuda::launch_fm_projected_fwd(plan, strided(x), p.const_data_ptr<float>(),
                                                 B, n, d, k, out.data_ptr(),
                                                 kernel_dtype(x.scalar_type()),
                                                 current_stream(x)),
                   op);
  return out;
}

std::tuple<at::Tensor, at::Tensor> fm_projected_bwd_cuda(const at::Tensor& grad,
                                                         const at::Tensor& x,
                                                         const at::Tensor& proj) {
  constexpr const char* op = "fm_projected_bwd";
  check_fm_proj(x, proj);
  check_cuda(x);
  check_fm_grad(grad, x, {x.size(0), x.size(1), proj.size(1)});
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t B = x.size(0), n = x.size(1), d = x.size(2), k = proj.size(1);
  const FmPlan plan = projected_plan(op, x, k, FmProjectedOp::kBwd);
  const at::Tensor p = f32(proj);
  auto grad_x = at::empty(x.sizes(), x.options());
  auto gp_partials = at::zeros({plan.partial_rows, n * k}, f32_options(x));
  check_cuda_error(cuda::launch_fm_projected_bwd(
                       plan, strided(grad), strided(x), p.const_data_ptr<float>(), B, n, d, k,
                       grad_x.data_ptr(), gp_partials.data_ptr<float>(),
                       kernel_dtype(x.scalar_type()), current_stream(x)),
                   op);
  auto grad_proj = gp_partials.sum(0).view({n, k}).to(proj.scalar_type());
  return {grad_x, grad_proj};
}

// ---------------------------------------------------------------------------------------
// fm_projected_norm

void check_norm_args(const at::Tensor& x, const at::Tensor& proj,
                     const std::optional<at::Tensor>& weight,
                     const std::optional<at::Tensor>& bias, double eps) {
  check_fm_proj(x, proj);
  check_cuda(x);
  const int64_t features = x.size(1) * proj.size(1);
  check_fm_norm_param(weight, "weight", x, features);
  check_fm_norm_param(bias, "bias", x, features);
  TORCH_CHECK_VALUE(eps >= 0.0 && std::isfinite(eps), "eps must be finite and >= 0, got ",
                    eps);
}

at::Tensor fm_projected_norm_fwd_cuda(const at::Tensor& x, const at::Tensor& proj,
                                      const std::optional<at::Tensor>& weight,
                                      const std::optional<at::Tensor>& bias, double eps) {
  constexpr const char* op = "fm_projected_norm_fwd";
  check_norm_args(x, proj, weight, bias, eps);
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t B = x.size(0), n = x.size(1), d = x.size(2), k = proj.size(1);
  const FmPlan plan = projected_plan(op, x, k, FmProjectedOp::kNormFwd);
  const at::Tensor p = f32(proj);
  const at::Tensor w = weight ? f32(*weight) : at::Tensor();
  const at::Tensor bs = bias ? f32(*bias) : at::Tensor();
  const at::Tensor f_ws = plan.fused_norm ? at::Tensor() : at::empty({B, n * k}, f32_options(x));
  auto out = at::empty({B, n * k}, x.options());
  check_cuda_error(cuda::launch_fm_projected_norm_fwd(
                       plan, strided(x), p.const_data_ptr<float>(), ptr_or_null(w),
                       ptr_or_null(bs), eps, B, n, d, k, out.data_ptr(),
                       f_ws.defined() ? f_ws.data_ptr<float>() : nullptr,
                       kernel_dtype(x.scalar_type()), current_stream(x)),
                   op);
  return out;
}

// grad_weight / grad_bias are empty tensors when weight / bias are absent.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> fm_projected_norm_bwd_cuda(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& proj,
    const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& bias,
    double eps) {
  constexpr const char* op = "fm_projected_norm_bwd";
  check_norm_args(x, proj, weight, bias, eps);
  check_fm_grad(grad, x, {x.size(0), x.size(1) * proj.size(1)});
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t B = x.size(0), n = x.size(1), d = x.size(2), k = proj.size(1);
  const FmPlan plan = projected_plan(op, x, k, FmProjectedOp::kNormBwd);
  const at::Tensor p = f32(proj);
  const at::Tensor w = weight ? f32(*weight) : at::Tensor();
  auto grad_x = at::empty(x.sizes(), x.options());
  auto f_ws = at::empty({B, n * k}, f32_options(x));
  auto gp_partials = at::zeros({plan.partial_rows, n * k}, f32_options(x));
  auto gw_partials =
      weight ? at::zeros({plan.partial_rows, n * k}, f32_options(x)) : at::Tensor();
  check_cuda_error(cuda::launch_fm_projected_norm_bwd(
                       plan, strided(grad), strided(x), p.const_data_ptr<float>(),
                       ptr_or_null(w), eps, B, n, d, k, grad_x.data_ptr(),
                       f_ws.data_ptr<float>(), gp_partials.data_ptr<float>(),
                       gw_partials.defined() ? gw_partials.data_ptr<float>() : nullptr,
                       kernel_dtype(x.scalar_type()), current_stream(x)),
                   op);
  auto grad_proj = gp_partials.sum(0).view({n, k}).to(proj.scalar_type());
  auto grad_weight = weight ? gw_partials.sum(0).to(weight->scalar_type())
                            : at::empty({0}, x.options());
  auto grad_bias =
      bias ? at::sum(grad, at::IntArrayRef{0}, false, at::kFloat).to(bias->scalar_type())
           : at::empty({0}, x.options());
  return {grad_x, grad_proj, grad_weight, grad_bias};
}

}  // namespace

TORCH_LIBRARY_IMPL(recperf_kernels, CUDA, m) {
  m.impl("fm_pairwise_fwd", &fm_pairwise_fwd_cuda);
  m.impl("fm_pairwise_bwd", &fm_pairwise_bwd_cuda);
  m.impl("fm_projected_fwd", &fm_projected_fwd_cuda);
  m.impl("fm_projected_bwd", &fm_projected_bwd_cuda);
  m.impl("fm_projected_norm_fwd", &fm_projected_norm_fwd_cuda);
  m.impl("fm_projected_norm_bwd", &fm_projected_norm_bwd_cuda);
}

}  // namespace recperf
