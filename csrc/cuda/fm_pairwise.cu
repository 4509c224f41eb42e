// fm_pairwise on CUDA: out[b, p] = <x_i, x_j> over the pairs (i, j) of
// torch.triu_indices(n, n, offset), offset = include_self ? 0 : 1, and its backward.
//
// Forward: grid (B, upper-triangular tiles of the n x n Gram matrix); a block computes one
// kTile x kTile tile, streaming x's rows of both tile sides through shared memory in
// chunks of kChunk columns, and writes the tile's pairs. Backward: grad_x = S . x with S
// the symmetric matrix of pair gradients (a self pair's diagonal entry is 2 g); grid
// (B, row tiles x column tiles of grad_x), S gathered from grad chunk by chunk.
// No shape limit but the grid's: any n, d.
#include "fm_device.cuh"

namespace recperf::cuda {
namespace detail {
namespace {

constexpr int kTile = 64;   // rows (and columns) of a Gram or grad_x tile
constexpr int kChunk = 32;  // columns of x (forward) or pairs' j (backward) per step

// Index of pair (i, j), i + offset <= j, in triu_indices order.
__device__ __forceinline__ int64_t pair_index(int64_t i, int64_t j, int64_t n, int64_t offset) {
  return i * (n - offset) - i * (i - 1) / 2 + (j - i - offset);
}

// Shared memory (floats) of the forward: Xa, Xb [kTile][ld(kChunk)], C [kTile][ld(kTile)].
constexpr int kFwdLdx = padded_ld(kChunk);
constexpr int kFwdLdc = padded_ld(kTile);
constexpr int kFwdSmemFloats = 2 * kTile * kFwdLdx + kTile * kFwdLdc;

template <typename T>
__global__ void __launch_bounds__(kThreads)
    pairwise_fwd_kernel(const T* __restrict__ x,  // [B, n, d] strided
                        int64_t sx0, int64_t sx1, int64_t sx2,
                        T* __restrict__ out,  // [B, pairs] contiguous
                        int n, int d, int offset, int tiles_per_side) {
  float* Xa = fm_smem;
  float* Xb = Xa + kTile * kFwdLdx;
  float* C = Xb + kTile * kFwdLdx;

  // Upper-triangular tile (ti, tj), ti <= tj, from blockIdx.y in row-major order.
  int ti = 0, rest = static_cast<int>(blockIdx.y);
  while (rest >= tiles_per_side - ti) {
    rest -= tiles_per_side - ti;
    ++ti;
  }
  const int tj = ti + rest;
  const int i0 = ti * kTile, j0 = tj * kTile;
  const int mi = min(kTile, n - i0), mj = min(kTile, n - j0);
  const int64_t b = blockIdx.x;
  const T* xb = x + b * sx0;

  for (int e = threadIdx.x; e < kTile * kFwdLdc; e += kThreads) C[e] = 0.f;
  for (int c0 = 0; c0 < d; c0 += kChunk) {
    const int dc = min(kChunk, d - c0);
    __syncthreads();  // the previous chunk's readers of Xa, Xb are done
    load_tile(Xa, kFwdLdx, xb, sx1, sx2, i0, mi, c0, dc);
    load_tile(Xb, kFwdLdx, xb, sx1, sx2, j0, mj, c0, dc);
    __syncthreads();
    // C += Xa . Xb^T
    block_gemm(mi, mj, dc, Xa, kFwdLdx, 1, Xb, 1, kFwdLdx,
               [&](int i, int j, float v) { C[i * kFwdLdc + j] += v; });
  }
  __syncthreads();

  const int64_t pairs = static_cast<int64_t>(n) * (n + 1 - 2 * offset) / 2;
  T* ob = out + b * pairs;
  for (int e = threadIdx.x; e < mi * mj; e += kThreads) {
    const int i = i0 + e / mj, j = j0 + e % mj;
    if (j - i >= offset)
      ob[pair_index(i, j, n, offset)] = from_f32<T>(C[(i - i0) * kFwdLdc + (j - j0)]);
  }
}

// Shared memory (floats) of the backward: S [kTile][ld(kChunk)], X [kChunk][ld(kTile)],
// C [kTile][ld(kTile)].
constexpr int kBwdLds = padded_ld(kChunk);
constexpr int kBwdLdx = padded_ld(kTile);
constexpr int kBwdSmemFloats = kTile * kBwdLds + kChunk * kBwdLdx + kTile * kBwdLdx;

template <typename T>
__global__ void __launch_bounds__(kThreads)
    pairwise_bwd_kernel(const T* __restrict__ grad,  // [B, pairs] strided
                        int64_t sg0, int64_t sg1,
                        const T* __restrict__ x,  // [B, n, d] strided
                        int64_t sx0, int64_t sx1, int64_t sx2,
                        T* __restrict__ grad_x,  // [B, n, d] contiguous
                        int n, int d, int offset, int col_tiles) {
  float* S = fm_smem;
  float* X = S + kTile * kBwdLds;
  float* C = X + kChunk * kBwdLdx;

  const int i0 = static_cast<int>(blockIdx.y) / col_tiles * kTile;
  const int c0 = static_cast<int>(blockIdx.y) % col_tiles * kTile;
  const int mi = min(kTile, n - i0), mc = min(kTile, d - c0);
  const int64_t b = blockIdx.x;
  const T* xb = x + b * sx0;
  const T* gb = grad + b * sg0;

  for (int e = threadIdx.x; e < kTile * kBwdLdx; e += kThreads) C[e] = 0.f;
  for (int j0 = 0; j0 < n; j0 += kChunk) {
    const int jc = min(kChunk, n - j0);
    __syncthreads();  // the previous chunk's readers of S, X are done
    for (int e = threadIdx.x; e < mi * jc; e += kThreads) {
      const int i = i0 + e / jc, j = j0 + e % jc;
      float s = 0.f;
      if (i == j) {
        if (offset == 0) s = 2.f * to_f32(gb[pair_index(i, i, n, 0) * sg1]);
      } else {
        const int lo = min(i, j), hi = max(i, j);
        s = to_f32(gb[pair_index(lo, hi, n, offset) * sg1]);
      }
      S[(e / jc) * kBwdLds + e % jc] = s;
    }
    load_tile(X, kBwdLdx, xb, sx1, sx2, j0, jc, c0, mc);
    __syncthreads();
    // C += S . X
    block_gemm(mi, mc, jc, S, kBwdLds, 1, X, kBwdLdx, 1,
               [&](int i, int j, float v) { C[i * kBwdLdx + j] += v; });
  }
  __syncthreads();

  T* gxb = grad_x + b * static_cast<int64_t>(n) * d;
  for (int e = threadIdx.x; e < mi * mc; e += kThreads) {
    const int r = e / mc, c = e % mc;
    gxb[static_cast<int64_t>(i0 + r) * d + (c0 + c)] = from_f32<T>(C[r * kBwdLdx + c]);
  }
}

template <typename T>
cudaError_t pairwise_fwd(Strided x, int64_t B, int64_t n, int64_t d, bool include_self,
                         void* out, cudaStream_t stream) {
  const int64_t side = ceil_div(n, kTile);
  const dim3 grid(static_cast<unsigned>(B), static_cast<unsigned>(side * (side + 1) / 2), 1);
  return launch(&pairwise_fwd_kernel<T>, grid, kFwdSmemFloats * sizeof(float), stream,
                static_cast<const T*>(x.data), x.s0, x.s1, x.s2, static_cast<T*>(out),
                static_cast<int>(n), static_cast<int>(d), include_self ? 0 : 1,
                static_cast<int>(side));
}

template <typename T>
cudaError_t pairwise_bwd(Strided grad, Strided x, int64_t B, int64_t n, int64_t d,
                         bool include_self, void* grad_x, cudaStream_t stream) {
  const int64_t col_tiles = ceil_div(d, kTile);
  const auto tiles = static_cast<unsigned>(ceil_div(n, kTile) * col_tiles);
  const dim3 grid(static_cast<unsigned>(B), tiles, 1);
  return launch(&pairwise_bwd_kernel<T>, grid, kBwdSmemFloats * sizeof(float), stream,
                static_cast<const T*>(grad.data), grad.s0, grad.s1,
                static_cast<const T*>(x.data), x.s0, x.s1, x.s2, static_cast<T*>(grad_x),
                static_cast<int>(n), static_cast<int>(d), include_self ? 0 : 1,
                static_cast<int>(col_tiles));
}

}  // namespace
}  // namespace detail

cudaError_t plan_fm_pairwise(int64_t B, int64_t n, int64_t d, bool backward, FmPlan* plan) {
  using namespace detail;
  *plan = FmPlan{};
  const int64_t side = ceil_div(n, kTile);
  const int64_t blocks_y = backward ? side * ceil_div(d, kTile) : side * (side + 1) / 2;
  if (B > kMaxGridX) {
    reject(plan, "examples (blocks in grid dimension x)", B, kMaxGridX);
  } else if (n > kMaxDim || d > kMaxDim) {
    reject(plan, "elements along n or d", n > d ? n : d, kMaxDim);
  } else if (blocks_y > kMaxGridY) {
    reject(plan, "tiles per example (blocks in grid dimension y)", blocks_y, kMaxGridY);
  } else {
    plan->fits = true;
  }
  plan->smem_fwd = kFwdSmemFloats * sizeof(float);
  plan->smem_bwd = kBwdSmemFloats * sizeof(float);
  return cudaSuccess;
}

cudaError_t launch_fm_pairwise_fwd(Strided x, int64_t B, int64_t n, int64_t d,
                                   bool include_self, void* out, DType dtype,
                                   cudaStream_t stream) {
  using namespace detail;
  const int64_t pairs = n * (n + (include_self ? 1 : -1)) / 2;
  if (B == 0 || pairs == 0) return cudaSuccess;
  switch (dtype) {
    case DType::kFloat32:
      return pairwise_fwd<float>(x, B, n, d, include_self, out, stream);
    case DType::kBFloat16:
      return pairwise_fwd<__nv_bfloat16>(x, B, n, d, include_self, out, stream);
    case DType::kFloat16:
      return pairwise_fwd<__half>(x, B, n, d, include_self, out, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t launch_fm_pairwise_bwd(Strided grad, Strided x, int64_t B, int64_t n, int64_t d,
                                   bool include_self, void* grad_x, DType dtype,
                                   cudaStream_t stream) {
  using namespace detail;
  if (B == 0 || n == 0 || d == 0) return cudaSuccess;
  switch (dtype) {
    case DType::kFloat32:
      return pairwise_bwd<float>(grad, x, B, n, d, include_self, grad_x, stream);
    case DType::kBFloat16:
      return pairwise_bwd<__nv_bfloat16>(grad, x, B, n, d, include_self, grad_x, stream);
    case DType::kFloat16:
      return pairwise_bwd<__half>(grad, x, B, n, d, include_self, grad_x, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace recperf::cuda
