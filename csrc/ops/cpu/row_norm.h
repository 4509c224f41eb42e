// Vectorized layer norm over one row of fp32 features (the FM kernels' fused epilogue).
#pragma once

#include <cstdint>

namespace recperf::cpu {

struct Moments {
  float mean;
  float rstd;  // 1 / sqrt(biased variance + eps)
};

// Two passes (mean, then centered squares) with 16-lane partial sums.
Moments row_moments(const float* f, int64_t count, double eps);

// out[i] = (f[i] - mean) * rstd * w[i] + b[i]; w and b may be null. out may alias f.
// stream_out writes around the caches (non-temporal stores, where the CPU has AVX-512 and
// out is 64-byte aligned): for rows of a large output that nothing reads soon, it saves
// reading each line before writing it.
void layer_norm_apply(const float* f, int64_t count, Moments m, const float* w,
                      const float* b, float* out, bool stream_out = false);

}  // namespace recperf::cpu
