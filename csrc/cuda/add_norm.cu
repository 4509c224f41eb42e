// add_norm and add_norm_backward on CUDA: h = (z + bias) + residual, then a layer norm,
// an RMS norm or nothing, all in fp32 (see csrc/ops/add_norm.cpp for the formulas).
//
// A row belongs to a warp (N <= 1024: 8 rows a block) or to a whole block (N > 1024). h
// is staged in shared memory, each thread keeping the columns it owns (c = lane + k * TPR),
// so no barrier guards it; the row's sums are warp shuffles (and, for a block, one fixed-
// order pass over the warps' partials): deterministic. The backward runs a grid of
// (chunks, G): a row slot of a block walks its chunk's rows and accumulates the columns of
// dnorm_weight / dnorm_bias in shared memory, then writes them as one partial row; the
// binding sums the partials (no float atomics anywhere).
#include <algorithm>

#include "add_norm_launch.h"
#include "fm_device.cuh"

namespace recperf::cuda {
namespace detail {

// The dynamic shared memory of the add_norm kernels, sized at launch.
extern __shared__ float add_norm_smem[];

namespace {

// Sum over a row's TPR threads; every one of them gets the total. TPR == kThreads: every
// thread of the block calls it (red: kWarps floats of shared memory, reused across calls).
template <int TPR>
__device__ __forceinline__ float row_sum(float v, float* red) {
  if constexpr (TPR == 32) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
  } else {
    return block_sum(v, red);  // fm_device.cuh: warp shuffles, then the warps in order
  }
}

// Two sums at once (one barrier pair for a block).
template <int TPR>
__device__ __forceinline__ float2 row_sum2(float a, float b, float2* red2) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    a += __shfl_xor_sync(0xffffffffu, a, offset);
    b += __shfl_xor_sync(0xffffffffu, b, offset);
  }
  if constexpr (TPR == 32) {
    return make_float2(a, b);
  } else {
    __syncthreads();  // readers of red2 from a previous call are done
    if ((threadIdx.x & 31) == 0) red2[threadIdx.x >> 5] = make_float2(a, b);
    __syncthreads();
    float2 total = make_float2(0.f, 0.f);
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      total.x += red2[w].x;
      total.y += red2[w].y;
    }
    return total;
  }
}

struct Stats {
  float mean;  // 0 for rms
  float rstd;  // layer: 1 / sqrt(var + eps); rms: 1 / sqrt(mean(h^2) + eps)
};

// h[c] = (z + bias) + residual for the thread's columns; then the row's statistics.
template <typename R, int TPR>
__device__ __forceinline__ Stats load_row(const float* __restrict__ z_row,
                                          const float* __restrict__ bias_g,
                                          const R* __restrict__ res_row, int N, NormKind norm,
                                          double eps, bool active, float* h, float* red) {
  const int lane = static_cast<int>(threadIdx.x) % TPR;
  float acc = 0.f;
  if (active) {
    for (int c = lane; c < N; c += TPR) {
      float v = z_row[c];
      if (bias_g) v += bias_g[c];
      if (res_row) v += to_f32(res_row[c]);
      h[c] = v;
      acc = norm == NormKind::kRms ? fmaf(v, v, acc) : acc + v;
    }
  }
  const float total = row_sum<TPR>(acc, red);
  if (norm == NormKind::kRms) {
    const double ms = static_cast<double>(total) / static_cast<double>(N);
    return {0.f, static_cast<float>(1.0 / sqrt(ms + eps))};
  }
  const float mean = total / static_cast<float>(N);
  float sq = 0.f;
  if (active) {
    for (int c = lane; c < N; c += TPR) {
      const float d = h[c] - mean;
      sq = fmaf(d, d, sq);
    }
  }
  const double var = static_cast<double>(row_sum<TPR>(sq, red)) / static_cast<double>(N);
  return {mean, static_cast<float>(1.0 / sqrt(var + eps))};
}

