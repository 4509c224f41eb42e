// FP8 quantization on CUDA (recperf_kernels::quantize_fp8), bit for bit the arithmetic of
// recperf/ops/fp8_ref.py (see fp8_launch.h).
//
// The kernels see the quantized matrix as L lines of E elements with strides (sl, se): x,
// or x^T for the transposed codes (a view, never a copy); q [L, E] is contiguous.
//   * se == 1 (or any strides but sl == 1): lines_kernel, a warp (E <= 1024) or a block
//     per line: amax over the line (a block reduction), then the cast of the same line
//     (the second read comes from L1/L2); 4 elements a thread when aligned.
//   * sl == 1, se != 1 (x^T of a row-major x, or the rows of a column-major x): the lines
//     are columns in memory. Row-wise, col_amax_kernel takes per-column maxima over
//     32-column x E-split tiles (coalesced along the columns) and merges them with an
//     integer atomicMax; col_cast_kernel then quantizes 32 x 128 tiles, reading along
//     the columns and writing q's rows through shared memory, 4 bytes a lane.
//   * Tensor-wise: tensor_amax_kernel (block maxima, integer atomicMax into one word),
//     then lines_kernel or col_cast_kernel with that amax. No host synchronization.
// amax is carried as the fp32 bits of |x|: their unsigned max is max |x|, and a NaN's
// bits exceed inf's, which exceed every finite value's, so a NaN propagates by itself and
// maxima merge exactly in any order (the atomics are on integers: deterministic).
#include <cuda_fp8.h>

#include <algorithm>

#include "fm_device.cuh"
#include "fp8_launch.h"

