// lowbit._lowbit: thin pybind11 bindings over the C++ library. The `lowbit`
// package (python/lowbit/__init__.py) re-exports what is defined here.
#include <pybind11/pybind11.h>

#include "python/bindings.h"
#include "python/errors.h"

PYBIND11_MODULE(_lowbit, m) {
  m.doc() = "lowbit: low-bit number formats, quantized LLM inference and quantization (C++ bindings)";
  pybind11::register_exception<lowbit::python::LowbitError>(m, "LowbitError", PyExc_RuntimeError);
  lowbit::python::register_formats(m);
  lowbit::python::register_model(m);
  lowbit::python::register_pipeline(m);
}
