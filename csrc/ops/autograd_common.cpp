// refuse_derivative: the Autograd kernel of the ops that have no derivative
// (autograd_common.h says which and why).
#include "autograd_common.h"

#include <torch/autograd.h>

#include <string>

namespace recperf {
namespace {

using at::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// Ties already computed results to the inputs that require grad, through a node whose
// backward raises: the engine reaches it only when a gradient of these results is asked.
struct NoDerivative : torch::autograd::Function<NoDerivative> {
  static tensor_list forward(AutogradContext* ctx, at::TensorList /*tracked inputs*/,
                             tensor_list results, const std::string& message) {
    ctx->saved_data["message"] = message;
    return results;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list /*grads*/) {
    TORCH_CHECK_NOT_IMPLEMENTED(false, ctx->saved_data["message"].toStringRef());
  }
};

std::string message_for(const c10::OperatorName& name) {
  std::string op = name.name;  // "recperf::fm_pairwise_backward"
  for (const std::string suffix : {"_backward", "_forward"}) {
    if (op.size() > suffix.size() &&
        op.compare(op.size() - suffix.size(), suffix.size(), suffix) == 0) {
      const std::string base = op.substr(0, op.size() - suffix.size());
      if (suffix == "_backward") {
        return base + " is differentiable once, not twice: its backward " + op +
               " has no derivative, so a second derivative through it (a gradient of "
               "the gradient that torch.autograd.grad(..., create_graph=True) returned) "
               "is refused";
      }
      return op + " (the training forward of " + base +
             ") has no derivative of its own: differentiate " + base + " instead";
    }
  }
  return op + " has no derivative";
}

}  // namespace

void refuse_derivative(const c10::OperatorHandle& op, c10::DispatchKeySet keys,
                       torch::jit::Stack* stack) {
  const size_t num_args = op.schema().arguments().size();
  std::vector<Tensor> tracked;
  if (at::GradMode::is_enabled()) {
    for (size_t i = stack->size() - num_args; i < stack->size(); ++i) {
      const c10::IValue& arg = (*stack)[i];
      if (arg.isTensor() && arg.toTensor().requires_grad()) tracked.push_back(arg.toTensor());
    }
  }
  // Below autograd for this op only, as torch's own fallback: a kernel may use autograd
  // inside (the third-party backends' backward recomputes its forward under enable_grad).
  op.redispatchBoxed(keys & c10::after_ADInplaceOrView_keyset, stack);
  if (tracked.empty()) return;
  const size_t num_results = op.schema().returns().size();
  std::vector<Tensor> results;
  for (size_t i = stack->size() - num_results; i < stack->size(); ++i) {
    // A history the kernel's torch ops recorded is not this op's derivative: dropped.
    results.push_back((*stack)[i].toTensor().detach());
  }
  torch::jit::drop(*stack, num_results);
  auto wrapped = NoDerivative::apply(at::TensorList(tracked), results, message_for(op.schema().operator_name()));
  for (auto& t : wrapped) stack->emplace_back(std::move(t));
}

}  // namespace recperf
