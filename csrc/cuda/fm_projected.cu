// fm_projected and fm_projected_norm on CUDA: F = x . (x^T . P) per example, never forming
// x . x^T, optionally followed by a layer norm over the n*k features; and their backward.
//
// Forward (proj_fwd_kernel): grid (B, column tiles of P); a block holds its kt columns of
// P and of the accumulator F in shared memory and streams x through it in chunks of
// kChunk columns of d: T_c = x[:, c]^T . P[:, tile] (kChunk x kt), F += x[:, c] . T_c, so
// x is read once per column tile. When one tile covers all of k, the norm is fused: a
// block reduction (two passes, fp32) over the block's n*k row. Otherwise F goes to an fp32
// workspace and row_norm_fwd_kernel normalizes each row.
//
// Backward (proj_bwd_kernel), with G = dL/dF: per chunk c of d, for each column tile of P:
// T_c = x_c^T P, gT_c = x_c^T G (chunk-local), grad_x[:, c] += G T_c^T + P gT_c^T, and
// grad_P += x_c gT_c. The grid is fixed (FmPlan::partial_rows blocks, each looping over
// examples), and each block accumulates grad_P in its own fp32 row of a workspace that the
// caller sums: deterministic, no atomics. The norm backward recomputes F into a workspace,
// turns it into dL/dF in place (row_norm_bwd_kernel, which also accumulates grad_weight
// partials), then runs the same backward kernel on it.
//
// Limits (plan_fm_projected, a ValueError before any launch): k and d are tiled (columns of
// P across grid y, d in chunks), so only n is bounded: a block holds all n rows of its
// operands in shared memory, at the narrowest tile (kt = 8) 4 * (51 n + 320) bytes forward
// and 4 * (84 n + 576) backward, i.e. n <= 1133 forward and n <= 684 backward with the
// 227 KB a block may opt into on an H100/H200. Wukong-style FM layers (n of a few hundred
// features) fit; beyond that the triton backend (tiled over n) runs any n.
#include <type_traits>

#include "fm_device.cuh"

