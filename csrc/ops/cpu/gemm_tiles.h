// The register tiles of the small fp32 GEMMs (small_gemm.cpp) and of the products built
// from them (gram_product.cpp). Everything here is always inlined into a per-ISA entry
// point: a call would leave the kernel compiled for the baseline target.
//
// Include only from those kernel sources.
#pragma once

#include <cstdint>

#include "small_gemm.h"
#include "vec.h"

namespace recperf::cpu::tiles {

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
// NEXT. C is row-major. (NEXT is a template argument: with a runtime flag GCC fused both
// loops into one with a branch per step and broadcast A through registers, and the tile
// ran 40% over its FMA count.)
constexpr int64_t kHalfPanel = kPanelWidth / 2;
typedef float vhalf __attribute__((vector_size(kHalfPanel * sizeof(float))));

template <int ROWS, bool NEXT>
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
    if constexpr (NEXT) {
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
    if constexpr (NEXT) {
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
      const float* lead_a = A + row0 * rsa;
      if (with_next) {
        tile_half_lead<ROWS, true>(depth, lead_a, rsa, csa, panels + c0 * depth,
                                   panels + (c0 + kPanelWidth) * depth, c_tile(c0), ldc,
                                   accumulate);
      } else {
        tile_half_lead<ROWS, false>(depth, lead_a, rsa, csa, panels + c0 * depth, nullptr,
                                    c_tile(c0), ldc, accumulate);
      }
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

// Spreads the prefetch over `blocks` calls of issue_block.
RECPERF_ALWAYS_INLINE void plan_prefetch(PrefetchStream* prefetch, int64_t blocks) {
  const int64_t per_block = (prefetch->bytes_left + blocks - 1) / blocks;
  prefetch->bytes_per_block = (per_block + 63) / 64 * 64;
}

}  // namespace recperf::cpu::tiles
