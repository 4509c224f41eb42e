#include "gram_product.h"

#include <cstring>

#include "gemm_tiles.h"

namespace recperf::cpu {
namespace {

using tiles::row_block;
using tiles::tile;
using tiles::tile2;

// Rows r0 .. r0 + ROWS of G (upper part, the block's diagonal square whole) and then of F.
// Row r of F sums G[r, p] P[p, :] over p in two runs of depth: p < r0 reads G[p, r] from
// the blocks above (A transposed: rows 1 apart, depth n apart), p >= r0 this block's rows.
// The second run accumulates onto the first in C (16 loads and stores a tile, against its
// n * ROWS FMAs).
template <int ROWS, bool WIDE>
RECPERF_ALWAYS_INLINE void gram_block(int64_t r0, int64_t n, int64_t d, int64_t k,
                                      const float* x, const float* xt, float* g,
                                      const float* p_panels, float* F, int64_t ldf,
                                      PrefetchStream* prefetch) {
  row_block<ROWS, WIDE>(r0, 0, n, d, x, d, 1, xt, g, n, kPanelWidth, false, true, prefetch);
  // Half of the prefetch before each GEMM: one burst per block measured 5% slower.
  if (prefetch) prefetch->issue_block();
  const float* g_above = g + r0;          // (r, p) at g_above[p * n + r], p < r0
  const float* g_here = g + r0 * n + r0;  // (r, p - r0) at g_here[r * n + p - r0]
  const int64_t rest = n - r0;
  float* f = F + r0 * ldf;
  int64_t c0 = 0;
  if constexpr (WIDE) {
    for (; c0 + kPanelWidth < k; c0 += 2 * kPanelWidth) {
      const int64_t nc = k - c0 < 2 * kPanelWidth ? k - c0 : 2 * kPanelWidth;
      const float* p0 = p_panels + c0 * n;
      const float* p1 = p0 + kPanelWidth * n;
      if (r0 > 0) tile2<ROWS>(r0, g_above, 1, n, p0, p1, f + c0, ldf, kPanelWidth, nc, false);
      tile2<ROWS>(rest, g_here, n, 1, p0 + r0 * kPanelWidth, p1 + r0 * kPanelWidth, f + c0,
                  ldf, kPanelWidth, nc, r0 > 0);
    }
  }
  for (; c0 < k; c0 += kPanelWidth) {
    const int64_t nc = k - c0 < kPanelWidth ? k - c0 : kPanelWidth;
    const float* p0 = p_panels + c0 * n;
    if (r0 > 0) tile<ROWS>(r0, g_above, 1, n, p0, f + c0, ldf, nc, false);
    tile<ROWS>(rest, g_here, n, 1, p0 + r0 * kPanelWidth, f + c0, ldf, nc, r0 > 0);
  }
}

// Every block of ROWS rows in order (a block reads the columns of those above it), then
// the n % ROWS left as one block.
template <int ROWS, bool WIDE>
RECPERF_ALWAYS_INLINE void gram_rows(int64_t r0, int64_t n, int64_t d, int64_t k,
                                     const float* x, const float* xt, float* g,
                                     const float* p_panels, float* F, int64_t ldf,
                                     PrefetchStream* prefetch) {
  for (; r0 + ROWS <= n; r0 += ROWS)
    gram_block<ROWS, WIDE>(r0, n, d, k, x, xt, g, p_panels, F, ldf, prefetch);
  if constexpr (ROWS > 1) {
    if (r0 < n) gram_rows<ROWS - 1, WIDE>(r0, n, d, k, x, xt, g, p_panels, F, ldf, prefetch);
  }
}

template <int ROWS, bool WIDE>
RECPERF_ALWAYS_INLINE void gram_all_rows(int64_t n, int64_t d, int64_t k, const float* x,
                                         const float* xt, float* g, const float* p_panels,
                                         float* F, int64_t ldf, PrefetchStream* prefetch) {
  PrefetchStream local;  // in registers (see gemm_all_rows)
  PrefetchStream* stream = nullptr;
  if (prefetch) {
    local = *prefetch;
    stream = &local;
    tiles::plan_prefetch(stream, 2 * ((n + ROWS - 1) / ROWS));
  }
  gram_rows<ROWS, WIDE>(0, n, d, k, x, xt, g, p_panels, F, ldf, stream);
  if (prefetch) *prefetch = {};
}

// The tile shapes of small_gemm.cpp's entry points, for the same reasons.
#define RECPERF_GRAM_ARGS                                                                 \
  int64_t n, int64_t d, int64_t k, const float *x, const float *xt, float *g,             \
      const float *p_panels, float *F, int64_t ldf, PrefetchStream *prefetch
#define RECPERF_GRAM_PASS n, d, k, x, xt, g, p_panels, F, ldf, prefetch

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("arch=x86-64-v4"))) void gram_avx512(RECPERF_GRAM_ARGS) {
  gram_all_rows<8, true>(RECPERF_GRAM_PASS);
}
__attribute__((target("arch=x86-64-v3"))) void gram_avx2(RECPERF_GRAM_ARGS) {
  gram_all_rows<6, false>(RECPERF_GRAM_PASS);
}
#endif
void gram_baseline(RECPERF_GRAM_ARGS) { gram_all_rows<3, false>(RECPERF_GRAM_PASS); }

using GramFn = void (*)(RECPERF_GRAM_ARGS);

// The same instruction set as the GEMMs.
GramFn pick_gram() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (std::strcmp(gemm_isa(), "avx512") == 0) return gram_avx512;
  if (std::strcmp(gemm_isa(), "avx2") == 0) return gram_avx2;
#endif
  return gram_baseline;
}

}  // namespace

bool gram_route_pays(int64_t n, int64_t d, int64_t k) {
  // Multiply-adds: n^2 d / 2 + n^2 k against 2 n d k; at most 80% of them, i.e.
  // n (d / 2 + k) <= 1.6 d k. Where it was measured (B = 2048, n = 64, d = 128, k = 32,
  // 75% of them) the forward took 9% less time; near 85% the copies eat the gain.
  if (std::strcmp(gemm_isa(), "avx512") != 0) return false;
  return 10 * n * (d + 2 * k) <= 32 * d * k;
}

int64_t gram_workspace_size(int64_t n, int64_t d) { return packed_b_size(d, n) + n * n; }

void gram_product(int64_t n, int64_t d, int64_t k, const float* x, const float* p_panels,
                  float* workspace, float* F, int64_t ldf, PrefetchStream* prefetch) {
  static const GramFn fn = pick_gram();
  float* xt = workspace;
  float* g = workspace + packed_b_size(d, n);
  pack_b(x, 1, d, d, n, xt);  // x^T, as the B operand of x . x^T
  fn(n, d, k, x, xt, g, p_panels, F, ldf, prefetch);
}

}  // namespace recperf::cpu
