/* Placeholder: replaced by the native implementation (see docs/trace.md, "Native code"). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ctrack", NULL, -1, NULL};

PyMODINIT_FUNC PyInit__ctrack(void) { return PyModule_Create(&module); }
