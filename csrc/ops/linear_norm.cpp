// Linear + norm: schemas of linear_norm and grouped_linear_norm and their backward ops.
// Their device kernels, fake kernels and autograd live in recperf/ops/linear_norm.py.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(recperf, m) {
  const std::vector<at::Tag> tags{at::Tag::pt2_compliant_tag};
  for (const char* name : {"linear_norm", "grouped_linear_norm"}) {
    const std::string op(name);
    m.def((op + "(Tensor x, Tensor weight, Tensor? bias=None, Tensor? residual=None, "
                "Tensor? norm_weight=None, Tensor? norm_bias=None, str norm=\"layer\", "
                "float eps=1e-05, str recipe=\"bf16\", str backend=\"auto\") -> Tensor")
              .c_str(),
          tags);
    // (dx, dweight, dbias, dresidual, dnorm_weight, dnorm_bias); empty where absent.
    m.def((op + "_backward(Tensor grad, Tensor x, Tensor weight, Tensor? bias, "
                "Tensor? residual, Tensor? norm_weight, Tensor? norm_bias, str norm, "
                "float eps, str recipe, str backend=\"auto\") "
                "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)")
              .c_str(),
          tags);
  }
}
