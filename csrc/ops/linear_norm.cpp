// Linear + norm: schemas of linear_norm and grouped_linear_norm, their training forward
// and their backward, in recperf and, for their Python dispatcher on the CPU
// (csrc/ops/fast_path.h), in recperf_dispatch. Python device and fake kernels live in
// recperf/ops/linear_norm.py, the CPU fast path in linear_norm_fast_path.cpp, the
// autograd in linear_norm_autograd.cpp.
#include <torch/library.h>

#include <string>
#include <vector>

namespace {

std::vector<std::string> linear_norm_schemas() {
  const std::string args =
      "(Tensor x, Tensor weight, Tensor? bias=None, Tensor? residual=None, "
      "Tensor? norm_weight=None, Tensor? norm_bias=None, str norm=\"layer\", "
      "float eps=1e-05, str recipe=\"bf16\", str backend=\"auto\")";
  std::vector<std::string> schemas;
  for (const std::string op : {"linear_norm", "grouped_linear_norm"}) {
    schemas.push_back(op + args + " -> Tensor");
    // The training forward: (out, preact), preact the forward GEMM's product x . W^T
    // (fp32; float64 for float64 x), which the backward can start from.
    schemas.push_back(op + "_forward" + args + " -> (Tensor, Tensor)");
    // (dx, dweight, dbias, dresidual, dnorm_weight, dnorm_bias); empty where absent.
    // Without preact the forward GEMM is recomputed.
    schemas.push_back(op +
                      "_backward(Tensor grad, Tensor x, Tensor weight, Tensor? bias, "
                      "Tensor? residual, Tensor? norm_weight, Tensor? norm_bias, str norm, "
                      "float eps, str recipe, str backend=\"auto\", Tensor? preact=None) "
                      "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  }
  return schemas;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(recperf, m) {
  const std::vector<at::Tag> tags{at::Tag::pt2_compliant_tag};
  for (const auto& schema : linear_norm_schemas()) m.def(schema.c_str(), tags);
}

TORCH_LIBRARY_FRAGMENT(recperf_dispatch, m) {
  for (const auto& schema : linear_norm_schemas()) m.def(schema.c_str());
}
