// Device helpers shared by the FM kernels (fm_pairwise.cu, fm_projected.cu): dtype
// conversions, a block-wide sum, a block-wide small GEMM over shared memory, and the
// launch wrapper. Torch-free: CUDA headers only.
//
// Conventions: every kernel runs kThreads threads per block; every __syncthreads() and
// every block_sum() is reached by all threads of the block (their loop bounds depend on
// blockIdx and the shape only); all shared memory is the one dynamic array fm_smem.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "fm_launch.h"

namespace recperf::cuda::detail {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr size_t kDefaultSmemBytes = 48 * 1024;  // above it, opt in per kernel

// The dynamic shared memory of every FM kernel, sized at launch.
extern __shared__ float fm_smem[];

__host__ __device__ constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ---------------------------------------------------------------------------------------
// dtypes: fp32 inside, x's dtype outside. Explicit intrinsics: torch builds .cu files with
// __CUDA_NO_HALF_CONVERSIONS__ / __CUDA_NO_BFLOAT16_CONVERSIONS__.

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }

template <typename T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ float from_f32<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ __half from_f32<__half>(float v) {
  return __float2half_rn(v);
}

// Leading dimension of a shared-memory matrix with `cols` columns: odd, so that the rows
// a warp reads at one column fall in distinct banks.
__host__ __device__ constexpr int padded_ld(int cols) { return cols | 1; }

// ---------------------------------------------------------------------------------------
// Block-wide sum: every thread of the block calls it, every thread gets the total (summed
// in a fixed order). red: kWarps floats of shared memory, reused across calls.
__device__ __forceinline__ float block_sum(float v, float* red) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  __syncthreads();  // readers of red from a previous call are done
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  float total = 0.f;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) total += red[w];
  return total;
}

// Mean and 1/sqrt(biased variance + eps) of count values at(e), two passes in fp32.
struct Moments {
  float mean;
  float rstd;
};

template <typename At>
__device__ __forceinline__ Moments block_moments(int64_t count, At at, double eps,
                                                 float* red) {
  float sum = 0.f;
  for (int64_t e = threadIdx.x; e < count; e += kThreads) sum += at(e);
  const float mean = block_sum(sum, red) / static_cast<float>(count);
  float sq = 0.f;
  for (int64_t e = threadIdx.x; e < count; e += kThreads) {
    const float c = at(e) - mean;
    sq = fmaf(c, c, sq);
  }
  const double var = static_cast<double>(block_sum(sq, red)) / static_cast<double>(count);
  return {mean, static_cast<float>(1.0 / sqrt(var + eps))};
}

// ---------------------------------------------------------------------------------------
// Block GEMM: value(i, j) = sum_{kk < K} A(i, kk) * B(kk, j) for i < M, j < N, handed to
// epi(i, j, value) by the one thread that owns (i, j) (ownership depends on M, N only).
// A(i, kk) = A[i * a_rs + kk * a_cs], B(kk, j) = B[kk * b_rs + j * b_cs], in shared
// memory. Each thread computes RM x RN outputs, rows strided by the thread rows and
// columns by the thread columns, so a warp reads consecutive columns of B and a few rows of
// A. No barrier inside: the caller syncs before (operands written) and after (outputs
// read).
template <int RM, int RN, typename Epi>
__device__ __forceinline__ void block_gemm_tiles(int M, int N, int K, const float* A,
                                                 int a_rs, int a_cs, const float* B, int b_rs,
                                                 int b_cs, Epi& epi) {
  const int cols_needed = (N + RN - 1) / RN;
  int tcols = 1;
  while (tcols < cols_needed && tcols < 32) tcols <<= 1;
  const int trows = kThreads / tcols;
  const int tx = static_cast<int>(threadIdx.x) % tcols;
  const int ty = static_cast<int>(threadIdx.x) / tcols;
  for (int m0 = 0; m0 < M; m0 += trows * RM) {
    for (int n0 = 0; n0 < N; n0 += tcols * RN) {
      float acc[RM][RN];
#pragma unroll
      for (int r = 0; r < RM; ++r)
#pragma unroll
        for (int c = 0; c < RN; ++c) acc[r][c] = 0.f;
      for (int kk = 0; kk < K; ++kk) {
        float a[RM], b[RN];
#pragma unroll
        for (int r = 0; r < RM; ++r) {
          const int i = m0 + ty + r * trows;
          a[r] = i < M ? A[i * a_rs + kk * a_cs] : 0.f;
        }
#pragma unroll
        for (int c = 0; c < RN; ++c) {
          const int j = n0 + tx + c * tcols;
          b[c] = j < N ? B[kk * b_rs + j * b_cs] : 0.f;
        }
#pragma unroll
        for (int r = 0; r < RM; ++r)
#pragma unroll
          for (int c = 0; c < RN; ++c) acc[r][c] = fmaf(a[r], b[c], acc[r][c]);
      }
#pragma unroll
      for (int r = 0; r < RM; ++r) {
        const int i = m0 + ty + r * trows;
#pragma unroll
        for (int c = 0; c < RN; ++c) {
          const int j = n0 + tx + c * tcols;
          if (i < M && j < N) epi(i, j, acc[r][c]);
        }
      }
    }
  }
}

