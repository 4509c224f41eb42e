// Portable SIMD helpers for the CPU kernels: a 16-float vector type that GCC/Clang lower
// to one AVX-512 register, two AVX2 registers or four SSE registers (whichever the
// enclosing function's target has), and the multi-versioning attribute that compiles a
// function for each of those targets and picks one at load time.
//
// Include only from the kernel sources that define multi-versioned functions.
#pragma once

#include <cstdint>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(RECPERF_NO_MULTIVERSION)
#define RECPERF_MULTIVERSION \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define RECPERF_MULTIVERSION
#endif

#define RECPERF_ALWAYS_INLINE inline __attribute__((always_inline))

namespace recperf::cpu {

// Whether this CPU runs x86-64-v4 (AVX-512) code: for the kernels written with AVX-512
// intrinsics, which multi-versioning cannot give a portable fallback. Checked once.
inline bool cpu_has_avx512() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static const bool avx512 = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("x86-64-v4");
  }();
  return avx512;
#else
  return false;
#endif
}

}  // namespace recperf::cpu

namespace recperf::cpu {

constexpr int64_t kVecWidth = 16;

// Written out explicitly: the auto-vectorizer spills 2-D accumulator arrays to the stack.
typedef float vfloat __attribute__((vector_size(kVecWidth * sizeof(float))));

// Unaligned load/store; memcpy compiles to one vmovups (or two, or four).
RECPERF_ALWAYS_INLINE vfloat load_vec(const float* src) {
  vfloat v;
  __builtin_memcpy(&v, src, sizeof(v));
  return v;
}

RECPERF_ALWAYS_INLINE void store_vec(float* dst, vfloat v) {
  __builtin_memcpy(dst, &v, sizeof(v));
}

// Pairwise (tree) sum of the lanes: log2(16) dependent adds instead of a serial chain of
// 16, which dominated the per-row cost of norms over short rows (N = 16).
RECPERF_ALWAYS_INLINE float reduce_add(vfloat v) {
  typedef float half8 __attribute__((vector_size(8 * sizeof(float))));
  typedef float half4 __attribute__((vector_size(4 * sizeof(float))));
  half8 a, b;
  __builtin_memcpy(&a, &v, sizeof(a));
  __builtin_memcpy(&b, reinterpret_cast<const char*>(&v) + sizeof(a), sizeof(b));
  const half8 s8 = a + b;
  half4 c, d;
  __builtin_memcpy(&c, &s8, sizeof(c));
  __builtin_memcpy(&d, reinterpret_cast<const char*>(&s8) + sizeof(c), sizeof(d));
  const half4 s4 = c + d;
  return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

}  // namespace recperf::cpu
