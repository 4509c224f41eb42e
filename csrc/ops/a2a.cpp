// All-to-all helpers: the schema of the public op permute_chunks and of its compiled
// kernel, and the CPU kernel. permute_chunks moves bytes only, so it takes any dtype:
// output chunk i = input chunk order[i], chunks being runs of rows of input [R, ...].
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>

#include "a2a_checks.h"

namespace recperf {
namespace {

// Each thread takes a range of output rows and copies the pieces of the chunks it
// overlaps with one memcpy each: balanced however uneven the chunks are.
at::Tensor permute_chunks_cpu(const at::Tensor& input, const at::Tensor& chunk_sizes,
                              const at::Tensor& order) {
  const ChunkPlan plan = check_permute_chunks(input, chunk_sizes, order);
  RECPERF_CHECK_DEVICE_TYPE(input, "input", c10::DeviceType::CPU);
  auto out = at::empty(input.sizes(), input.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;
  const at::Tensor src = input.contiguous();
  const char* in = static_cast<const char*>(src.const_data_ptr());
  char* dst = static_cast<char*>(out.data_ptr());
  const int64_t rb = row_bytes(src);
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / rb);  // ~64 KiB a task
  at::parallel_for(0, input.size(0), grain, [&](int64_t r0, int64_t r1) {
    auto it = std::upper_bound(plan.dst_start.begin(), plan.dst_start.end(), r0);
    for (size_t i = static_cast<size_t>(it - plan.dst_start.begin()) - 1;
         i < plan.dst_start.size() && plan.dst_start[i] < r1; ++i) {
      const int64_t lo = std::max(r0, plan.dst_start[i]);
      const int64_t hi = std::min(r1, plan.dst_start[i] + plan.rows[i]);
      const int64_t from = plan.src_start[i] + (lo - plan.dst_start[i]);
      std::memcpy(dst + lo * rb, in + from * rb, static_cast<size_t>((hi - lo) * rb));
    }
  });
  return out;
}

}  // namespace

// The public op: device kernels, fake kernel and autograd live in recperf/ops/a2a.py.
TORCH_LIBRARY_FRAGMENT(recperf, m) {
  const std::vector<at::Tag> tags{at::Tag::pt2_compliant_tag};
  m.def("permute_chunks(Tensor input, Tensor chunk_sizes, Tensor order, "
        "str backend=\"auto\") -> Tensor",
        tags);
}

// The compiled kernel: CPU here, CUDA in csrc/cuda/a2a_binding.cpp.
TORCH_LIBRARY_FRAGMENT(recperf_kernels, m) {
  m.def("permute_chunks(Tensor input, Tensor chunk_sizes, Tensor order) -> Tensor");
}

TORCH_LIBRARY_IMPL(recperf_kernels, CPU, m) { m.impl("permute_chunks", &permute_chunks_cpu); }

}  // namespace recperf
