// recperf._C: the compiled op library.
//
// Two namespaces:
//   recperf          the public ops (schemas only here; their device kernels are the
//                    Python dispatcher in recperf.ops, which picks a backend per call)
//   recperf_kernels  the compiled backends: one op per kernel, a CPU implementation in
//                    csrc/ops/*.cpp and a CUDA one in csrc/cuda/*_binding.cpp
// Each op family adds its schemas with TORCH_LIBRARY_FRAGMENT in its own file.
#include <Python.h>
#include <torch/library.h>

TORCH_LIBRARY(recperf, m) {}
TORCH_LIBRARY(recperf_kernels, m) {}

// `import recperf._C` loads this shared object (and so registers every op); the module
// itself holds nothing, since ops are reached through torch.ops.
extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}
