#include "transpose.h"

#include "small_gemm.h"
#include "vec.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define RECPERF_HAVE_AVX512_TRANSPOSE 1
#endif

namespace recperf::cpu {
namespace {

void pack_b_transposed_scalar(const float* A, int64_t lda, int64_t depth, int64_t ncol,
                              float* panels) {
  for (int64_t c0 = 0; c0 < ncol; c0 += kPanelWidth) {
    const int64_t nc = ncol - c0 < kPanelWidth ? ncol - c0 : kPanelWidth;
    for (int64_t p = 0; p < depth; ++p) {
      float* dst = panels + c0 * depth + p * kPanelWidth;
      for (int64_t c = 0; c < kPanelWidth; ++c) dst[c] = c < nc ? A[(c0 + c) * lda + p] : 0.f;
    }
  }
}

#ifdef RECPERF_HAVE_AVX512_TRANSPOSE
#define RECPERF_AVX512 __attribute__((target("arch=x86-64-v4")))

// The first `count` lanes (count <= 16).
RECPERF_AVX512 inline __mmask16 first_lanes(int64_t count) {
  return static_cast<__mmask16>((1u << count) - 1u);
}

// In-place transpose of the 16 x 16 block in rows[], with immediate shuffles only (a
// permute with index vectors held eight index registers and spilled the block):
// interleave 32-bit lanes of row pairs, then 64-bit pairs, then 128-bit lanes twice.
RECPERF_AVX512 inline void transpose16(__m512 r[16]) {
  __m512 t[16];
#pragma GCC unroll 8
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
    t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
  }
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
  }
}

// rows[i] = the first `width` floats of src row i (the rest zero) for i < height, zero after.
RECPERF_AVX512 inline void load_block(const float* src, int64_t ld, int64_t height,
                                      int64_t width, __m512 rows[16]) {
  const __mmask16 mask = first_lanes(width);
#pragma GCC unroll 16
  for (int64_t i = 0; i < 16; ++i)
    rows[i] = i < height ? _mm512_maskz_loadu_ps(mask, src + i * ld) : _mm512_setzero_ps();
}

RECPERF_AVX512 void pack_b_transposed_avx512(const float* A, int64_t lda, int64_t depth,
                                             int64_t ncol, float* panels) {
  __m512 rows[16];
  for (int64_t c0 = 0; c0 < ncol; c0 += kPanelWidth) {
    const int64_t nc = ncol - c0 < kPanelWidth ? ncol - c0 : kPanelWidth;
    float* panel = panels + c0 * depth;
    for (int64_t p0 = 0; p0 < depth; p0 += 16) {
      const int64_t np = depth - p0 < 16 ? depth - p0 : 16;
      load_block(A + c0 * lda + p0, lda, nc, np, rows);
      transpose16(rows);  // row j: A[c0 .. c0 + 15, p0 + j], zero past nc
      // (Unrolled, as every loop over rows[]: indexed by a variable, the block would live
      // on the stack instead of in registers.)
#pragma GCC unroll 16
      for (int64_t j = 0; j < 16; ++j)
        if (j < np) _mm512_storeu_ps(panel + (p0 + j) * kPanelWidth, rows[j]);
    }
  }
}

#endif

}  // namespace

void pack_b_transposed(const float* A, int64_t lda, int64_t depth, int64_t ncol,
                       float* panels) {
#ifdef RECPERF_HAVE_AVX512_TRANSPOSE
  if (cpu_has_avx512()) return pack_b_transposed_avx512(A, lda, depth, ncol, panels);
#endif
  pack_b_transposed_scalar(A, lda, depth, ncol, panels);
}

}  // namespace recperf::cpu