template <typename R, typename O, int TPR>
__global__ void __launch_bounds__(kThreads)
    add_norm_fwd_kernel(const float* __restrict__ z,     // [rows, N]
                        const float* __restrict__ bias,  // [G, N] or null
                        const R* __restrict__ res,       // [rows, N] or null
                        const float* __restrict__ w,     // [G, N] or null
                        const float* __restrict__ b,     // [G, N] or null
                        int64_t rows, int64_t M, int N, NormKind norm, double eps,
                        O* __restrict__ out) {           // [rows, N]
  constexpr int kRows = kThreads / TPR;
  __shared__ float red[kWarps];
  const int slot = static_cast<int>(threadIdx.x) / TPR;
  const int lane = static_cast<int>(threadIdx.x) % TPR;
  float* h = add_norm_smem + static_cast<int64_t>(slot) * N;
  const int64_t groups = ceil_div(rows, kRows);
  for (int64_t group = blockIdx.x; group < groups; group += gridDim.x) {
    const int64_t r = group * kRows + slot;
    const bool active = r < rows;  // uniform over a row's threads (always, for TPR 256)
    const int64_t g = active ? r / M : 0;
    const float* bias_g = bias ? bias + g * N : nullptr;
    const R* res_row = res && active ? res + r * N : nullptr;
    O* out_row = out + r * N;
    if (norm == NormKind::kNone) {
      if (!active) continue;
      for (int c = lane; c < N; c += TPR) {
        float v = z[r * N + c];
        if (bias_g) v += bias_g[c];
        if (res_row) v += to_f32(res_row[c]);
        out_row[c] = from_f32<O>(v);
      }
      continue;
    }
    const Stats s = load_row<R, TPR>(z + (active ? r : 0) * N, bias_g, res_row, N, norm, eps,
                                     active, h, red);
    if (!active) continue;
    const float* w_g = w ? w + g * N : nullptr;
    const float* b_g = b ? b + g * N : nullptr;
    for (int c = lane; c < N; c += TPR) {
      float y = (h[c] - s.mean) * s.rstd;
      if (w_g) y *= w_g[c];
      if (b_g) y += b_g[c];
      out_row[c] = from_f32<O>(y);
    }
  }
}

