// The Python module entry point of recperf._C. `import recperf._C` loads the shared
// object, which registers every op; the module itself holds nothing, since ops are
// reached through torch.ops. Built by setup.py only (C++ users load the library with
// torch.ops.load_library and need no Python).
#include <Python.h>

extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}
