// The CPU fast path of the public ops.
//
// A public op's device kernel is the Python backend dispatcher (recperf/dispatch.py): it
// checks the arguments, picks a backend and calls it, some 40 us of Python per call, more
// than the kernels of a small CTR model's layers take. So on the CPU a public op's kernel
// is C++: when the dispatcher is certain to pick the compiled (cpp) kernel and the
// arguments certainly pass its checks, it calls that kernel itself; otherwise (a backend
// forced by the argument, a use_backend block or RECPERF_BACKEND, float64, an FP8 recipe,
// an empty batch, anything the checks might reject) it calls the Python dispatcher,
// registered as the CPU kernel of the same op in the recperf_dispatch namespace. Either
// way the answer, and every error message, is the dispatcher's: the predicates here only
// decide who computes it, and they never raise.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <string>

#include "op_handle.h"

namespace recperf {

// Whether the dispatcher's choice on a CPU tensor is the cpp backend whatever the
// arguments: ``backend`` is "auto" or "cpp", no use_backend block forcing another backend
// is open, and RECPERF_BACKEND is unset, "auto" or "cpp".
bool cpp_backend_in_force(c10::string_view backend);

// The Python dispatcher of public op ``name`` (its recperf_dispatch twin).
template <typename Signature>
c10::TypedOperatorHandle<Signature> python_dispatcher(const char* name) {
  return op_handle<Signature>(std::string("recperf_dispatch::") + name);
}

// The compiled kernel ``name`` (recperf_kernels::name).
template <typename Signature>
c10::TypedOperatorHandle<Signature> compiled_kernel(const char* name) {
  return op_handle<Signature>(std::string("recperf_kernels::") + name);
}

// Argument predicates shared by the ops' fast paths.
inline bool is_kernel_dtype(const at::Tensor& t) {
  const auto s = t.scalar_type();
  return s == at::kFloat || s == at::kBFloat16 || s == at::kHalf;
}
inline bool on_device_of(const at::Tensor& t, const at::Tensor& x) {
  return t.device() == x.device();
}
// A parameter in x's dtype or float32 (fp32 master weights), on x's device.
inline bool is_param_of(const at::Tensor& t, const at::Tensor& x) {
  return on_device_of(t, x) &&
         (t.scalar_type() == x.scalar_type() || t.scalar_type() == at::kFloat);
}
inline bool is_valid_eps(double eps) { return std::isfinite(eps) && eps >= 0.0; }
// grad of an output of this shape: x's dtype and device.
inline bool is_grad_of(const at::Tensor& grad, const at::Tensor& x, at::IntArrayRef shape) {
  return grad.sizes() == shape && on_device_of(grad, x) &&
         grad.scalar_type() == x.scalar_type();
}

}  // namespace recperf
