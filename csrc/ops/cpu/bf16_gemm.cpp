#include "bf16_gemm.h"

#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace recperf::cpu {

namespace {

constexpr int64_t kPanel = 32;  // columns per panel: two 16-lane fp32 accumulators
constexpr int kMaxRows = 8;     // rows per micro-tile: 16 accumulators of 32 registers

#define RECPERF_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

// Rows [0, MR) x one panel: acc = sum over k pairs of a pair . b pair, then a masked store.
template <int MR>
RECPERF_BF16_TARGET void micro_tile(const uint16_t* a, int64_t lda, const uint16_t* panel,
                                    int64_t K, float* c, int64_t ldc, __mmask16 m0,
                                    __mmask16 m1) {
  __m512 acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  const int64_t full_pairs = K / 2;
  for (int64_t p = 0; p < full_pairs; ++p) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(panel + p * 2 * kPanel);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(panel + p * 2 * kPanel + kPanel);
    for (int i = 0; i < MR; ++i) {
      int32_t pair;
      std::memcpy(&pair, a + i * lda + 2 * p, sizeof(pair));
      const __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], av, b0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], av, b1);
    }
  }
  if (K % 2) {  // the last k alone: its pair's upper half is 0 in a and in the panel
    const int64_t p = full_pairs;
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(panel + p * 2 * kPanel);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(panel + p * 2 * kPanel + kPanel);
    for (int i = 0; i < MR; ++i) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int32_t>(a[i * lda + K - 1]));
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], av, b0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], av, b1);
    }
  }
  for (int i = 0; i < MR; ++i) {
    _mm512_mask_storeu_ps(c + i * ldc, m0, acc[i][0]);
    _mm512_mask_storeu_ps(c + i * ldc + 16, m1, acc[i][1]);
  }
}

using TileFn = void (*)(const uint16_t*, int64_t, const uint16_t*, int64_t, float*, int64_t,
                        __mmask16, __mmask16);
constexpr TileFn kTiles[kMaxRows] = {micro_tile<1>, micro_tile<2>, micro_tile<3>,
                                     micro_tile<4>, micro_tile<5>, micro_tile<6>,
                                     micro_tile<7>, micro_tile<8>};

__mmask16 lanes(int64_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

}  // namespace

bool use_bf16_instructions() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
  }();
  const char* flag = std::getenv("RECPERF_CPU_BF16_INSTRUCTIONS");
  return has && !(flag && std::string_view(flag) == "0");
#else
  return false;
#endif
}

void pack_bf16_b(const uint16_t* b, int64_t stride_k, int64_t stride_n, int64_t K, int64_t N,
                 Bf16PackedB& out) {
  out.K = K, out.N = N, out.pairs = (K + 1) / 2, out.panels = (N + kPanel - 1) / kPanel;
  out.data.assign(out.panels * out.pairs * 2 * kPanel, 0);
  for (int64_t q = 0; q < out.panels; ++q) {
    uint16_t* panel = out.data.data() + q * out.pairs * 2 * kPanel;
    const int64_t n0 = q * kPanel, cols = std::min(kPanel, N - n0);
    for (int64_t k = 0; k < K; ++k) {
      uint16_t* dst = panel + (k / 2) * 2 * kPanel + (k % 2);
      const uint16_t* src = b + k * stride_k + n0 * stride_n;
      for (int64_t j = 0; j < cols; ++j) dst[2 * j] = src[j * stride_n];
    }
  }
}

void bf16_gemm_rows(const uint16_t* a, int64_t lda, const Bf16PackedB& b, float* c,
                    int64_t ldc, int64_t rows) {
  for (int64_t q = 0; q < b.panels; ++q) {
    const uint16_t* panel = b.data.data() + q * b.pairs * 2 * kPanel;
    const int64_t cols = b.N - q * kPanel;
    const __mmask16 m0 = lanes(cols), m1 = lanes(cols - 16);
    for (int64_t i = 0; i < rows; i += kMaxRows) {
      const int64_t mr = std::min<int64_t>(kMaxRows, rows - i);
      kTiles[mr - 1](a + i * lda, lda, panel, b.K, c + i * ldc + q * kPanel, ldc, m0, m1);
    }
  }
}

}  // namespace recperf::cpu
