#include "small_gemm.h"

#include "gemm_tiles.h"
#include "transpose.h"
#include "vec.h"

namespace recperf::cpu {
namespace {

using tiles::row_block;

// All rows of C in blocks of ROWS, then one block of the remaining m % ROWS rows.
// diag0 is the row of C's first row in the whole product (for upper_only).
template <int ROWS, bool WIDE>
RECPERF_ALWAYS_INLINE void gemm_rows(int64_t m, int64_t diag0, int64_t ncol, int64_t depth,
                                     const float* A, int64_t rsa, int64_t csa,
                                     const float* panels, float* C, int64_t ldc,
                                     int64_t cps, bool accumulate, bool upper_only,
                                     PrefetchStream* prefetch) {
  int64_t r0 = 0;
  for (; r0 + ROWS <= m; r0 += ROWS)
    row_block<ROWS, WIDE>(r0, diag0, ncol, depth, A, rsa, csa, panels, C, ldc, cps,
                          accumulate, upper_only, prefetch);
  if constexpr (ROWS > 1) {
    if (r0 < m)
      gemm_rows<ROWS - 1, WIDE>(m - r0, diag0 + r0, ncol, depth, A + r0 * rsa, rsa, csa,
                                panels, C + r0 * ldc, ldc, cps, accumulate, upper_only,
                                prefetch);
  }
}


// (Always inlined, as is everything below the per-ISA entry points: a call would leave
// the kernel compiled for the baseline target.)
template <int ROWS, bool WIDE>
RECPERF_ALWAYS_INLINE void gemm_all_rows(int64_t m, int64_t ncol, int64_t depth,
                                         const float* A, int64_t rsa, int64_t csa,
                                         const float* panels, float* C, int64_t ldc,
                                         bool accumulate, bool upper_only,
                                         PrefetchStream* prefetch, bool c_packed) {
  // A local copy the compiler keeps in registers: the caller's struct, updated in memory
  // block after block, stalled each block's first load on a failed store forwarding.
  PrefetchStream local;
  PrefetchStream* stream = nullptr;
  if (prefetch) {
    local = *prefetch;
    stream = &local;
    tiles::plan_prefetch(stream, (m + ROWS - 1) / ROWS);
  }
  if (c_packed) {
    // Panels of pack_b's layout for an m-deep operand: rows kPanelWidth apart, panels
    // kPanelWidth * m apart, every lane written (B's zero padding makes the padding
    // lanes of C zero).
    const int64_t padded = (ncol + kPanelWidth - 1) / kPanelWidth * kPanelWidth;
    gemm_rows<ROWS, WIDE>(m, 0, padded, depth, A, rsa, csa, panels, C, kPanelWidth,
                          kPanelWidth * m, false, false, stream);
  } else {
    gemm_rows<ROWS, WIDE>(m, 0, ncol, depth, A, rsa, csa, panels, C, ldc, kPanelWidth,
                          accumulate, upper_only, stream);
  }
  if (prefetch) *prefetch = {};  // issued (what the blocks' rounding left over is dropped)
}

// The tile shape is chosen per ISA so that the accumulators plus the B rows and a
// broadcast fit the register file without spilling: 8 x 2 panels = 16 of 32 zmm on
// AVX-512 (10 loads per 16 FMAs; 6 rows left the FM kernels' d = 128 with a 2-row tail
// and measured 3-5% slower), 6 x 1 panel = 12 of 16 ymm on AVX2, 3 x 1 panel = 12 of 16
// xmm on SSE2.
#define RECPERF_GEMM_ARGS                                                                 \
  int64_t m, int64_t ncol, int64_t depth, const float *A, int64_t rsa, int64_t csa,     \
      const float *panels, float *C, int64_t ldc, bool accumulate, bool upper_only,       \
      PrefetchStream *prefetch, bool c_packed
#define RECPERF_GEMM_PASS \
  m, ncol, depth, A, rsa, csa, panels, C, ldc, accumulate, upper_only, prefetch, c_packed

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("arch=x86-64-v4"))) void gemm_avx512(RECPERF_GEMM_ARGS) {
  gemm_all_rows<8, true>(RECPERF_GEMM_PASS);
}
__attribute__((target("arch=x86-64-v3"))) void gemm_avx2(RECPERF_GEMM_ARGS) {
  gemm_all_rows<6, false>(RECPERF_GEMM_PASS);
}
#endif
void gemm_baseline(RECPERF_GEMM_ARGS) {
  gemm_all_rows<3, false>(RECPERF_GEMM_PASS);
}

using GemmFn = void (*)(RECPERF_GEMM_ARGS);

struct GemmChoice {
  GemmFn fn;
  const char* isa;
};

GemmChoice pick_gemm() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("x86-64-v4")) return {gemm_avx512, "avx512"};
  if (__builtin_cpu_supports("x86-64-v3")) return {gemm_avx2, "avx2"};
#endif
  return {gemm_baseline, "baseline"};
}

const GemmChoice& chosen_gemm() {
  static const GemmChoice choice = pick_gemm();
  return choice;
}

}  // namespace

const char* gemm_isa() { return chosen_gemm().isa; }

void pack_b(const float* B, int64_t rs, int64_t cs, int64_t depth, int64_t ncol,
            float* panels) {
  // B the transpose of a row-major matrix: a panel row is a column of it.
  if (rs == 1 && cs != 1) return pack_b_transposed(B, cs, depth, ncol, panels);
  for (int64_t c0 = 0; c0 < ncol; c0 += kPanelWidth) {
    float* panel = panels + c0 * depth;
    const int64_t nc = ncol - c0 < kPanelWidth ? ncol - c0 : kPanelWidth;
    for (int64_t p = 0; p < depth; ++p) {
      float* dst = panel + p * kPanelWidth;
      const float* src = B + p * rs + c0 * cs;
      int64_t c = 0;
      if (cs == 1) {  // rows of B contiguous: a block copy the compiler vectorizes
        __builtin_memcpy(dst, src, nc * sizeof(float));
        c = nc;
      } else {
        for (; c < nc; ++c) dst[c] = src[c * cs];
      }
      for (; c < kPanelWidth; ++c) dst[c] = 0.f;
    }
  }
}

void gemm_packed(int64_t m, int64_t ncol, int64_t depth, const float* A, int64_t rsa,
                 int64_t csa, const float* panels, float* C, int64_t ldc, bool accumulate,
                 bool upper_only, PrefetchStream* prefetch) {
  chosen_gemm().fn(m, ncol, depth, A, rsa, csa, panels, C, ldc, accumulate, upper_only,
                   prefetch, false);
}

void gemm_packed_to_panels(int64_t m, int64_t ncol, int64_t depth, const float* A,
                           int64_t rsa, int64_t csa, const float* panels, float* C_panels,
                           PrefetchStream* prefetch) {
  chosen_gemm().fn(m, ncol, depth, A, rsa, csa, panels, C_panels, kPanelWidth, false, false,
                   prefetch, true);
}

}  // namespace recperf::cpu