namespace recperf::cuda {
namespace detail {
namespace {

constexpr int kChunk = 32;       // columns of d per step
constexpr int kRedFloats = 32;   // block_sum scratch at the start of shared memory
constexpr int kTileCandidates[] = {64, 32, 16, 8};  // columns of P per block, largest first

// Shared-memory layout (offsets in floats) of the forward kernel:
// red [kRedFloats], P [n][ldk], X [n][ldx], Tc [kChunk][ldk], F [n][ldk].
struct FwdLayout {
  int ldk, ldx;
  int64_t p, x, t, f, total;
  __host__ __device__ FwdLayout(int64_t n, int kt)
      : ldk(padded_ld(kt)), ldx(padded_ld(kChunk)), p(kRedFloats), x(p + n * ldk),
        t(x + n * ldx), f(t + int64_t{kChunk} * ldk), total(f + n * ldk) {}
  int64_t bytes() const { return total * static_cast<int64_t>(sizeof(float)); }
};

// ... of the backward kernel: X [n][ldx], GX [n][ldx], P [n][ldk], G [n][ldk],
// Tc [kChunk][ldk], gTc [kChunk][ldk].
struct BwdLayout {
  int ldk, ldx;
  int64_t x, gx, p, g, t, gt, total;
  __host__ __device__ BwdLayout(int64_t n, int kt)
      : ldk(padded_ld(kt)), ldx(padded_ld(kChunk)), x(0), gx(x + n * ldx), p(gx + n * ldx),
        g(p + n * ldk), t(g + n * ldk), gt(t + int64_t{kChunk} * ldk),
        total(gt + int64_t{kChunk} * ldk) {}
  int64_t bytes() const { return total * static_cast<int64_t>(sizeof(float)); }
};

constexpr size_t kRowSmemBytes = kRedFloats * sizeof(float);

// The backward kernel asks for 2 resident blocks per SM (up to 128 registers a thread: at
// the default target of 64, ptxas spills), and its grid is that many blocks per SM at most.
constexpr int kBwdBlocksPerSm = 2;

// out[e] = (f(e) - mean) * rstd * weight[e] + bias[e] for e < count; weight, bias may be null.
template <typename T, typename At>
__device__ __forceinline__ void norm_store(int64_t count, At f, Moments m,
                                           const float* weight, const float* bias, T* out) {
  for (int64_t e = threadIdx.x; e < count; e += kThreads) {
    float y = (f(e) - m.mean) * m.rstd;
    if (weight) y *= weight[e];
    if (bias) y += bias[e];
    out[e] = from_f32<T>(y);
  }
}

enum : int {
  kOutT = 0,     // out: F as T [B, n, k]
  kOutF32 = 1,   // out: F as fp32 [B, n, k] (a workspace)
  kOutNorm = 2,  // out: layer_norm(F) as T [B, n * k]; needs kt_max >= k (one tile)
};

template <typename T, int kMode>
__global__ void __launch_bounds__(kThreads)
    proj_fwd_kernel(const T* __restrict__ x,  // [B, n, d] strided
                    int64_t sx0, int64_t sx1, int64_t sx2,
                    const float* __restrict__ proj,    // [n, k] contiguous
                    const float* __restrict__ weight,  // [n * k] or null (kOutNorm)
                    const float* __restrict__ bias,    // [n * k] or null (kOutNorm)
                    double eps,
                    void* __restrict__ out,  // see kMode, contiguous
                    int n, int d, int k, int kt_max) {
  const FwdLayout L(n, kt_max);
  float* red = fm_smem;
  float* P = fm_smem + L.p;
  float* X = fm_smem + L.x;
  float* Tc = fm_smem + L.t;
  float* F = fm_smem + L.f;

  const int64_t b = blockIdx.x;
  const int k0 = static_cast<int>(blockIdx.y) * kt_max;
  const int kt = min(kt_max, k - k0);
  const T* xb = x + b * sx0;

  load_tile(P, L.ldk, proj, k, 1, 0, n, k0, kt);
  for (int e = threadIdx.x; e < n * L.ldk; e += kThreads) F[e] = 0.f;
  for (int c0 = 0; c0 < d; c0 += kChunk) {
    const int dc = min(kChunk, d - c0);
    __syncthreads();  // the previous chunk's readers of X are done
    load_tile(X, L.ldx, xb, sx1, sx2, 0, n, c0, dc);
    __syncthreads();
    // Tc = X^T . P  (dc x kt)
    block_gemm(dc, kt, n, X, 1, L.ldx, P, L.ldk, 1,
               [&](int i, int j, float v) { Tc[i * L.ldk + j] = v; });
    __syncthreads();
    // F += X . Tc  (n x kt)
    block_gemm(n, kt, dc, X, L.ldx, 1, Tc, L.ldk, 1,
               [&](int i, int j, float v) { F[i * L.ldk + j] += v; });
  }
  __syncthreads();

  if constexpr (kMode == kOutNorm) {
    // kt == k: F is the example's whole row, feature e = i * k + j.
    const int64_t count = static_cast<int64_t>(n) * k;
    auto at = [&](int64_t e) { return F[(e / k) * L.ldk + e % k]; };
    const Moments m = block_moments(count, at, eps, red);
    norm_store(count, at, m, weight, bias, static_cast<T*>(out) + b * count);
  } else {
    using O = std::conditional_t<kMode == kOutF32, float, T>;
    O* ob = static_cast<O*>(out) + b * n * k;
    for (int e = threadIdx.x; e < n * kt; e += kThreads) {
      const int i = e / kt, j = e % kt;
      ob[static_cast<int64_t>(i) * k + k0 + j] = from_f32<O>(F[i * L.ldk + j]);
    }
  }
}

// One block per example: out = layer_norm(f) over the row's count features.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    row_norm_fwd_kernel(const float* __restrict__ f,  // [B, count] fp32
                        const float* __restrict__ weight,  // [count] or null
                        const float* __restrict__ bias,    // [count] or null
                        double eps, T* __restrict__ out,   // [B, count]
                        int64_t count) {
  float* red = fm_smem;
  const int64_t b = blockIdx.x;
  const float* row = f + b * count;
  auto at = [&](int64_t e) { return row[e]; };
  const Moments m = block_moments(count, at, eps, red);
  norm_store(count, at, m, weight, bias, out + b * count);
}

// Layer-norm backward, rows b = blockIdx.x, blockIdx.x + gridDim.x, ...: with
// xhat = (f - mean) * rstd and h = dy * weight, f becomes
// dL/dF = rstd * (h - mean(h) - xhat * mean(h * xhat)), and the block's row of
// gw_partial accumulates dy * xhat. Each thread reads and writes only its own features.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    row_norm_bwd_kernel(float* __restrict__ f,  // [B, count] fp32: F in, dL/dF out
                        const T* __restrict__ grad,  // [B, count] strided: dL/dy
                        int64_t sg0, int64_t sg1,
                        const float* __restrict__ weight,  // [count] or null
                        double eps,
                        float* __restrict__ gw_partial,  // [gridDim.x, count] or null
                        int64_t B, int64_t count) {
  float* red = fm_smem;
  float* gw = gw_partial ? gw_partial + blockIdx.x * count : nullptr;
  for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
    float* row = f + b * count;
    const T* dy = grad + b * sg0;
    const Moments m = block_moments(count, [&](int64_t e) { return row[e]; }, eps, red);
    float h_sum = 0.f, hx_sum = 0.f;
    for (int64_t e = threadIdx.x; e < count; e += kThreads) {
      const float xhat = (row[e] - m.mean) * m.rstd;
      float h = to_f32(dy[e * sg1]);
      if (weight) h *= weight[e];
      h_sum += h;
      hx_sum = fmaf(h, xhat, hx_sum);
    }
    const float h_mean = block_sum(h_sum, red) / static_cast<float>(count);
    const float hx_mean = block_sum(hx_sum, red) / static_cast<float>(count);
    for (int64_t e = threadIdx.x; e < count; e += kThreads) {
      const float xhat = (row[e] - m.mean) * m.rstd;
      const float g = to_f32(dy[e * sg1]);
      const float h = weight ? g * weight[e] : g;
      row[e] = m.rstd * (h - h_mean - xhat * hx_mean);
      if (gw) gw[e] += g * xhat;
    }
  }
}

