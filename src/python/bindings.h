// The parts of the lowbit._lowbit module, one registration function per file.
#pragma once

#include <pybind11/pybind11.h>

namespace lowbit::python {

void register_formats(pybind11::module_& m);   // bind_formats.cpp: formats, quantize, dequantize
void register_model(pybind11::module_& m);     // bind_model.cpp: load_model, logits, perplexity
void register_pipeline(pybind11::module_& m);  // bind_pipeline.cpp: quantize_model, export

}  // namespace lowbit::python
