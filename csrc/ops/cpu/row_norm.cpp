#include "row_norm.h"

#include <cmath>
#include <cstdint>

#include "vec.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define RECPERF_HAVE_STREAM_STORES 1
#endif

namespace recperf::cpu {
namespace {

// Four partial sums per pass: one chain of dependent adds over a 2048-float row cost as
// much as its loads.
RECPERF_ALWAYS_INLINE float sum_centered(const float* f, int64_t body, float shift,
                                         bool square) {
  vfloat acc[4] = {};
  int64_t i = 0;
  for (; i + 4 * kVecWidth <= body; i += 4 * kVecWidth) {
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const vfloat c = load_vec(f + i + j * kVecWidth) - shift;
      acc[j] += square ? c * c : c;
    }
  }
  for (; i < body; i += kVecWidth) {
    const vfloat c = load_vec(f + i) - shift;
    acc[0] += square ? c * c : c;
  }
  return reduce_add((acc[0] + acc[1]) + (acc[2] + acc[3]));
}

RECPERF_ALWAYS_INLINE vfloat normalized(const float* f, int64_t i, Moments m, const float* w,
                                        const float* b) {
  vfloat y = (load_vec(f + i) - m.mean) * m.rstd;
  if (w) y *= load_vec(w + i);
  if (b) y += load_vec(b + i);
  return y;
}

void apply_tail(const float* f, int64_t from, int64_t count, Moments m, const float* w,
                const float* b, float* out) {
  for (int64_t i = from; i < count; ++i) {
    float y = (f[i] - m.mean) * m.rstd;
    if (w) y *= w[i];
    if (b) y += b[i];
    out[i] = y;
  }
}

RECPERF_MULTIVERSION
void apply_cached(const float* f, int64_t body, Moments m, const float* w, const float* b,
                  float* out) {
  for (int64_t i = 0; i < body; i += kVecWidth) store_vec(out + i, normalized(f, i, m, w, b));
}

#ifdef RECPERF_HAVE_STREAM_STORES
__attribute__((target("arch=x86-64-v4"))) void apply_streamed(const float* f, int64_t body,
                                                              Moments m, const float* w,
                                                              const float* b, float* out) {
  // (The intrinsic is called here, not in a shared inline helper: GCC inlines it into
  // the helper first, compiled for the baseline target, and rejects it.)
  for (int64_t i = 0; i < body; i += kVecWidth) {
    vfloat y = normalized(f, i, m, w, b);
    _mm512_stream_ps(out + i, reinterpret_cast<__m512&>(y));
  }
  _mm_sfence();  // streamed stores are weakly ordered: complete them before the row is read
}

bool can_stream(const float* out) {
  return cpu_has_avx512() && reinterpret_cast<uintptr_t>(out) % 64 == 0;
}
#endif

}  // namespace

RECPERF_MULTIVERSION
Moments row_moments(const float* f, int64_t count, double eps) {
  const int64_t body = count - count % kVecWidth;
  float sum = sum_centered(f, body, 0.f, false);
  for (int64_t i = body; i < count; ++i) sum += f[i];
  const float mean = sum / static_cast<float>(count);

  float sq_sum = sum_centered(f, body, mean, true);
  for (int64_t i = body; i < count; ++i) sq_sum += (f[i] - mean) * (f[i] - mean);
  const double var = static_cast<double>(sq_sum) / static_cast<double>(count);
  return {mean, static_cast<float>(1.0 / std::sqrt(var + eps))};
}

void layer_norm_apply(const float* f, int64_t count, Moments m, const float* w,
                      const float* b, float* out, bool stream_out) {
  const int64_t body = count - count % kVecWidth;
#ifdef RECPERF_HAVE_STREAM_STORES
  if (stream_out && can_stream(out)) {
    apply_streamed(f, body, m, w, b, out);
  } else {
    apply_cached(f, body, m, w, b, out);
  }
#else
  (void)stream_out;
  apply_cached(f, body, m, w, b, out);
#endif
  apply_tail(f, body, count, m, w, b, out);
}

}  // namespace recperf::cpu