template <typename T, typename G>
__global__ void __launch_bounds__(kThreads, kBwdBlocksPerSm)
    proj_bwd_kernel(const G* __restrict__ grad,  // [B, n, k] strided: dL/dF
                    int64_t sg0, int64_t sg1, int64_t sg2,
                    const T* __restrict__ x,  // [B, n, d] strided
                    int64_t sx0, int64_t sx1, int64_t sx2,
                    const float* __restrict__ proj,  // [n, k] contiguous
                    T* __restrict__ grad_x,          // [B, n, d] contiguous
                    float* __restrict__ gp_partial,  // [gridDim.x, n * k], zero-filled
                    int64_t B, int n, int d, int k, int kt_max) {
  const BwdLayout L(n, kt_max);
  float* X = fm_smem + L.x;
  float* GX = fm_smem + L.gx;
  float* P = fm_smem + L.p;
  float* Gs = fm_smem + L.g;
  float* Tc = fm_smem + L.t;
  float* gTc = fm_smem + L.gt;
  float* gp = gp_partial + blockIdx.x * static_cast<int64_t>(n) * k;

  for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
    const T* xb = x + b * sx0;
    const G* gb = grad + b * sg0;
    T* gxb = grad_x + b * static_cast<int64_t>(n) * d;
    for (int c0 = 0; c0 < d; c0 += kChunk) {
      const int dc = min(kChunk, d - c0);
      __syncthreads();  // the previous chunk's readers of X and GX are done
      load_tile(X, L.ldx, xb, sx1, sx2, 0, n, c0, dc);
      for (int e = threadIdx.x; e < n * L.ldx; e += kThreads) GX[e] = 0.f;
      for (int k0 = 0; k0 < k; k0 += kt_max) {
        const int kt = min(kt_max, k - k0);
        __syncthreads();  // the previous tile's readers of P, Gs, Tc, gTc are done
        load_tile(P, L.ldk, proj, k, 1, 0, n, k0, kt);
        load_tile(Gs, L.ldk, gb, sg1, sg2, 0, n, k0, kt);
        __syncthreads();
        // Tc = X^T . P, gTc = X^T . G  (dc x kt)
        block_gemm(dc, kt, n, X, 1, L.ldx, P, L.ldk, 1,
                   [&](int i, int j, float v) { Tc[i * L.ldk + j] = v; });
        block_gemm(dc, kt, n, X, 1, L.ldx, Gs, L.ldk, 1,
                   [&](int i, int j, float v) { gTc[i * L.ldk + j] = v; });
        __syncthreads();
        // GX += G . Tc^T + P . gTc^T  (n x dc); both products have the same shape, so one
        // thread owns each element of GX in both.
        block_gemm(n, dc, kt, Gs, L.ldk, 1, Tc, 1, L.ldk,
                   [&](int i, int j, float v) { GX[i * L.ldx + j] += v; });
        block_gemm(n, dc, kt, P, L.ldk, 1, gTc, 1, L.ldk,
                   [&](int i, int j, float v) { GX[i * L.ldx + j] += v; });
        // grad_P[:, k0 : k0 + kt] += X . gTc  (n x kt); the same thread owns an element
        // every time (same shape), so the block's row needs no atomics.
        block_gemm(n, kt, dc, X, L.ldx, 1, gTc, L.ldk, 1, [&](int i, int j, float v) {
          gp[static_cast<int64_t>(i) * k + k0 + j] += v;
        });
      }
      __syncthreads();
      for (int e = threadIdx.x; e < n * dc; e += kThreads) {
        const int i = e / dc, c = e % dc;
        gxb[static_cast<int64_t>(i) * d + c0 + c] = from_f32<T>(GX[i * L.ldx + c]);
      }
    }
  }
}

