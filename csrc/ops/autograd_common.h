// What the C++ autograd of the FM ops (fm_autograd.cpp) and of linear_norm
// (linear_norm_autograd.cpp) share.
//
// Which families have C++ autograd, and why: the FM interactions and linear + norm, the
// hot public ops. Their formula is what a Python torch.library.register_autograd would
// be (save the inputs, call the op's *_backward op, which recomputes what it needs), but
// without its Python wrapper: these ops run several times per training step of a small
// CTR model, where that wrapper cost more than the kernels (about 50 us of 95 for
// linear_norm at M=512, K=216, N=64 on the CPU). Forward and backward still go through the
// dispatcher, so the device kernels, fake kernels and torch.compile see the same calls.
// The FP8 ops and permute_chunks keep their autograd in Python (recperf/ops/fp8.py, a2a.py):
// it is cheap there and their backward is made of differentiable ops.
//
// These ops are differentiable once, not twice: their *_backward ops (and linear_norm's
// training forward, *_forward) have no derivative. Their Autograd kernel is
// refuse_derivative, which makes any gradient through their results raise instead of
// returning a wrong one.
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <optional>

namespace recperf {

// An optional tensor saved for backward (undefined when absent) and back.
inline at::Tensor or_undefined(const std::optional<at::Tensor>& t) {
  return t.has_value() ? *t : at::Tensor();
}
inline std::optional<at::Tensor> as_optional(const at::Tensor& t) {
  return t.defined() ? std::optional<at::Tensor>(t) : std::nullopt;
}
// The gradient of an optional input: none when the input was absent.
inline at::Tensor grad_if(const at::Tensor& grad, const at::Tensor& input) {
  return input.defined() ? grad : at::Tensor();
}

// The Autograd kernel of an op without a derivative: runs the op below autograd; when a
// gradient is being tracked through one of its inputs, its results carry a node whose
// backward raises NotImplementedError naming the op (so `create_graph=True` still works,
// and only a gradient of these results is refused).
void refuse_derivative(const c10::OperatorHandle& op, c10::DispatchKeySet keys,
                       torch::jit::Stack* stack);

inline torch::CppFunction no_derivative() {
  return torch::CppFunction::makeFromBoxedFunction<&refuse_derivative>();
}

}  // namespace recperf
