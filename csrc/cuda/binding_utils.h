// What every CUDA binding needs: the dtype code the torch-free launchers take, the
// current stream, and a CUDA error turned into a Python exception naming the op.
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include "cuda/fm_launch.h"  // DType

namespace recperf::binding {

inline cuda::DType kernel_dtype(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return cuda::DType::kFloat32;
    case at::kBFloat16:
      return cuda::DType::kBFloat16;
    case at::kHalf:
      return cuda::DType::kFloat16;
    default:
      TORCH_CHECK_TYPE(false, "expected float32, bfloat16 or float16, got ", t);
  }
  return cuda::DType::kFloat32;  // unreachable
}

inline cudaStream_t current_stream(const at::Tensor& t) {
  return c10::cuda::getCurrentCUDAStream(t.device().index()).stream();
}

inline void check_cuda_error(cudaError_t err, const char* op) {
  TORCH_CHECK(err == cudaSuccess, op, " (CUDA): ", cudaGetErrorName(err), ": ",
              cudaGetErrorString(err));
}

}  // namespace recperf::binding