template <typename F>
cudaError_t dispatch(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kFloat32:
      return f(float{});
    case DType::kBFloat16:
      return f(__nv_bfloat16{});
    case DType::kFloat16:
      return f(__half{});
  }
  return cudaErrorInvalidValue;
}

size_t dtype_size(DType dtype) { return dtype == DType::kFloat32 ? 4 : 2; }

dim3 fwd_grid(const FmPlan& plan, int64_t B, int64_t k) {
  return dim3(static_cast<unsigned>(B), static_cast<unsigned>(ceil_div(k, plan.kt)), 1);
}

// Forward of F into out (T, kOutT) or into an fp32 workspace (kOutF32), tiled by plan.kt.
template <typename T, int kMode>
cudaError_t run_fwd(const FmPlan& plan, Strided x, const float* proj, int64_t B, int64_t n,
                    int64_t d, int64_t k, void* out, cudaStream_t stream) {
  return launch(&proj_fwd_kernel<T, kMode>, fwd_grid(plan, B, k),
                static_cast<size_t>(plan.smem_fwd), stream, static_cast<const T*>(x.data),
                x.s0, x.s1, x.s2, proj, static_cast<const float*>(nullptr),
                static_cast<const float*>(nullptr), 0.0, out, static_cast<int>(n),
                static_cast<int>(d), static_cast<int>(k), plan.kt);
}

