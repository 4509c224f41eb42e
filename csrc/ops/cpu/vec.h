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

RECPERF_ALWAYS_INLINE float reduce_add(vfloat v) {
  float s = 0.f;
  for (int64_t i = 0; i < kVecWidth; ++i) s += v[i];
  return s;
}

}  // namespace recperf::cpu