// The micro tile shrinks for small outputs so that more threads have work.
template <typename Epi>
__device__ __forceinline__ void block_gemm(int M, int N, int K, const float* A, int a_rs,
                                           int a_cs, const float* B, int b_rs, int b_cs,
                                           Epi epi) {
  const int64_t outputs = static_cast<int64_t>(M) * N;
  if (outputs >= 16 * kThreads) {
    block_gemm_tiles<4, 4>(M, N, K, A, a_rs, a_cs, B, b_rs, b_cs, epi);
  } else if (outputs >= 4 * kThreads) {
    block_gemm_tiles<2, 2>(M, N, K, A, a_rs, a_cs, B, b_rs, b_cs, epi);
  } else {
    block_gemm_tiles<1, 1>(M, N, K, A, a_rs, a_cs, B, b_rs, b_cs, epi);
  }
}

// dst[r * ld + c] = src[(row0 + r) * s1 + (col0 + c) * s2] as fp32, for r < rows, c < cols.
template <typename T>
__device__ __forceinline__ void load_tile(float* dst, int ld, const T* src, int64_t s1,
                                          int64_t s2, int row0, int rows, int col0, int cols) {
  const int count = rows * cols;
  for (int e = threadIdx.x; e < count; e += kThreads) {
    const int r = e / cols, c = e % cols;
    dst[r * ld + c] =
        to_f32(src[static_cast<int64_t>(row0 + r) * s1 + static_cast<int64_t>(col0 + c) * s2]);
  }
}

// ---------------------------------------------------------------------------------------
// Host side.

// Launch kernel on grid x kThreads with smem bytes of dynamic shared memory, opting in
// above the default 48 KB; returns the launch's (or the opt-in's) error.
template <typename... Params, typename... Args>
cudaError_t launch(void (*kernel)(Params...), dim3 grid, size_t smem, cudaStream_t stream,
                   Args... args) {
  if (smem > kDefaultSmemBytes) {
    const cudaError_t err = cudaFuncSetAttribute(
        kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (err != cudaSuccess) return err;
  }
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = dim3(kThreads, 1, 1);
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  config.attrs = nullptr;
  config.numAttrs = 0;
  const cudaError_t err = cudaLaunchKernelEx(&config, kernel, args...);
  if (err != cudaSuccess) return err;
  return cudaGetLastError();
}

// The device's limits that the plans use.
struct DeviceLimits {
  int64_t smem_per_block = 0;  // opt-in maximum of dynamic shared memory per block
  int64_t smem_per_sm = 0;
  int64_t sm_count = 0;
};

inline cudaError_t device_limits(DeviceLimits* limits) {
  int device = 0, smem_block = 0, smem_sm = 0, sms = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err == cudaSuccess)
    err = cudaDeviceGetAttribute(&smem_block, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  if (err == cudaSuccess)
    err = cudaDeviceGetAttribute(&smem_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device);
  if (err == cudaSuccess)
    err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  limits->smem_per_block = smem_block;
  limits->smem_per_sm = smem_sm;
  limits->sm_count = sms;
  return err;
}

// Marks plan as not fitting: `what` needed `needed`, the limit is `available`.
inline void reject(FmPlan* plan, const char* what, int64_t needed, int64_t available) {
  plan->fits = false;
  plan->limit = what;
  plan->needed = needed;
  plan->available = available;
}

constexpr int64_t kMaxGridX = 2147483647;  // blocks in grid dimension x
constexpr int64_t kMaxGridY = 65535;       // ... and y
constexpr int64_t kMaxDim = 2147483647;    // n, d, k are int inside the kernels

}  // namespace recperf::cuda::detail