template <typename R, typename Gd, int TPR>
__global__ void __launch_bounds__(kThreads)
    add_norm_bwd_kernel(const Gd* __restrict__ grad,   // [G * M, N]
                        const float* __restrict__ z,   // [G * M, N]
                        const float* __restrict__ bias,  // [G, N] or null
                        const R* __restrict__ res,     // [G * M, N] or null
                        const float* __restrict__ w,   // [G, N] or null
                        int64_t M, int N, NormKind norm, double eps, int64_t rows_per_chunk,
                        int64_t partial_rows,
                        float* __restrict__ dh,        // [G * M, N]
                        float* __restrict__ dw_part,   // [G, partial_rows, N] or null
                        float* __restrict__ db_part) {  // [G, partial_rows, N] or null
  constexpr int kRows = kThreads / TPR;
  __shared__ float red[kWarps];
  __shared__ float2 red2[kWarps];
  const int slot = static_cast<int>(threadIdx.x) / TPR;
  const int lane = static_cast<int>(threadIdx.x) % TPR;
  const int64_t n_slots = static_cast<int64_t>(kRows) * N;
  float* h = add_norm_smem + static_cast<int64_t>(slot) * N;
  float* dw_acc = dw_part ? h + n_slots : nullptr;
  float* db_acc = db_part ? h + (dw_part ? 2 : 1) * n_slots : nullptr;
  for (int c = lane; c < N; c += TPR) {
    if (dw_acc) dw_acc[c] = 0.f;
    if (db_acc) db_acc[c] = 0.f;
  }
  const int64_t g = blockIdx.y, chunk = blockIdx.x;
  const int64_t m_end = min(M, (chunk + 1) * rows_per_chunk);
  const float* bias_g = bias ? bias + g * N : nullptr;
  const float* w_g = w ? w + g * N : nullptr;
  const bool layer = norm == NormKind::kLayer;
  // Every slot runs the same number of iterations (block barriers inside for TPR 256).
  const int64_t iters = ceil_div(max(int64_t{0}, m_end - chunk * rows_per_chunk), kRows);
  for (int64_t it = 0; it < iters; ++it) {
    const int64_t m = chunk * rows_per_chunk + it * kRows + slot;
    const bool active = m < m_end;
    const int64_t r = g * M + (active ? m : 0);
    const Stats s = load_row<R, TPR>(z + r * N, bias_g, res ? res + r * N : nullptr, N, norm,
                                     eps, active, h, red);
    const Gd* dy = grad + r * N;
    float sg = 0.f, sgx = 0.f;
    if (active) {
      for (int c = lane; c < N; c += TPR) {
        const float d = to_f32(dy[c]);
        const float gv = w_g ? d * w_g[c] : d;
        const float xhat = (h[c] - s.mean) * s.rstd;
        sg += gv;
        sgx = fmaf(gv, xhat, sgx);
      }
    }
    const float2 sums = row_sum2<TPR>(sg, sgx, red2);
    if (!active) continue;  // the last iteration only: no barrier follows
    const float mean_g = layer ? sums.x / static_cast<float>(N) : 0.f;
    const float mean_gx = sums.y / static_cast<float>(N);
    float* dh_row = dh + r * N;
    for (int c = lane; c < N; c += TPR) {
      const float d = to_f32(dy[c]);
      const float gv = w_g ? d * w_g[c] : d;
      const float xhat = (h[c] - s.mean) * s.rstd;
      dh_row[c] = s.rstd * (gv - mean_g - xhat * mean_gx);
      if (dw_acc) dw_acc[c] = fmaf(d, xhat, dw_acc[c]);
      if (db_acc) db_acc[c] += d;
    }
  }
  const int64_t p = (g * partial_rows + chunk * kRows + slot) * N;
  for (int c = lane; c < N; c += TPR) {
    if (dw_acc) dw_part[p + c] = dw_acc[c];
    if (db_acc) db_part[p + c] = db_acc[c];
  }
}

// Allows `smem` bytes of dynamic shared memory: launch() opts in only above 48 KB of
// dynamic memory, but the kernels' static arrays count against the same 48 KB.
template <typename Kernel>
cudaError_t opt_in(Kernel kernel, int64_t smem) {
  if (smem + 1024 <= static_cast<int64_t>(kDefaultSmemBytes)) return cudaSuccess;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              static_cast<int>(smem));
}

template <typename F>
cudaError_t with_type(DType t, F&& f) {
  switch (t) {
    case DType::kFloat32:
      return f(float());
    case DType::kBFloat16:
      return f(__nv_bfloat16());
    case DType::kFloat16:
      return f(__half());
  }
  return cudaErrorInvalidValue;
}

}  // namespace
}  // namespace detail

cudaError_t plan_add_norm(int64_t G, int64_t M, int64_t N, NormKind norm, bool backward,
                          bool has_weight, AddNormPlan* plan) {
  using namespace detail;
  *plan = AddNormPlan();
  DeviceLimits limits;
  const cudaError_t err = device_limits(&limits);
  if (err != cudaSuccess) return err;
  const auto reject = [&](const char* what, int64_t needed, int64_t available) {
    plan->fits = false;
    plan->limit = what;
    plan->needed = needed;
    plan->available = available;
    return cudaSuccess;
  };
  if (N > kMaxDim) return reject("features (N)", N, kMaxDim);
  if (backward && G > kMaxGridY) return reject("groups (G)", G, kMaxGridY);
  const int tpr = N <= 1024 ? 32 : kThreads;
  const int64_t rows_per_block = kThreads / tpr;
  int64_t arrays = norm == NormKind::kNone ? 0 : 1;  // h
  if (backward) arrays += (has_weight ? 1 : 0) + (norm == NormKind::kLayer ? 1 : 0);
  const int64_t smem = arrays * rows_per_block * N * static_cast<int64_t>(sizeof(float));
  const int64_t smem_limit = limits.smem_per_block - 1024;  // room for the static arrays
  if (smem > smem_limit) return reject("bytes of shared memory per block", smem, smem_limit);
  plan->threads_per_row = tpr;
  plan->smem = smem;
  if (backward) {
    const int64_t max_chunks = std::max<int64_t>(1, ceil_div(M, rows_per_block));
    const int64_t want = ceil_div(2 * limits.sm_count, std::max<int64_t>(G, 1));
    plan->chunks = std::min(max_chunks, std::max<int64_t>(1, want));
    plan->rows_per_chunk = std::max<int64_t>(1, ceil_div(M, plan->chunks));
    plan->chunks = std::max<int64_t>(1, ceil_div(M, plan->rows_per_chunk));
    plan->partial_rows = plan->chunks * rows_per_block;
  }
  plan->fits = true;
  return cudaSuccess;
}

