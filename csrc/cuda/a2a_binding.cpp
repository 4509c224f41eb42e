// CUDA entry point of permute_chunks (recperf_kernels::permute_chunks): the argument checks
// shared with the CPU kernel (ops/a2a_checks.h), device guard and current stream, the chunk
// plan copied to the device, then the torch-free launcher of a2a_permute.cu. Host code
// only: it includes no ATen/cuda header, so it compiles against the headers of any torch.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstring>

#include "cuda/a2a_launch.h"
#include "ops/a2a_checks.h"

namespace recperf {
namespace {

at::Tensor permute_chunks_cuda(const at::Tensor& input, const at::Tensor& chunk_sizes,
                               const at::Tensor& order) {
  const ChunkPlan plan = check_permute_chunks(input, chunk_sizes, order);
  RECPERF_CHECK_DEVICE_TYPE(input, "input", c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard guard(input.device());
  auto out = at::empty(input.sizes(), input.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;
  const at::Tensor src = input.contiguous();
  const auto chunks = static_cast<int64_t>(plan.dst_start.size());
  // [2, chunks]: dst_start then src_start, one asynchronous copy from pinned memory (the
  // host caching allocator keeps the block until the copy is done).
  auto starts = at::empty({2, chunks}, at::TensorOptions().dtype(at::kLong).pinned_memory(true));
  std::memcpy(starts.data_ptr<int64_t>(), plan.dst_start.data(), chunks * sizeof(int64_t));
  std::memcpy(starts.data_ptr<int64_t>() + chunks, plan.src_start.data(),
              chunks * sizeof(int64_t));
  const at::Tensor starts_dev = starts.to(input.device(), /*non_blocking=*/true);
  const cudaError_t err = cuda::launch_permute_chunks(
      src.const_data_ptr(), out.data_ptr(), input.size(0), row_bytes(src),
      starts_dev.const_data_ptr<int64_t>(), starts_dev.const_data_ptr<int64_t>() + chunks,
      chunks, c10::cuda::getCurrentCUDAStream(input.device().index()).stream());
  TORCH_CHECK(err == cudaSuccess, "permute_chunks (CUDA): ", cudaGetErrorName(err), ": ",
              cudaGetErrorString(err));
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(recperf_kernels, CUDA, m) { m.impl("permute_chunks", &permute_chunks_cuda); }

}  // namespace recperf
