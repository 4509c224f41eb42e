// CUDA entry points of recperf_kernels::add_norm / add_norm_backward: the CPU kernels'
// argument checks (ops/add_norm_checks.h), device guard and current stream, outputs and
// fp32 partials, then the torch-free launchers of add_norm.cu. Host code only: it includes
// no ATen/cuda header, so it compiles against the headers of any torch.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <optional>
#include <tuple>
#include <vector>

#include "cuda/add_norm_launch.h"
#include "cuda/binding_utils.h"
#include "ops/add_norm_checks.h"

namespace recperf {
namespace {

using binding::check_cuda_error;
using binding::current_stream;
using binding::kernel_dtype;


cuda::NormKind norm_kind(AddNormKind k) { return static_cast<cuda::NormKind>(static_cast<int>(k)); }


// A shape beyond the kernels is a ValueError naming the limit, raised before any launch.
cuda::AddNormPlan plan_for(const char* op, const at::Tensor& z, AddNormKind kind,
                           bool backward, bool has_weight) {
  const int64_t G = z.dim() == 3 ? z.size(0) : 1;
  cuda::AddNormPlan plan;
  check_cuda_error(cuda::plan_add_norm(G, z.size(-2), z.size(-1), norm_kind(kind), backward,
                                       has_weight, &plan),
                   op);
  TORCH_CHECK_VALUE(plan.fits, op, " (CUDA): z of shape ", shape_str(z.sizes()), " needs ", plan.needed,
                    " ", plan.limit, ", more than the limit of ", plan.available);
  return plan;
}

const float* ptr_or_null(const at::Tensor& t) {
  return t.defined() ? t.const_data_ptr<float>() : nullptr;
}


at::Tensor add_norm_cuda(const at::Tensor& z, const std::optional<at::Tensor>& bias,
                         const std::optional<at::Tensor>& residual,
                         const std::optional<at::Tensor>& norm_weight,
                         const std::optional<at::Tensor>& norm_bias, c10::string_view norm,
                         double eps, at::ScalarType out_dtype) {
  constexpr const char* op = "add_norm";
  const AddNormKind kind =
      check_add_norm_args(z, bias, residual, norm_weight, norm_bias, norm, eps);
  check_add_norm_out_dtype(out_dtype);
  RECPERF_CHECK_DEVICE_TYPE(z, "z", c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard guard(z.device());
  auto out = at::empty(z.sizes(), z.options().dtype(out_dtype));
  if (z.numel() == 0) return out;
  const cuda::AddNormPlan plan = plan_for(op, z, kind, false, norm_weight.has_value());
  const at::Tensor zc = z.contiguous();
  const at::Tensor bias_f = add_norm_param_f32(bias);
  const at::Tensor w = add_norm_param_f32(norm_weight);
  const at::Tensor b = add_norm_param_f32(norm_bias);
  const at::Tensor res = residual ? add_norm_row_operand(*residual) : at::Tensor();
  const int64_t G = z.dim() == 3 ? z.size(0) : 1;
  const cuda::AddNormArgs args{G,
                               z.size(-2),
                               z.size(-1),
                               norm_kind(kind),
                               eps,
                               zc.const_data_ptr<float>(),
                               ptr_or_null(bias_f),
                               res.defined() ? res.const_data_ptr() : nullptr,
                               res.defined() ? kernel_dtype(res.scalar_type())
                                             : cuda::DType::kFloat32,
                               ptr_or_null(w),
                               ptr_or_null(b)};
  check_cuda_error(cuda::launch_add_norm_fwd(plan, args, out.data_ptr(),
                                             kernel_dtype(out_dtype), current_stream(z)),
                   op);
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> add_norm_backward_cuda(
    const at::Tensor& grad, const at::Tensor& z, const std::optional<at::Tensor>& bias,
    const std::optional<at::Tensor>& residual, const std::optional<at::Tensor>& norm_weight,
    c10::string_view norm, double eps) {
  constexpr const char* op = "add_norm_backward";
  const AddNormKind kind =
      check_add_norm_args(z, bias, residual, norm_weight, std::nullopt, norm, eps);
  check_add_norm_grad(grad, z);
  RECPERF_CHECK_DEVICE_TYPE(z, "z", c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard guard(z.device());
  const auto f32 = z.options().dtype(at::kFloat);
  const at::Tensor empty = at::empty({0}, f32);
  if (kind == AddNormKind::kNone) {  // distinct empties: outputs must not alias
    return {at::empty(z.sizes(), f32).copy_(grad), empty, at::empty({0}, f32)};
  }
  const std::vector<int64_t> param = add_norm_param_shape(z);
  auto dh = at::empty(z.sizes(), f32);
  if (z.numel() == 0) {
    return {dh, norm_weight ? at::zeros(param, f32) : empty,
            kind == AddNormKind::kLayer ? at::zeros(param, f32) : at::empty({0}, f32)};
  }
  const cuda::AddNormPlan plan = plan_for(op, z, kind, true, norm_weight.has_value());
  const int64_t G = z.dim() == 3 ? z.size(0) : 1, N = z.size(-1);
  const at::Tensor dw_part =
      norm_weight ? at::empty({G, plan.partial_rows, N}, f32) : at::Tensor();
  const at::Tensor db_part =
      kind == AddNormKind::kLayer ? at::empty({G, plan.partial_rows, N}, f32) : at::Tensor();
  const at::Tensor zc = z.contiguous();
  const at::Tensor bias_f = add_norm_param_f32(bias);
  const at::Tensor w = add_norm_param_f32(norm_weight);
  const at::Tensor res = residual ? add_norm_row_operand(*residual) : at::Tensor();
  const at::Tensor g = add_norm_row_operand(grad);
  const cuda::AddNormArgs args{G,
                               z.size(-2),
                               N,
                               norm_kind(kind),
                               eps,
                               zc.const_data_ptr<float>(),
                               ptr_or_null(bias_f),
                               res.defined() ? res.const_data_ptr() : nullptr,
                               res.defined() ? kernel_dtype(res.scalar_type())
                                             : cuda::DType::kFloat32,
                               ptr_or_null(w),
                               nullptr};
  check_cuda_error(
      cuda::launch_add_norm_bwd(plan, args, g.const_data_ptr(), kernel_dtype(g.scalar_type()),
                                dh.data_ptr<float>(),
                                dw_part.defined() ? dw_part.data_ptr<float>() : nullptr,
                                db_part.defined() ? db_part.data_ptr<float>() : nullptr,
                                current_stream(z)),
      op);
  // The partials summed over their middle dimension (a deterministic reduction).
  auto d_nw = dw_part.defined() ? dw_part.sum(1).view(param) : empty;
  auto d_nb = db_part.defined() ? db_part.sum(1).view(param) : at::empty({0}, f32);
  return {dh, d_nw, d_nb};
}

}  // namespace

TORCH_LIBRARY_IMPL(recperf_kernels, CUDA, m) {
  m.impl("add_norm", &add_norm_cuda);
  m.impl("add_norm_backward", &add_norm_backward_cuda);
}

}  // namespace recperf
