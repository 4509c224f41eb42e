// CUDA entry point of recperf_kernels::quantize_fp8: the CPU kernel's argument checks
// (ops/checks.h), device guard and current stream, outputs and workspace, then the
// torch-free launcher of fp8_quantize.cu. Host code only: it includes no ATen/cuda header,
// so it compiles against the headers of any torch.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>

#include "cuda/fp8_launch.h"
#include "cuda/binding_utils.h"
#include "ops/checks.h"

namespace recperf {
namespace {

using binding::check_cuda_error;
using binding::current_stream;
using binding::kernel_dtype;


std::tuple<at::Tensor, at::Tensor> quantize_fp8_cuda(const at::Tensor& x,
                                                     c10::string_view granularity,
                                                     at::ScalarType fp8_dtype,
                                                     bool transposed) {
  RECPERF_CHECK_RANK(x, "x", 2);
  RECPERF_CHECK_KERNEL_FLOAT(x, "x");
  RECPERF_CHECK_DEVICE_TYPE(x, "x", c10::DeviceType::CUDA);
  TORCH_CHECK_VALUE(granularity == "row" || granularity == "tensor",
                    "granularity must be 'row' or 'tensor', got '", granularity, "'");
  TORCH_CHECK_TYPE(fp8_dtype == at::kFloat8_e4m3fn || fp8_dtype == at::kFloat8_e5m2,
                   "fp8_dtype must be float8_e4m3fn or float8_e5m2, got ", fp8_dtype);
  const c10::cuda::CUDAGuard guard(x.device());
  const bool per_row = granularity == "row";
  const int64_t M = x.size(0), K = x.size(1);
  const int64_t L = transposed ? K : M, E = transposed ? M : K;
  auto q = at::empty({L, E}, x.options().dtype(fp8_dtype));
  auto scale = per_row ? at::empty({L, 1}, x.options().dtype(at::kFloat))
                       : at::empty({}, x.options().dtype(at::kFloat));
  if (L == 0 || E == 0) return {q, scale.fill_(1.0)};  // amax 0: scale 1, no codes

  const cuda::Fp8Problem problem{
      x.const_data_ptr(),
      M,
      K,
      x.stride(0),
      x.stride(1),
      kernel_dtype(x.scalar_type()),
      fp8_dtype == at::kFloat8_e4m3fn ? cuda::Fp8Format::kE4M3 : cuda::Fp8Format::kE5M2,
      per_row,
      transposed};
  const int64_t words = cuda::quantize_fp8_workspace_words(problem);
  const at::Tensor workspace =
      at::empty({std::max<int64_t>(words, 1)}, x.options().dtype(at::kInt));
  const cudaError_t err = cuda::launch_quantize_fp8(
      problem, static_cast<uint8_t*>(q.data_ptr()), scale.data_ptr<float>(),
      reinterpret_cast<uint32_t*>(workspace.data_ptr<int32_t>()),
      c10::cuda::getCurrentCUDAStream(x.device().index()).stream());
  TORCH_CHECK(err == cudaSuccess, "quantize_fp8 (CUDA): ", cudaGetErrorName(err), ": ",
              cudaGetErrorString(err));
  return {q, scale};
}

}  // namespace

TORCH_LIBRARY_IMPL(recperf_kernels, CUDA, m) { m.impl("quantize_fp8", &quantize_fp8_cuda); }

}  // namespace recperf
