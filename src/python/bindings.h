// The parts of the lowbit._lowbit module, one registration function per file.
#pragma once

#include <pybind11/pybind11.h>

#include <nlohmann/json.hpp>

namespace lowbit::python {

void register_formats(pybind11::module_& m);   // bind_formats.cpp: formats, quantize, dequantize
void register_model(pybind11::module_& m);     // bind_model.cpp: load_model, logits, perplexity
void register_pipeline(pybind11::module_& m);  // bind_pipeline.cpp: quantize_model, export

// A JSON report as Python objects (dicts, lists, numbers), through Python's json module.
pybind11::object to_python(const nlohmann::json& j);  // bind_pipeline.cpp

}  // namespace lowbit::python
