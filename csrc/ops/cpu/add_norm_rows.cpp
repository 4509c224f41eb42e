#include "add_norm_rows.h"

#include <cmath>

#include "vec.h"

namespace recperf::cpu {

RECPERF_MULTIVERSION
void add_row(const float* z, const float* bias, const float* res, int64_t n, float* h) {
  const int64_t body = n - n % kVecWidth;
  for (int64_t i = 0; i < body; i += kVecWidth) {
    vfloat v = load_vec(z + i);
    if (bias) v += load_vec(bias + i);
    if (res) v += load_vec(res + i);
    store_vec(h + i, v);
  }
  for (int64_t i = body; i < n; ++i) {
    float v = z[i];
    if (bias) v += bias[i];
    if (res) v += res[i];
    h[i] = v;
  }
}

RECPERF_MULTIVERSION
float rms_rstd(const float* h, int64_t n, double eps) {
  const int64_t body = n - n % kVecWidth;
  vfloat acc{};
  for (int64_t i = 0; i < body; i += kVecWidth) {
    const vfloat v = load_vec(h + i);
    acc += v * v;
  }
  float sq = reduce_add(acc);
  for (int64_t i = body; i < n; ++i) sq += h[i] * h[i];
  const double ms = static_cast<double>(sq) / static_cast<double>(n);
  return static_cast<float>(1.0 / std::sqrt(ms + eps));
}

RECPERF_MULTIVERSION
void rms_apply(const float* h, int64_t n, float r, const float* w, float* out) {
  const int64_t body = n - n % kVecWidth;
  for (int64_t i = 0; i < body; i += kVecWidth) {
    vfloat y = load_vec(h + i) * r;
    if (w) y *= load_vec(w + i);
    store_vec(out + i, y);
  }
  for (int64_t i = body; i < n; ++i) {
    float y = h[i] * r;
    if (w) y *= w[i];
    out[i] = y;
  }
}

// No FMA contraction here: contracting dy * w into the running sum but not into
// g - mean_g left a rounding residue that the 1 / sqrt(eps) of a constant row amplified
// (a single feature's gradient, exactly 0, came out near 1e-6).
RECPERF_MULTIVERSION __attribute__((optimize("fp-contract=off")))
void layer_norm_backward_row(const float* h, const float* dy, int64_t n, Moments m,
                             const float* w, float* dh, float* dw_acc, float* db_acc) {
  const int64_t body = n - n % kVecWidth;
  vfloat sg{}, sgx{};
  for (int64_t i = 0; i < body; i += kVecWidth) {
    vfloat g = load_vec(dy + i);
    if (w) g *= load_vec(w + i);
    const vfloat xhat = (load_vec(h + i) - m.mean) * m.rstd;
    sg += g;
    sgx += g * xhat;
  }
  float sum_g = reduce_add(sg), sum_gx = reduce_add(sgx);
  for (int64_t i = body; i < n; ++i) {
    const float g = w ? dy[i] * w[i] : dy[i];
    const float xhat = (h[i] - m.mean) * m.rstd;
    sum_g += g;
    sum_gx += g * xhat;
  }
  const float mean_g = sum_g / static_cast<float>(n);
  const float mean_gx = sum_gx / static_cast<float>(n);
  for (int64_t i = 0; i < body; i += kVecWidth) {
    const vfloat d = load_vec(dy + i);
    const vfloat g = w ? d * load_vec(w + i) : d;
    const vfloat xhat = (load_vec(h + i) - m.mean) * m.rstd;
    store_vec(dh + i, m.rstd * (g - mean_g - xhat * mean_gx));
    if (dw_acc) store_vec(dw_acc + i, load_vec(dw_acc + i) + d * xhat);
    if (db_acc) store_vec(db_acc + i, load_vec(db_acc + i) + d);
  }
  for (int64_t i = body; i < n; ++i) {
    const float g = w ? dy[i] * w[i] : dy[i];
    const float xhat = (h[i] - m.mean) * m.rstd;
    dh[i] = m.rstd * (g - mean_g - xhat * mean_gx);
    if (dw_acc) dw_acc[i] += dy[i] * xhat;
    if (db_acc) db_acc[i] += dy[i];
  }
}

RECPERF_MULTIVERSION
void rms_norm_backward_row(const float* h, const float* dy, int64_t n, float r,
                           const float* w, float* dh, float* dw_acc) {
  const int64_t body = n - n % kVecWidth;
  vfloat sgy{};
  for (int64_t i = 0; i < body; i += kVecWidth) {
    vfloat g = load_vec(dy + i);
    if (w) g *= load_vec(w + i);
    sgy += g * (load_vec(h + i) * r);
  }
  float sum_gy = reduce_add(sgy);
  for (int64_t i = body; i < n; ++i) sum_gy += (w ? dy[i] * w[i] : dy[i]) * (h[i] * r);
  const float mean_gy = sum_gy / static_cast<float>(n);
  for (int64_t i = 0; i < body; i += kVecWidth) {
    const vfloat d = load_vec(dy + i);
    const vfloat g = w ? d * load_vec(w + i) : d;
    const vfloat yhat = load_vec(h + i) * r;
    store_vec(dh + i, r * (g - yhat * mean_gy));
    if (dw_acc) store_vec(dw_acc + i, load_vec(dw_acc + i) + d * yhat);
  }
  for (int64_t i = body; i < n; ++i) {
    const float g = w ? dy[i] * w[i] : dy[i];
    const float yhat = h[i] * r;
    dh[i] = r * (g - yhat * mean_gy);
    if (dw_acc) dw_acc[i] += dy[i] * yhat;
  }
}

RECPERF_MULTIVERSION
void add_to(float* dst, const float* src, int64_t n) {
  const int64_t body = n - n % kVecWidth;
  for (int64_t i = 0; i < body; i += kVecWidth)
    store_vec(dst + i, load_vec(dst + i) + load_vec(src + i));
  for (int64_t i = body; i < n; ++i) dst[i] += src[i];
}

}  // namespace recperf::cpu
