// Register-blocked fp32 GEMM for the small per-example products of the FM kernels.
//
// The FM ops do thousands of independent products of a few hundred by a few dozen
// elements; a BLAS call per example costs more in dispatch than in arithmetic. These
// routines run one example inside one thread, with every operand in L1/L2.
#pragma once

#include <cstdint>

namespace recperf::cpu {

// Width of a packed B panel in floats: one AVX-512 register, two AVX2 registers.
constexpr int64_t kPanelWidth = 16;

// Floats needed to pack a depth x ncol B operand.
inline int64_t packed_b_size(int64_t depth, int64_t ncol) {
  return depth * ((ncol + kPanelWidth - 1) / kPanelWidth) * kPanelWidth;
}

// Packs B (element (p, c) at B[p * rs + c * cs]) into column panels of kPanelWidth,
// zero-padded, so the micro-kernel streams each panel contiguously.
void pack_b(const float* B, int64_t rs, int64_t cs, int64_t depth, int64_t ncol,
            float* panels);

// Bytes (the next example of a batch) to bring into L2 while a GEMM runs. The GEMM
// spreads the requests over its row blocks: issued in one burst to L1, the 512 requests of
// a 32 KB example measured 8-10% slower (they compete with the GEMM's own loads).
struct PrefetchStream {
  const char* next = nullptr;
  int64_t bytes_left = 0;
  int64_t bytes_per_block = 0;  // set by the GEMM from its number of row blocks

  PrefetchStream() = default;
  PrefetchStream(const void* start, int64_t bytes)
      : next(static_cast<const char*>(start)), bytes_left(bytes) {}
  // Requests the next bytes_per_block bytes (prefetcht1: to L2, leaving L1 to the GEMM).
  void issue_block() {
    const int64_t bytes = bytes_left < bytes_per_block ? bytes_left : bytes_per_block;
    for (int64_t off = 0; off < bytes; off += 64) __builtin_prefetch(next + off, 0, 2);
    next += bytes;
    bytes_left -= bytes;
  }
};

// C[m, ncol] = (accumulate ? C : 0) + A[m, depth] . B, with B packed by pack_b.
// A element (r, p) lives at A[r * rsa + p * csa]; C is row-major with leading dim ldc.
// upper_only (for symmetric products) computes the entries on and above the diagonal,
// and of those below it only what shares a half panel of columns with them;
// prefetch, if given, is issued over the row blocks and ends empty.
void gemm_packed(int64_t m, int64_t ncol, int64_t depth, const float* A, int64_t rsa,
                 int64_t csa, const float* panels, float* C, int64_t ldc,
                 bool accumulate, bool upper_only = false,
                 PrefetchStream* prefetch = nullptr);

// C = A . B as gemm_packed computes it, written straight into the panels pack_b would
// make of C as an m x ncol B operand (packed_b_size(m, ncol) floats, zero padding
// included): for a product that feeds the next GEMM, it saves the pack_b pass.
void gemm_packed_to_panels(int64_t m, int64_t ncol, int64_t depth, const float* A,
                           int64_t rsa, int64_t csa, const float* panels, float* C_panels,
                           PrefetchStream* prefetch = nullptr);

// The instruction set the micro-kernel runs with on this machine ("avx512", "avx2" or
// "baseline"), chosen once at first use.
const char* gemm_isa();

}  // namespace recperf::cpu
