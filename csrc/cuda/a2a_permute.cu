// permute_chunks on CUDA: a byte copy of row chunks in a new order (see a2a_launch.h).
//
// One thread per output word, grid-stride: the widest word (16, 8, 4, 2 or 1 bytes) that
// divides the row and both pointers' alignment, so every access is a vector access and
// consecutive threads touch consecutive words of both matrices (coalesced). A thread finds
// its row's chunk by binary search over dst_start (a few cached loads: the chunk count is a
// world size, not a row count).
#include <algorithm>

#include "a2a_launch.h"

namespace recperf::cuda {
namespace detail {
namespace {

constexpr int kThreads = 256;

struct alignas(16) Word16 {
  uint4 v;
};

template <typename Word>
__global__ void __launch_bounds__(kThreads)
    permute_rows_kernel(const Word* __restrict__ in,          // [rows, words] contiguous
                        Word* __restrict__ out,               // [rows, words] contiguous
                        int64_t rows, int64_t words,
                        const int64_t* __restrict__ dst_start,  // [chunks] ascending
                        const int64_t* __restrict__ src_start,  // [chunks]
                        int64_t chunks) {
  const int64_t total = rows * words;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t g = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; g < total;
       g += stride) {
    const int64_t r = g / words;
    const int64_t c = g - r * words;
    int64_t lo = 0, hi = chunks - 1;  // the last chunk with dst_start <= r
    while (lo < hi) {
      const int64_t mid = (lo + hi + 1) >> 1;
      if (__ldg(dst_start + mid) <= r) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    const int64_t src_row = __ldg(src_start + lo) + (r - __ldg(dst_start + lo));
    out[g] = in[src_row * words + c];
  }
}

template <typename Word>
cudaError_t launch(const void* input, void* output, int64_t rows, int64_t row_bytes,
                   const int64_t* dst_start, const int64_t* src_start, int64_t chunks,
                   cudaStream_t stream) {
  const int64_t words = row_bytes / static_cast<int64_t>(sizeof(Word));
  int device = 0, sms = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (err != cudaSuccess) return err;
  const int64_t blocks_needed = (rows * words + kThreads - 1) / kThreads;
  const int blocks = static_cast<int>(std::min<int64_t>(blocks_needed, int64_t{sms} * 8));
  permute_rows_kernel<Word><<<blocks, kThreads, 0, stream>>>(
      static_cast<const Word*>(input), static_cast<Word*>(output), rows, words, dst_start,
      src_start, chunks);
  return cudaGetLastError();
}

}  // namespace
}  // namespace detail

cudaError_t launch_permute_chunks(const void* input, void* output, int64_t rows,
                                  int64_t row_bytes, const int64_t* dst_start,
                                  const int64_t* src_start, int64_t chunks,
                                  cudaStream_t stream) {
  const auto aligned = [&](int64_t w) {
    return row_bytes % w == 0 && reinterpret_cast<uintptr_t>(input) % w == 0 &&
           reinterpret_cast<uintptr_t>(output) % w == 0;
  };
  using detail::launch;
  if (aligned(16)) {
    return launch<detail::Word16>(input, output, rows, row_bytes, dst_start, src_start, chunks,
                                  stream);
  }
  if (aligned(8)) {
    return launch<uint64_t>(input, output, rows, row_bytes, dst_start, src_start, chunks,
                            stream);
  }
  if (aligned(4)) {
    return launch<uint32_t>(input, output, rows, row_bytes, dst_start, src_start, chunks,
                            stream);
  }
  if (aligned(2)) {
    return launch<uint16_t>(input, output, rows, row_bytes, dst_start, src_start, chunks,
                            stream);
  }
  return launch<uint8_t>(input, output, rows, row_bytes, dst_start, src_start, chunks, stream);
}

}  // namespace recperf::cuda