template <typename T, typename G>
cudaError_t run_bwd(const FmPlan& plan, const G* grad, int64_t sg0, int64_t sg1, int64_t sg2,
                    Strided x, const float* proj, int64_t B, int64_t n, int64_t d, int64_t k,
                    void* grad_x, float* gp_partials, cudaStream_t stream) {
  return launch(&proj_bwd_kernel<T, G>, dim3(static_cast<unsigned>(plan.partial_rows), 1, 1),
                static_cast<size_t>(plan.smem_bwd), stream, grad, sg0, sg1, sg2,
                static_cast<const T*>(x.data), x.s0, x.s1, x.s2, proj, static_cast<T*>(grad_x),
                gp_partials, B, static_cast<int>(n), static_cast<int>(d), static_cast<int>(k),
                plan.kt_bwd);
}

}  // namespace
}  // namespace detail

cudaError_t plan_fm_projected(int64_t B, int64_t n, int64_t d, int64_t k, FmProjectedOp op,
                              FmPlan* plan) {
  using namespace detail;
  *plan = FmPlan{};
  DeviceLimits dev;
  const cudaError_t err = device_limits(&dev);
  if (err != cudaSuccess) return err;
  if (B > kMaxGridX) {
    reject(plan, "examples (blocks in grid dimension x)", B, kMaxGridX);
    return cudaSuccess;
  }
  if (n > kMaxDim || d > kMaxDim || k > kMaxDim) {
    reject(plan, "elements along n, d or k", n > d ? (n > k ? n : k) : (d > k ? d : k),
           kMaxDim);
    return cudaSuccess;
  }
  const auto tile = [&](int candidate) {
    return static_cast<int>(k < candidate ? (k > 0 ? k : 1) : candidate);
  };

  // Forward: the widest tile of P's columns that fits in shared memory.
  for (int candidate : kTileCandidates) {
    if (FwdLayout(n, tile(candidate)).bytes() <= dev.smem_per_block) {
      plan->kt = tile(candidate);
      break;
    }
  }
  if (plan->kt == 0) {
    reject(plan, "bytes of shared memory per block", FwdLayout(n, tile(8)).bytes(),
           dev.smem_per_block);
    return cudaSuccess;
  }
  if (ceil_div(k, plan->kt) > kMaxGridY) {
    reject(plan, "column tiles of proj (blocks in grid dimension y)", ceil_div(k, plan->kt),
           kMaxGridY);
    return cudaSuccess;
  }
  if (op == FmProjectedOp::kNormFwd && k > 0 &&
      FwdLayout(n, static_cast<int>(k)).bytes() <= dev.smem_per_block) {
    plan->kt = static_cast<int>(k);
    plan->fused_norm = true;
  }
  plan->smem_fwd = FwdLayout(n, plan->kt).bytes();

  if (op == FmProjectedOp::kBwd || op == FmProjectedOp::kNormBwd) {
    for (int candidate : kTileCandidates) {
      if (BwdLayout(n, tile(candidate)).bytes() <= dev.smem_per_block) {
        plan->kt_bwd = tile(candidate);
        break;
      }
    }
    if (plan->kt_bwd == 0) {
      reject(plan, "bytes of shared memory per block", BwdLayout(n, tile(8)).bytes(),
             dev.smem_per_block);
      return cudaSuccess;
    }
    plan->smem_bwd = BwdLayout(n, plan->kt_bwd).bytes();
    // As many blocks as can be resident at once (1 KB of shared memory per block is
    // reserved by the system), each looping over examples.
    int64_t per_sm = dev.smem_per_sm / (plan->smem_bwd + 1024);
    per_sm = per_sm < 1 ? 1 : (per_sm > kBwdBlocksPerSm ? kBwdBlocksPerSm : per_sm);
    const int64_t resident = dev.sm_count * per_sm;
    plan->partial_rows = B < resident ? B : resident;
  }
  plan->fits = true;
  return cudaSuccess;
}

cudaError_t launch_fm_projected_fwd(const FmPlan& plan, Strided x, const float* proj,
                                    int64_t B, int64_t n, int64_t d, int64_t k, void* out,
                                    DType dtype, cudaStream_t stream) {
  using namespace detail;
  if (!plan.fits || plan.kt < 1) return cudaErrorInvalidValue;
  if (B == 0 || n == 0 || k == 0) return cudaSuccess;
  return dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    return run_fwd<T, kOutT>(plan, x, proj, B, n, d, k, out, stream);
  });
}

