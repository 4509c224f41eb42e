// Named precondition checks shared by the C++ kernels. Each message names the argument,
// what was expected and what was given; the Python ops check the same things first, so
// these guard the C++ entry points (torch.ops.recperf_kernels.*) used directly.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <string>

namespace recperf {

// "[2, 3, 4]". Shapes in messages are formatted here rather than streamed through c10's
// ArrayRef printer: a check whose message streamed t.sizes() crashed the process instead
// of raising on the GPU machine's torch 2.11 (seen on 2026-11-28; cause not found).
inline std::string shape_str(c10::IntArrayRef sizes) {
  std::string out = "[";
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(sizes[i]);
  }
  return out + "]";
}

inline bool is_kernel_float(at::ScalarType t) {
  return t == at::kFloat || t == at::kBFloat16 || t == at::kHalf;
}

}  // namespace recperf

#define RECPERF_CHECK_RANK(t, name, rank)                                            \
  TORCH_CHECK_VALUE((t).dim() == (rank), name, " must have rank ", (rank),            \
                    ", got rank ", (t).dim(), " (shape ", ::recperf::shape_str((t).sizes()), ")")

#define RECPERF_CHECK_KERNEL_FLOAT(t, name)                                          \
  TORCH_CHECK_TYPE(::recperf::is_kernel_float((t).scalar_type()),                    \
                   name, " must be float32, bfloat16 or float16, got ", (t).scalar_type())

#define RECPERF_CHECK_SIZE(t, name, dim, expected)                                   \
  TORCH_CHECK_VALUE((t).size(dim) == (expected), name, ".size(", (dim), ") must be ", \
                    (expected), ", got ", (t).size(dim), " (shape ", ::recperf::shape_str((t).sizes()), ")")

#define RECPERF_CHECK_SAME_DEVICE(t, name, ref, ref_name)                            \
  TORCH_CHECK_VALUE((t).device() == (ref).device(), name, " must be on ", ref_name,   \
                    "'s device ", (ref).device(), ", got ", (t).device())

#define RECPERF_CHECK_DEVICE_TYPE(t, name, device_type)                              \
  TORCH_CHECK_VALUE((t).device().type() == (device_type), name, " must be a ",       \
                    (device_type),                                                   \
                    " tensor, got one on ", (t).device())
