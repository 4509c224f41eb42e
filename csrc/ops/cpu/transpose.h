// The packed B operand of a transposed matrix, for the small GEMMs (x^T in the FM Gram,
// [T | gT]^T in its backward). Element by element the copy cost a third of the GEMM it
// feeds (a strided read per float); this one moves 16 x 16 blocks through registers.
#pragma once

#include <cstdint>

namespace recperf::cpu {

// The panels pack_b(A, 1, lda, depth, ncol, panels) makes of B = A^T, where A is an
// ncol x depth row-major matrix of row stride lda (zero padding included).
void pack_b_transposed(const float* A, int64_t lda, int64_t depth, int64_t ncol,
                       float* panels);

}  // namespace recperf::cpu