cudaError_t launch_add_norm_fwd(const AddNormPlan& plan, const AddNormArgs& a, void* out,
                                DType out_dtype, cudaStream_t stream) {
  using namespace detail;
  DeviceLimits limits;
  cudaError_t err = device_limits(&limits);
  if (err != cudaSuccess) return err;
  const int64_t rows = a.G * a.M;
  const int tpr = plan.threads_per_row;
  const int64_t groups = ceil_div(rows, kThreads / tpr);
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>(groups, 16 * limits.sm_count)));
  const int N = static_cast<int>(a.N);
  return with_type(a.residual ? a.residual_dtype : DType::kFloat32, [&](auto res_tag) {
    using R = decltype(res_tag);
    return with_type(out_dtype, [&](auto out_tag) {
      using O = decltype(out_tag);
      const auto go = [&](auto kernel) {
        const cudaError_t opt = opt_in(kernel, plan.smem);
        if (opt != cudaSuccess) return opt;
        return launch(kernel, grid, static_cast<size_t>(plan.smem), stream, a.z, a.bias,
                      static_cast<const R*>(a.residual), a.weight, a.norm_bias, rows, a.M, N,
                      a.norm, a.eps, static_cast<O*>(out));
      };
      return tpr == 32 ? go(add_norm_fwd_kernel<R, O, 32>)
                       : go(add_norm_fwd_kernel<R, O, kThreads>);
    });
  });
}

cudaError_t launch_add_norm_bwd(const AddNormPlan& plan, const AddNormArgs& a,
                                const void* grad, DType grad_dtype, float* dh,
                                float* dw_partials, float* db_partials, cudaStream_t stream) {
  using namespace detail;
  if (a.norm == NormKind::kNone) return cudaErrorInvalidValue;  // dh = grad: the caller's
  const dim3 grid(static_cast<unsigned>(plan.chunks), static_cast<unsigned>(a.G));
  const int N = static_cast<int>(a.N);
  return with_type(a.residual ? a.residual_dtype : DType::kFloat32, [&](auto res_tag) {
    using R = decltype(res_tag);
    return with_type(grad_dtype, [&](auto grad_tag) {
      using Gd = decltype(grad_tag);
      const auto go = [&](auto kernel) {
        const cudaError_t opt = opt_in(kernel, plan.smem);
        if (opt != cudaSuccess) return opt;
        return launch(kernel, grid, static_cast<size_t>(plan.smem), stream,
                      static_cast<const Gd*>(grad), a.z, a.bias,
                      static_cast<const R*>(a.residual), a.weight, a.M, N, a.norm, a.eps,
                      plan.rows_per_chunk, plan.partial_rows, dh, dw_partials, db_partials);
      };
      return plan.threads_per_row == 32 ? go(add_norm_bwd_kernel<R, Gd, 32>)
                                        : go(add_norm_bwd_kernel<R, Gd, kThreads>);
    });
  });
}

}  // namespace recperf::cuda
