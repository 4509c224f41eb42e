// Vectorized row kernels of add_norm (the fused epilogue of linear_norm): the bias and
// residual add, the RMS norm, and the layer / RMS norm backward of one row of fp32 values.
// The layer norm's statistics and affine come from row_norm.h.
#pragma once

#include <cstdint>

#include "row_norm.h"

namespace recperf::cpu {

// h[i] = (z[i] + bias[i]) + res[i]; bias and res may be null.
void add_row(const float* z, const float* bias, const float* res, int64_t n, float* h);

// 1 / sqrt(mean(h^2) + eps), 16-lane partial sums.
float rms_rstd(const float* h, int64_t n, double eps);

// out[i] = h[i] * r * w[i]; w may be null; out may alias h.
void rms_apply(const float* h, int64_t n, float r, const float* w, float* out);

// With g = dy * w (dy where w is null) and xhat = (h - mean) * rstd:
// dh = rstd * (g - mean(g) - xhat * mean(g * xhat)); dw_acc += dy * xhat, db_acc += dy
// (each skipped when null).
void layer_norm_backward_row(const float* h, const float* dy, int64_t n, Moments m,
                             const float* w, float* dh, float* dw_acc, float* db_acc);

// With g = dy * w and yhat = h * r: dh = r * (g - yhat * mean(g * yhat));
// dw_acc += dy * yhat (skipped when null).
void rms_norm_backward_row(const float* h, const float* dy, int64_t n, float r,
                           const float* w, float* dh, float* dw_acc);

// dst[i] += src[i].
void add_to(float* dst, const float* src, int64_t n);

}  // namespace recperf::cpu