cudaError_t launch_fm_projected_bwd(const FmPlan& plan, Strided grad, Strided x,
                                    const float* proj, int64_t B, int64_t n, int64_t d,
                                    int64_t k, void* grad_x, float* grad_proj_partials,
                                    DType dtype, cudaStream_t stream) {
  using namespace detail;
  if (!plan.fits || plan.kt_bwd < 1) return cudaErrorInvalidValue;
  if (B == 0 || n == 0 || d == 0) return cudaSuccess;
  if (k == 0) return cudaMemsetAsync(grad_x, 0, B * n * d * dtype_size(dtype), stream);
  return dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    return run_bwd<T, T>(plan, static_cast<const T*>(grad.data), grad.s0, grad.s1, grad.s2, x,
                         proj, B, n, d, k, grad_x, grad_proj_partials, stream);
  });
}

cudaError_t launch_fm_projected_norm_fwd(const FmPlan& plan, Strided x, const float* proj,
                                         const float* weight, const float* bias, double eps,
                                         int64_t B, int64_t n, int64_t d, int64_t k,
                                         void* out, float* f_workspace, DType dtype,
                                         cudaStream_t stream) {
  using namespace detail;
  if (!plan.fits || plan.kt < 1) return cudaErrorInvalidValue;
  if (B == 0 || n == 0 || k == 0) return cudaSuccess;
  return dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    if (plan.fused_norm) {
      return launch(&proj_fwd_kernel<T, kOutNorm>, fwd_grid(plan, B, k),
                    static_cast<size_t>(plan.smem_fwd), stream,
                    static_cast<const T*>(x.data), x.s0, x.s1, x.s2, proj, weight, bias, eps,
                    out, static_cast<int>(n), static_cast<int>(d), static_cast<int>(k),
                    plan.kt);
    }
    cudaError_t err = run_fwd<T, kOutF32>(plan, x, proj, B, n, d, k, f_workspace, stream);
    if (err != cudaSuccess) return err;
    return launch(&row_norm_fwd_kernel<T>, dim3(static_cast<unsigned>(B), 1, 1),
                  kRowSmemBytes, stream, static_cast<const float*>(f_workspace), weight,
                  bias, eps, static_cast<T*>(out), n * k);
  });
}

cudaError_t launch_fm_projected_norm_bwd(const FmPlan& plan, Strided grad, Strided x,
                                         const float* proj, const float* weight, double eps,
                                         int64_t B, int64_t n, int64_t d, int64_t k,
                                         void* grad_x, float* f_workspace,
                                         float* grad_proj_partials,
                                         float* grad_weight_partials, DType dtype,
                                         cudaStream_t stream) {
  using namespace detail;
  if (!plan.fits || plan.kt < 1 || plan.kt_bwd < 1 || plan.fused_norm)
    return cudaErrorInvalidValue;
  if (B == 0 || n == 0 || d == 0) return cudaSuccess;
  if (k == 0) return cudaMemsetAsync(grad_x, 0, B * n * d * dtype_size(dtype), stream);
  return dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    // F (fp32), then dL/dF in place, then the projected backward on it.
    cudaError_t err = run_fwd<T, kOutF32>(plan, x, proj, B, n, d, k, f_workspace, stream);
    if (err != cudaSuccess) return err;
    err = launch(&row_norm_bwd_kernel<T>, dim3(static_cast<unsigned>(plan.partial_rows), 1, 1),
                 kRowSmemBytes, stream, f_workspace, static_cast<const T*>(grad.data), grad.s0,
                 grad.s1, weight, eps, grad_weight_partials, B, n * k);
    if (err != cudaSuccess) return err;
    return run_bwd<T, float>(plan, static_cast<const float*>(f_workspace), n * k, k, 1, x,
                             proj, B, n, d, k, grad_x, grad_proj_partials, stream);
  });
}

}  // namespace recperf::cuda
