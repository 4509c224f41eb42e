// FP8 quantization and scaled GEMM: schemas of the public ops and of their compiled
// kernels. The public ops' device kernels, fake kernels and autograd live in
// recperf/ops/fp8.py; the CPU quantization kernel is in csrc/ops/fp8_quantize_cpu.cpp.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(recperf, m) {
  const std::vector<at::Tag> tags{at::Tag::pt2_compliant_tag};
  // fp8_dtype None means float8_e4m3fn; out_dtype None means bfloat16.
  m.def("quantize_fp8(Tensor x, str granularity=\"row\", ScalarType? fp8_dtype=None, "
        "str backend=\"auto\") -> (Tensor, Tensor)",
        tags);
  m.def("quantize_fp8_transposed(Tensor x, str granularity=\"row\", "
        "ScalarType? fp8_dtype=None, str backend=\"auto\") -> (Tensor, Tensor)",
        tags);
  m.def("fp8_gemm(Tensor a, Tensor a_scale, Tensor b, Tensor b_scale, Tensor? bias=None, "
        "ScalarType? out_dtype=None, str backend=\"auto\") -> Tensor",
        tags);
}

// The quantization kernel of every device: x [M, K] (or, transposed, the codes of x^T).
TORCH_LIBRARY_FRAGMENT(recperf_kernels, m) {
  m.def("quantize_fp8(Tensor x, str granularity, ScalarType fp8_dtype, bool transposed) "
        "-> (Tensor, Tensor)");
}
