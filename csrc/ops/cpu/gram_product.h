// The FM's projected product F = x . (x^T . P) through the Gram matrix: F = (x . x^T) . P.
// For one n x d example that is n^2 d / 2 multiply-adds for the upper triangle of the
// symmetric G = x . x^T plus n^2 k for G . P, against 2 n d k for x . (x^T . P): at the
// benchmark's base shape n = 64, d = 128, k = 32, 25% fewer.
#pragma once

#include <cstdint>

#include "small_gemm.h"

namespace recperf::cpu {

// Whether the Gram route is taken for this shape: on AVX-512 (where the upper triangle's
// half-panel tiles run at full rate) and when it saves at least a fifth of the
// multiply-adds (it pays back the transposed copy of x and the extra stores of G).
bool gram_route_pays(int64_t n, int64_t d, int64_t k);

// Floats of workspace gram_product needs: x^T packed, and G.
int64_t gram_workspace_size(int64_t n, int64_t d);

// F (n x k, row stride ldf) = (x . x^T) . P for x n x d row-major and P packed by pack_b as
// an n x k operand. G is made a row block at a time, its upper part only, and that block's
// rows of F follow at once, G's rows still in L1 (below the diagonal, G . P reads the
// columns of the blocks above). prefetch, if given, is issued over the blocks and ends
// empty.
void gram_product(int64_t n, int64_t d, int64_t k, const float* x, const float* p_panels,
                  float* workspace, float* F, int64_t ldf, PrefetchStream* prefetch = nullptr);

}  // namespace recperf::cpu
