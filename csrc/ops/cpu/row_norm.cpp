#include "row_norm.h"

#include <cmath>

#include "vec.h"

namespace recperf::cpu {

RECPERF_MULTIVERSION
Moments row_moments(const float* f, int64_t count, double eps) {
  const int64_t body = count - count % kVecWidth;
  vfloat acc{};
  for (int64_t i = 0; i < body; i += kVecWidth) acc += load_vec(f + i);
  float sum = reduce_add(acc);
  for (int64_t i = body; i < count; ++i) sum += f[i];
  const float mean = sum / static_cast<float>(count);

  vfloat sq{};
  for (int64_t i = 0; i < body; i += kVecWidth) {
    const vfloat c = load_vec(f + i) - mean;
    sq += c * c;
  }
  float sq_sum = reduce_add(sq);
  for (int64_t i = body; i < count; ++i) sq_sum += (f[i] - mean) * (f[i] - mean);
  const double var = static_cast<double>(sq_sum) / static_cast<double>(count);
  return {mean, static_cast<float>(1.0 / std::sqrt(var + eps))};
}

RECPERF_MULTIVERSION
void layer_norm_apply(const float* f, int64_t count, Moments m, const float* w,
                      const float* b, float* out) {
  const int64_t body = count - count % kVecWidth;
  for (int64_t i = 0; i < body; i += kVecWidth) {
    vfloat y = (load_vec(f + i) - m.mean) * m.rstd;
    if (w) y *= load_vec(w + i);
    if (b) y += load_vec(b + i);
    store_vec(out + i, y);
  }
  for (int64_t i = body; i < count; ++i) {
    float y = (f[i] - m.mean) * m.rstd;
    if (w) y *= w[i];
    if (b) y += b[i];
    out[i] = y;
  }
}

}  // namespace recperf::cpu
