// A bf16 x bf16 -> fp32 GEMM on the AVX512-BF16 dot-product instruction (vdpbf16ps: pairs
// of bf16 products, exact in fp32, accumulated in fp32), for the CPUs that have it (AMD
// Zen 4, Intel Cooper Lake and later). ATen exports no bf16 GEMM with an fp32 output that
// runs on these instructions off AMX machines (cpublas::brgemm falls back to a generic
// kernel there), and the fused epilogue of linear_norm needs the fp32 product per row
// block. Callers ask use_bf16_instructions() and otherwise run an fp32 GEMM of the bf16
// values (exact products too: only the accumulation order differs).
#pragma once

#include <cstdint>
#include <vector>

namespace recperf::cpu {

// The CPU has AVX512-BF16 and RECPERF_CPU_BF16_INSTRUCTIONS is not "0" (set by the tests
// to run the path of the CPUs without it).
bool use_bf16_instructions();

// B [K, N] (element (k, n) at b[k * stride_k + n * stride_n], so a transposed view packs
// without a copy first) as the kernel reads it: 32-column panels, each K/2 (rounded up)
// pairs of rows interleaved column by column, zero past K and N.
struct Bf16PackedB {
  std::vector<uint16_t> data;
  int64_t K = 0, N = 0, pairs = 0, panels = 0;
};
void pack_bf16_b(const uint16_t* b, int64_t stride_k, int64_t stride_n, int64_t K, int64_t N,
                 Bf16PackedB& out);

// c[rows, N] (row stride ldc) = a[rows, K] (row stride lda) . B. Single-threaded: the
// caller splits the rows over threads.
void bf16_gemm_rows(const uint16_t* a, int64_t lda, const Bf16PackedB& b, float* c,
                    int64_t ldc, int64_t rows);

}  // namespace recperf::cpu
