// CPU kernel of recperf_kernels::quantize_fp8: the reference arithmetic of
// recperf/ops/fp8_ref.py in C++, bit for bit (float32 amax, IEEE divisions and product,
// explicit clamp, c10's round-to-nearest-even conversion to fp8).
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "checks.h"

namespace recperf {
namespace {

// max |v| over a strided row, NaN if the row holds one.
template <typename in_t>
float row_amax(const in_t* src, int64_t count, int64_t stride) {
  float amax = 0.f;
  bool nan = false;
  for (int64_t i = 0; i < count; ++i) {
    const float v = static_cast<float>(src[i * stride]);
    nan |= std::isnan(v);
    amax = std::max(amax, std::fabs(v));
  }
  return nan ? std::numeric_limits<float>::quiet_NaN() : amax;
}

struct Scales {
  float inv;    // multiplies x
  float scale;  // x ~= q * scale
};

Scales scales_for(float amax, float top) {
  if (amax == 0.f) return {1.f, 1.f};
  return {top / amax, amax / top};
}

template <typename in_t, typename fp8_t>
void quantize_row(const in_t* src, int64_t count, int64_t stride, Scales s, float top,
                  fp8_t* dst) {
  for (int64_t i = 0; i < count; ++i) {
    const float v = static_cast<float>(src[i * stride]) * s.inv;
    dst[i] = static_cast<fp8_t>(std::clamp(v, -top, top));  // NaN passes through
  }
}

// Quantizes the rows of src (R rows of C elements, strides rs / cs) into q [R, C].
template <typename in_t, typename fp8_t>
void quantize(const in_t* src, int64_t R, int64_t C, int64_t rs, int64_t cs, bool per_row,
              fp8_t* q, float* scale) {
  const float top = static_cast<float>(std::numeric_limits<fp8_t>::max());
  if (per_row) {
    at::parallel_for(0, R, 16, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const Scales s = scales_for(row_amax(src + r * rs, C, cs), top);
        quantize_row(src + r * rs, C, cs, s, top, q + r * C);
        scale[r] = s.scale;
      }
    });
    return;
  }
  std::vector<float> partial(at::get_num_threads(), 0.f);
  at::parallel_for(0, R, 16, [&](int64_t r0, int64_t r1) {
    float& mine = partial[at::get_thread_num()];
    for (int64_t r = r0; r < r1; ++r) {
      const float a = row_amax(src + r * rs, C, cs);
      mine = std::isnan(a) || std::isnan(mine) ? std::numeric_limits<float>::quiet_NaN()
                                               : std::max(mine, a);
    }
  });
  float amax = 0.f;
  for (float a : partial)
    amax = std::isnan(a) || std::isnan(amax) ? std::numeric_limits<float>::quiet_NaN()
                                             : std::max(amax, a);
  const Scales s = scales_for(amax, top);
  at::parallel_for(0, R, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) quantize_row(src + r * rs, C, cs, s, top, q + r * C);
  });
  scale[0] = s.scale;
}

std::tuple<at::Tensor, at::Tensor> quantize_fp8_cpu(const at::Tensor& x,
                                                    c10::string_view granularity,
                                                    at::ScalarType fp8_dtype,
                                                    bool transposed) {
  RECPERF_CHECK_RANK(x, "x", 2);
  RECPERF_CHECK_KERNEL_FLOAT(x, "x");
  RECPERF_CHECK_DEVICE_TYPE(x, "x", c10::DeviceType::CPU);
  TORCH_CHECK_VALUE(granularity == "row" || granularity == "tensor",
                    "granularity must be 'row' or 'tensor', got '", granularity, "'");
  TORCH_CHECK_TYPE(fp8_dtype == at::kFloat8_e4m3fn || fp8_dtype == at::kFloat8_e5m2,
                   "fp8_dtype must be float8_e4m3fn or float8_e5m2, got ", fp8_dtype);
  const bool per_row = granularity == "row";
  // The rows to quantize: x's rows, or its columns for the transposed codes.
  const at::Tensor src = transposed ? x.t() : x;
  const int64_t R = src.size(0), C = src.size(1);
  auto q = at::empty({R, C}, x.options().dtype(fp8_dtype));
  auto scale = per_row ? at::empty({R, 1}, x.options().dtype(at::kFloat))
                       : at::empty({}, x.options().dtype(at::kFloat));
  const auto run = [&](auto in_tag, auto fp8_tag) {
    using in_t = decltype(in_tag);
    using fp8_t = decltype(fp8_tag);
    quantize<in_t, fp8_t>(src.const_data_ptr<in_t>(), R, C, src.stride(0), src.stride(1),
                          per_row, q.data_ptr<fp8_t>(), scale.data_ptr<float>());
  };
  const auto with_fp8 = [&](auto in_tag) {
    if (fp8_dtype == at::kFloat8_e4m3fn) {
      run(in_tag, c10::Float8_e4m3fn());
    } else {
      run(in_tag, c10::Float8_e5m2());
    }
  };
  switch (x.scalar_type()) {
    case at::kFloat: with_fp8(float()); break;
    case at::kBFloat16: with_fp8(at::BFloat16()); break;
    default: with_fp8(at::Half()); break;
  }
  return {q, scale};
}

}  // namespace

TORCH_LIBRARY_IMPL(recperf_kernels, CPU, m) { m.impl("quantize_fp8", &quantize_fp8_cpu); }

}  // namespace recperf