namespace recperf::cuda {
namespace detail {
namespace {

template <Fp8Format F>
struct Fp8Traits;
template <>
struct Fp8Traits<Fp8Format::kE4M3> {
  static constexpr float kMax = 448.f;
  static constexpr int kMantissaBits = 3;
  static constexpr int kMinExp = -6;  // exponent of the smallest normal
  static constexpr __nv_fp8_interpretation_t kInterp = __NV_E4M3;
};
template <>
struct Fp8Traits<Fp8Format::kE5M2> {
  static constexpr float kMax = 57344.f;
  static constexpr int kMantissaBits = 2;
  static constexpr int kMinExp = -14;
  static constexpr __nv_fp8_interpretation_t kInterp = __NV_E5M2;
};

__device__ __forceinline__ uint32_t abs_bits(float v) { return __float_as_uint(v) & 0x7fffffffu; }

struct Scales {
  float inv;    // multiplies x
  float scale;  // x ~= q * scale
};

template <Fp8Format F>
__device__ __forceinline__ Scales scales_from_bits(uint32_t amax_bits) {
  const float amax = __uint_as_float(amax_bits);
  if (amax == 0.f) return {1.f, 1.f};
  return {__fdiv_rn(Fp8Traits<F>::kMax, amax), __fdiv_rn(amax, Fp8Traits<F>::kMax)};
}

// The fp8 code of clamp(x * inv, -max, max), rounded to nearest even. The rounding to the
// fp8 grid is explicit and exact (ulp = 2^(max(e, kMinExp) - kMantissaBits), |v| / ulp <
// 2^(kMantissaBits + 1), rintf rounds half to even), so the conversion below is of a
// representable value; the sign comes back from v's bits (tiny negatives give -0).
template <Fp8Format F>
__device__ __forceinline__ uint8_t quantize(float x, float inv) {
  using Tr = Fp8Traits<F>;
  float v = __fmul_rn(x, inv);
  v = v > Tr::kMax ? Tr::kMax : v;  // NaN compares false: it stays NaN
  v = v < -Tr::kMax ? -Tr::kMax : v;
  const uint32_t bits = __float_as_uint(v);
  const uint32_t mag = bits & 0x7fffffffu;
  const int e = max(static_cast<int>(mag >> 23) - 127, Tr::kMinExp);
  const float up = __uint_as_float(static_cast<uint32_t>(127 + Tr::kMantissaBits - e) << 23);
  const float down = __uint_as_float(static_cast<uint32_t>(127 - Tr::kMantissaBits + e) << 23);
  const float r = __fmul_rn(rintf(__fmul_rn(__uint_as_float(mag), up)), down);
  const float signed_r = __uint_as_float(__float_as_uint(r) | (bits & 0x80000000u));
  return static_cast<uint8_t>(__nv_cvt_float_to_fp8(signed_r, __NV_SATFINITE, Tr::kInterp));
}

// VEC consecutive elements as fp32; VEC > 1 needs p aligned to VEC elements.
template <int VEC, typename T>
__device__ __forceinline__ void load_f32(const T* p, float (&out)[VEC]) {
  if constexpr (VEC == 1) {
    out[0] = to_f32(*p);
  } else {
    struct alignas(sizeof(T) * VEC) Pack {
      T v[VEC];
    };
    const Pack pack = *reinterpret_cast<const Pack*>(p);
#pragma unroll
    for (int i = 0; i < VEC; ++i) out[i] = to_f32(pack.v[i]);
  }
}

__device__ __forceinline__ uint32_t warp_max(uint32_t v) {
  return __reduce_max_sync(0xffffffffu, v);
}

// Block-wide max: every thread of the block calls it and gets the result.
__device__ __forceinline__ uint32_t block_max(uint32_t v, uint32_t* red) {
  v = warp_max(v);
  __syncthreads();  // readers of red from a previous call are done
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  uint32_t m = 0;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) m = max(m, red[w]);
  return m;
}

// ---------------------------------------------------------------------------------------
// Lines along memory (se == 1, or general strides): TPR threads per line, 32 or kThreads.

template <typename T, Fp8Format F, int TPR, int VEC>
__global__ void __launch_bounds__(kThreads)
    lines_kernel(const T* __restrict__ x,  // [L, E] strides (sl, se); se == 1 if VEC > 1
                 int64_t L, int64_t E, int64_t sl, int64_t se,
                 const uint32_t* __restrict__ global_amax,  // [1] amax bits, or null: per line
                 uint8_t* __restrict__ q,                   // [L, E] contiguous
                 float* __restrict__ scale) {               // [L], or [1] with global_amax
  static_assert(TPR == 32 || TPR == kThreads, "a warp or a block per line");
  constexpr int kLinesPerBlock = kThreads / TPR;
  __shared__ uint32_t red[kWarps];
  const int lane = static_cast<int>(threadIdx.x) % TPR;
  const int64_t groups = ceil_div(L, kLinesPerBlock);
  for (int64_t group = blockIdx.x; group < groups; group += gridDim.x) {
    const int64_t line = group * kLinesPerBlock + threadIdx.x / TPR;
    const bool active = line < L;  // uniform over a line's threads (always, for TPR 256)
    const T* src = x + (active ? line : 0) * sl;
    uint32_t amax_bits;
    if (global_amax != nullptr) {
      amax_bits = *global_amax;
    } else {
      uint32_t m = 0;
      if (active) {
#pragma unroll 4
        for (int64_t e = static_cast<int64_t>(lane) * VEC; e < E; e += TPR * VEC) {
          float f[VEC];
          load_f32<VEC>(src + e * se, f);
#pragma unroll
          for (int i = 0; i < VEC; ++i) m = max(m, abs_bits(f[i]));
        }
      }
      amax_bits = TPR == 32 ? warp_max(m) : block_max(m, red);
    }
    if (!active) continue;
    const Scales s = scales_from_bits<F>(amax_bits);
    if (lane == 0 && (global_amax == nullptr || line == 0)) scale[global_amax ? 0 : line] = s.scale;
    uint8_t* dst = q + line * E;
#pragma unroll 4
    for (int64_t e = static_cast<int64_t>(lane) * VEC; e < E; e += TPR * VEC) {
      float f[VEC];
      load_f32<VEC>(src + e * se, f);
      if constexpr (VEC == 4) {
        uint32_t word = 0;
#pragma unroll
        for (int i = 0; i < 4; ++i)
          word |= static_cast<uint32_t>(quantize<F>(f[i], s.inv)) << (8 * i);
        *reinterpret_cast<uint32_t*>(dst + e) = word;
      } else {
#pragma unroll
        for (int i = 0; i < VEC; ++i) dst[e + i] = quantize<F>(f[i], s.inv);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// Lines across memory (sl == 1): x's element (l, e) is x[e * se + l].

constexpr int kColTileL = 32;                      // lines of a tile: one a lane
constexpr int kColRows = kThreads / kColTileL;     // elements read at once (one a warp)
constexpr int kCastTileE = 128;                    // elements of a cast tile
constexpr int kTileWords = kCastTileE / 4 + 1;     // a tile line in 4-byte words, padded

template <typename T>
__global__ void __launch_bounds__(kThreads)
    col_amax_kernel(const T* __restrict__ x,  // [L, E] strides (1, se)
                    int64_t L, int64_t E, int64_t se,
                    int64_t e_chunk,            // elements per blockIdx.y
                    uint32_t* __restrict__ amax) {  // [L] bits, zero-filled
  __shared__ uint32_t red[kColRows][kColTileL + 1];
  const int tx = static_cast<int>(threadIdx.x) % kColTileL;
  const int ty = static_cast<int>(threadIdx.x) / kColTileL;
  const int64_t l = static_cast<int64_t>(blockIdx.x) * kColTileL + tx;
  const int64_t e_begin = static_cast<int64_t>(blockIdx.y) * e_chunk;
  const int64_t e_end = min(E, e_begin + e_chunk);
  uint32_t m = 0;
  if (l < L) {
#pragma unroll 4
    for (int64_t e = e_begin + ty; e < e_end; e += kColRows)
      m = max(m, abs_bits(to_f32(x[e * se + l])));
  }
  red[ty][tx] = m;
  __syncthreads();
  if (ty == 0 && l < L) {
#pragma unroll
    for (int r = 1; r < kColRows; ++r) m = max(m, red[r][tx]);
    atomicMax(amax + l, m);
  }
}

template <typename T, Fp8Format F>
__global__ void __launch_bounds__(kThreads)
    col_cast_kernel(const T* __restrict__ x,  // [L, E] strides (1, se)
                    int64_t L, int64_t E, int64_t se,
                    const uint32_t* __restrict__ amax,  // [L] bits (rowwise), else [1]
                    bool rowwise,
                    uint8_t* __restrict__ q,     // [L, E] contiguous
                    float* __restrict__ scale) {  // [L] (rowwise), else [1]
  __shared__ uint32_t tile_words[kColTileL][kTileWords];  // codes [line][element], padded
  uint8_t* tile = reinterpret_cast<uint8_t*>(tile_words);
  constexpr int kTileLineBytes = 4 * kTileWords;
  const int tx = static_cast<int>(threadIdx.x) % kColTileL;
  const int ty = static_cast<int>(threadIdx.x) / kColTileL;
  const int64_t e0 = static_cast<int64_t>(blockIdx.x) * kCastTileE;
  const int64_t line_tiles = ceil_div(L, kColTileL);
  const int elems = static_cast<int>(min(static_cast<int64_t>(kCastTileE), E - e0));
  const bool word_stores = E % 4 == 0 && elems == kCastTileE;  // aligned, full-width rows
  for (int64_t lt = blockIdx.y; lt < line_tiles; lt += gridDim.y) {
    const int64_t l0 = lt * kColTileL, l = l0 + tx;
    const Scales s = scales_from_bits<F>(l < L ? amax[rowwise ? l : 0] : 0u);
    if (blockIdx.x == 0 && ty == 0 && l < L && (rowwise || l == 0)) scale[l] = s.scale;
    // A warp reads 32 consecutive lines of one element; each thread keeps its line's inv.
#pragma unroll 4
    for (int c = ty; c < kCastTileE; c += kColRows) {
      uint8_t code = 0;
      if (l < L && c < elems) code = quantize<F>(to_f32(x[(e0 + c) * se + l]), s.inv);
      tile[tx * kTileLineBytes + c] = code;
    }
    __syncthreads();
    // A warp writes whole lines of q: 4 bytes a lane (128 contiguous bytes), or bytes.
    const int lines = static_cast<int>(min(static_cast<int64_t>(kColTileL), L - l0));
    for (int r = ty; r < lines; r += kColRows) {
      uint8_t* dst = q + (l0 + r) * E + e0;
      if (word_stores) {
        reinterpret_cast<uint32_t*>(dst)[tx] = tile_words[r][tx];
      } else {
        for (int c = tx; c < elems; c += kColTileL) dst[c] = tile[r * kTileLineBytes + c];
      }
    }
    __syncthreads();  // the tile is rewritten by the next line tile
  }
}

// ---------------------------------------------------------------------------------------
// The tensor's amax over a [A, B] view with strides (sa, sb).

template <typename T>
__global__ void __launch_bounds__(kThreads)
    tensor_amax_kernel(const T* __restrict__ x,  // [A, B] strides (sa, sb)
                       int64_t A, int64_t B, int64_t sa, int64_t sb,
                       bool dense,                       // sb == 1 and sa == B: one flat run
                       uint32_t* __restrict__ amax) {    // [1] bits, zero-filled
  __shared__ uint32_t red[kWarps];
  uint32_t m = 0;
  if (dense) {
    const int64_t n = A * B, step = static_cast<int64_t>(gridDim.x) * kThreads;
#pragma unroll 4
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < n; i += step)
      m = max(m, abs_bits(to_f32(x[i])));
  } else {  // a warp per row of the view, its lanes along the row
    const int lane = static_cast<int>(threadIdx.x) & 31;
    const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarps;
    for (int64_t a = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32; a < A;
         a += warps) {
#pragma unroll 4
      for (int64_t b = lane; b < B; b += 32) m = max(m, abs_bits(to_f32(x[a * sa + b * sb])));
    }
  }
  m = block_max(m, red);
  if (threadIdx.x == 0) atomicMax(amax, m);
}

// ---------------------------------------------------------------------------------------
// Host side.

// The quantized matrix as lines: L lines of E elements, strides (sl, se).
struct Lines {
  int64_t L, E, sl, se;
  bool across;  // sl == 1 != se: the lines are columns in memory
};

Lines lines_of(const Fp8Problem& p) {
  Lines v = p.transposed ? Lines{p.K, p.M, p.s1, p.s0, false} : Lines{p.M, p.K, p.s0, p.s1, false};
  v.across = v.se != 1 && v.sl == 1 && v.E > 1;
  return v;
}

template <typename T, Fp8Format F>
cudaError_t launch_typed(const Fp8Problem& p, const T* x, uint8_t* q, float* scale,
                         uint32_t* ws, cudaStream_t stream) {
  const Lines v = lines_of(p);
  DeviceLimits limits;
  cudaError_t err = device_limits(&limits);
  if (err != cudaSuccess) return err;
  const int64_t sms = limits.sm_count;
  const int64_t resident = 8 * sms;  // blocks of kThreads that fill the device

  const uint32_t* global_amax = nullptr;
  if (!p.rowwise) {  // the tensor's amax into ws[0]
    // The view with the unit (smaller) stride inside.
    const bool swap = v.sl < v.se;
    const int64_t A = swap ? v.E : v.L, B = swap ? v.L : v.E;
    const int64_t sa = swap ? v.se : v.sl, sb = swap ? v.sl : v.se;
    const bool dense = (sb == 1 && sa == B) || (A == 1 && sb == 1);
    const int64_t work = dense ? ceil_div(A * B, kThreads * 4) : ceil_div(A, kWarps);
    const int64_t blocks = std::max<int64_t>(1, std::min(work, resident));
    err = launch(tensor_amax_kernel<T>, dim3(static_cast<unsigned>(blocks)), 0, stream, x, A,
                 B, sa, sb, dense, ws);
    if (err != cudaSuccess) return err;
    global_amax = ws;
  }

  if (v.across) {
    if (p.rowwise) {  // per-line maxima into ws[0, L)
      const int64_t line_tiles = ceil_div(v.L, kColTileL);
      const int64_t want = std::max<int64_t>(1, ceil_div(2 * resident, line_tiles));
      const int64_t splits = std::min<int64_t>({want, ceil_div(v.E, 4 * kColRows), 65535});
      const int64_t e_chunk = ceil_div(v.E, splits);
      const dim3 grid(static_cast<unsigned>(line_tiles),
                      static_cast<unsigned>(ceil_div(v.E, e_chunk)));
      err = launch(col_amax_kernel<T>, grid, 0, stream, x, v.L, v.E, v.se, e_chunk, ws);
      if (err != cudaSuccess) return err;
    }
    const dim3 grid(static_cast<unsigned>(ceil_div(v.E, kCastTileE)),
                    static_cast<unsigned>(std::min<int64_t>(ceil_div(v.L, kColTileL), 65535)));
    return launch(col_cast_kernel<T, F>, grid, 0, stream, x, v.L, v.E, v.se,
                  static_cast<const uint32_t*>(ws), p.rowwise, q, scale);
  }

  const bool vec = v.se == 1 && v.E % 4 == 0 && v.sl % 4 == 0 &&
                   reinterpret_cast<uintptr_t>(x) % (4 * sizeof(T)) == 0;
  const bool warp_per_line = v.E <= 1024;
  const int64_t groups = warp_per_line ? ceil_div(v.L, kWarps) : v.L;
  const dim3 grid(static_cast<unsigned>(std::min(groups, resident)));
  const auto go = [&](auto kernel) {
    return launch(kernel, grid, 0, stream, x, v.L, v.E, v.sl, v.se, global_amax, q, scale);
  };
  if (warp_per_line) {
    return vec ? go(lines_kernel<T, F, 32, 4>) : go(lines_kernel<T, F, 32, 1>);
  }
  return vec ? go(lines_kernel<T, F, kThreads, 4>) : go(lines_kernel<T, F, kThreads, 1>);
}

template <typename T>
cudaError_t launch_dtype(const Fp8Problem& p, uint8_t* q, float* scale, uint32_t* ws,
                         cudaStream_t stream) {
  const T* x = static_cast<const T*>(p.x);
  return p.format == Fp8Format::kE4M3
             ? launch_typed<T, Fp8Format::kE4M3>(p, x, q, scale, ws, stream)
             : launch_typed<T, Fp8Format::kE5M2>(p, x, q, scale, ws, stream);
}

}  // namespace
}  // namespace detail

int64_t quantize_fp8_workspace_words(const Fp8Problem& p) {
  if (!p.rowwise) return 1;
  const detail::Lines v = detail::lines_of(p);
  return v.across ? v.L : 0;
}

cudaError_t launch_quantize_fp8(const Fp8Problem& p, uint8_t* q, float* scale,
                                uint32_t* workspace, cudaStream_t stream) {
  const int64_t words = quantize_fp8_workspace_words(p);
  if (words > 0) {
    const cudaError_t err =
        cudaMemsetAsync(workspace, 0, static_cast<size_t>(words) * sizeof(uint32_t), stream);
    if (err != cudaSuccess) return err;
  }
  switch (p.dtype) {
    case DType::kFloat32:
      return detail::launch_dtype<float>(p, q, scale, workspace, stream);
    case DType::kBFloat16:
      return detail::launch_dtype<__nv_bfloat16>(p, q, scale, workspace, stream);
    case DType::kFloat16:
      return detail::launch_dtype<__half>(p, q, scale, workspace, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace recperf::cuda
