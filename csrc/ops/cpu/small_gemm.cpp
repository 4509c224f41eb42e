#include "small_gemm.h"

#include "transpose.h"
#include "vec.h"

namespace recperf::cpu {
namespace {

static_assert(kPanelWidth == kVecWidth, "a B panel row is one vfloat");

// The first nc (< kPanelWidth) lanes of v into (or added to) dst, through a stack copy:
// indexing the accumulator itself made GCC keep every accumulator of the tile in memory.
RECPERF_ALWAYS_INLINE void store_partial(float* dst, vfloat v, int64_t nc, bool accumulate) {
  float lanes[kPanelWidth];
  store_vec(lanes, v);
  for (int64_t c = 0; c < nc; ++c) dst[c] = accumulate ? dst[c] + lanes[c] : lanes[c];
}

// One ROWS x kPanelWidth tile of C (nc <= kPanelWidth live columns):
// the accumulators stay in registers over the whole depth.
template <int ROWS>
RECPERF_ALWAYS_INLINE void tile(int64_t depth, const float* A, int64_t rsa, int64_t csa,
                                const float* panel, float* C, int64_t ldc, int64_t nc,
                                bool accumulate) {
  vfloat acc[ROWS];
#pragma GCC unroll 8
  for (int r = 0; r < ROWS; ++r) acc[r] = vfloat{};
  for (int64_t p = 0; p < depth; ++p) {
    const vfloat b = load_vec(panel + p * kPanelWidth);
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; ++r) acc[r] += A[r * rsa + p * csa] * b;
  }
#pragma GCC unroll 8
  for (int r = 0; r < ROWS; ++r) {
    float* c_row = C + r * ldc;
    if (nc == kPanelWidth) {
      store_vec(c_row, accumulate ? load_vec(c_row) + acc[r] : acc[r]);
    } else {
      store_partial(c_row, acc[r], nc, accumulate);
    }
  }
}

// ROWS x (2 kPanelWidth) tile over two adjacent panels: two B loads feed 2 * ROWS FMAs,
// easing the load ports that bound the one-panel tile on AVX-512. C's second panel of
// columns starts cps floats after its first (kPanelWidth when C is row-major).
template <int ROWS>
RECPERF_ALWAYS_INLINE void tile2(int64_t depth, const float* A, int64_t rsa, int64_t csa,
                                 const float* panel0, const float* panel1, float* C,
                                 int64_t ldc, int64_t cps, int64_t nc, bool accumulate) {
  vfloat acc0[ROWS], acc1[ROWS];
#pragma GCC unroll 8
  for (int r = 0; r < ROWS; ++r) acc0[r] = acc1[r] = vfloat{};
  for (int64_t p = 0; p < depth; ++p) {
    const vfloat b0 = load_vec(panel0 + p * kPanelWidth);
    const vfloat b1 = load_vec(panel1 + p * kPanelWidth);
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; ++r) {
      const float a = A[r * rsa + p * csa];
      acc0[r] += a * b0;
      acc1[r] += a * b1;
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < ROWS; ++r) {
    float* c_row = C + r * ldc;
    store_vec(c_row, accumulate ? load_vec(c_row) + acc0[r] : acc0[r]);
    float* c_next = c_row + cps;
    if (nc == 2 * kPanelWidth) {
      store_vec(c_next, accumulate ? load_vec(c_next) + acc1[r] : acc1[r]);
    } else {
      store_partial(c_next, acc1[r], nc - kPanelWidth, accumulate);
    }
  }
}

// For upper_only products whose diagonal falls in the second half of a panel: the
// ROWS x kHalfPanel tile of that half (half-width vectors, half the FMA cost of the whole
// panel, whose first half is strictly lower), with the full next panel beside it when
// next_panel is given. C is row-major.
constexpr int64_t kHalfPanel = kPanelWidth / 2;
typedef float vhalf __attribute__((vector_size(kHalfPanel * sizeof(float))));

template <int ROWS>
RECPERF_ALWAYS_INLINE void tile_half_lead(int64_t depth, const float* A, int64_t rsa,
                                          int64_t csa, const float* panel,
                                          const float* next_panel, float* C, int64_t ldc,
                                          bool accumulate) {
  vhalf acc_half[ROWS];
  vfloat acc_next[ROWS];
#pragma GCC unroll 8
  for (int r = 0; r < ROWS; ++r) {
    acc_half[r] = vhalf{};
    acc_next[r] = vfloat{};
  }
  const float* half = panel + kHalfPanel;
  for (int64_t p = 0; p < depth; ++p) {
    vhalf b;
    __builtin_memcpy(&b, half + p * kPanelWidth, sizeof(b));
    if (next_panel) {
      const vfloat b1 = load_vec(next_panel + p * kPanelWidth);
#pragma GCC unroll 8
      for (int r = 0; r < ROWS; ++r) {
        const float a = A[r * rsa + p * csa];
        acc_half[r] += a * b;
        acc_next[r] += a * b1;
      }
    } else {
#pragma GCC unroll 8
      for (int r = 0; r < ROWS; ++r) acc_half[r] += A[r * rsa + p * csa] * b;
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < ROWS; ++r) {
    float* c_half = C + r * ldc + kHalfPanel;
    vhalf v = acc_half[r];
    if (accumulate) {
      vhalf old;
      __builtin_memcpy(&old, c_half, sizeof(old));
      v += old;
    }
    __builtin_memcpy(c_half, &v, sizeof(v));
    if (next_panel) {
      float* c_next = C + r * ldc + kPanelWidth;
      store_vec(c_next, accumulate ? load_vec(c_next) + acc_next[r] : acc_next[r]);
    }
  }
}

template <int ROWS, bool WIDE>
RECPERF_ALWAYS_INLINE void row_block(int64_t row0, int64_t diag0, int64_t ncol, int64_t depth,
                                     const float* A, int64_t rsa, int64_t csa,
                                     const float* panels, float* C, int64_t ldc,
                                     int64_t cps, bool accumulate, bool upper_only,
                                     PrefetchStream* prefetch) {
  if (prefetch) prefetch->issue_block();
  const auto c_tile = [&](int64_t c0) { return C + row0 * ldc + c0 / kPanelWidth * cps; };
  int64_t c0 = 0;
  if (upper_only) {
    // Start at the diagonal's panel: the ones left of it are strictly lower.
    const int64_t diag = diag0 + row0;
    c0 = diag / kPanelWidth * kPanelWidth;
    if (diag - c0 >= kHalfPanel && c0 + kPanelWidth <= ncol) {
      // (With the next panel only on AVX-512: 2 x ROWS accumulators fit its 32 registers.)
      const bool with_next = WIDE && c0 + 2 * kPanelWidth <= ncol;
      tile_half_lead<ROWS>(depth, A + row0 * rsa, rsa, csa, panels + c0 * depth,
                           with_next ? panels + (c0 + kPanelWidth) * depth : nullptr,
                           c_tile(c0), ldc, accumulate);
      c0 += with_next ? 2 * kPanelWidth : kPanelWidth;
    }
  }
  if constexpr (WIDE) {
    for (; c0 + kPanelWidth < ncol; c0 += 2 * kPanelWidth) {
      const int64_t nc = ncol - c0 < 2 * kPanelWidth ? ncol - c0 : 2 * kPanelWidth;
      tile2<ROWS>(depth, A + row0 * rsa, rsa, csa, panels + c0 * depth,
                  panels + (c0 + kPanelWidth) * depth, c_tile(c0), ldc, cps, nc, accumulate);
    }
  }
  for (; c0 < ncol; c0 += kPanelWidth) {
    const int64_t nc = ncol - c0 < kPanelWidth ? ncol - c0 : kPanelWidth;
    tile<ROWS>(depth, A + row0 * rsa, rsa, csa, panels + c0 * depth, c_tile(c0), ldc, nc,
               accumulate);
  }
}

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

// Spreads the prefetch over the row blocks of an m-row product tiled by ROWS.
template <int ROWS>
RECPERF_ALWAYS_INLINE void plan_prefetch(PrefetchStream* prefetch, int64_t m) {
  const int64_t blocks = (m + ROWS - 1) / ROWS;
  const int64_t per_block = (prefetch->bytes_left + blocks - 1) / blocks;
  prefetch->bytes_per_block = (per_block + 63) / 64 * 64;
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
    plan_prefetch<ROWS>(stream, m);
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
