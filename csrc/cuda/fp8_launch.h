// Launcher of the FP8 quantization CUDA kernels (fp8_quantize.cu): a torch-free interface
// (raw pointers, sizes and strides in elements, a stream), so that the kernels compile with
// plain nvcc and the torch binding (fp8_binding.cpp) with the host compiler.
//
// The arithmetic is recperf/ops/fp8_ref.py's, bit for bit: amax = max |x| in fp32 (NaN if
// a NaN is there), inv = fp8_max / amax and scale = amax / fp8_max by IEEE divisions (both
// 1 when amax == 0), v = x * inv (IEEE), clamped to [-fp8_max, fp8_max] keeping NaN,
// rounded to the fp8 grid to nearest even.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "fm_launch.h"  // DType

namespace recperf::cuda {

enum class Fp8Format : int { kE4M3 = 0, kE5M2 = 1 };

// What one quantization reads and writes. The quantized matrix has L lines of E elements:
// x [M, K] itself (L = M), or, `transposed`, x^T (L = K: the codes of x^T, one scale per
// column of x). x may have any strides (s0, s1); q [L, E] is contiguous.
struct Fp8Problem {
  const void* x;     // [M, K], strides (s0, s1) in elements
  int64_t M, K, s0, s1;
  DType dtype;       // x's dtype
  Fp8Format format;  // the codes' format
  bool rowwise;      // one scale per line ("row"), else one for the tensor
  bool transposed;
};

// uint32 words of workspace launch_quantize_fp8 needs (0: pass null); the launcher
// zero-fills it on the stream. Depends on the problem's shape, strides and flags only.
int64_t quantize_fp8_workspace_words(const Fp8Problem& p);

// q: [L, E] bytes (fp8 codes); scale: [L] fp32 (rowwise) or [1]. L, E >= 1.
// Returns the first CUDA error met (cudaSuccess when none).
cudaError_t launch_quantize_fp8(const Fp8Problem& p, uint8_t* q, float* scale,
                                uint32_t* workspace, cudaStream_t stream);

}  // namespace recperf::cuda
