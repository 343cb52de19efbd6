// lowbit.formats / format_info / quantize / dequantize / round_trip over the
// library's three format tables: element formats (formats/element_format.h),
// scaled formats (formats/block_format.h) and llama.cpp block types
// (formats/gguf_blocks.h). Element codes go through ElementKernel (bit for bit the
// reference codec); matrices through WeightFormat (quant/weight_format.h), the
// handle the quantizers and the file writers use, so Python sees the bytes a
// lowbit or GGUF file stores.
//
// Names: an element format and a scaled format share the names fp8_e4m3,
// fp8_e5m2, fp16 and bf16. Without `kind` the element format is meant;
// kind="scaled" picks the scaled one (an FP32 scale per row, or plain storage).
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "formats/block_format.h"
#include "formats/element_format.h"
#include "formats/element_kernel.h"
#include "formats/gguf_blocks.h"
#include "python/bindings.h"
#include "python/errors.h"
#include "quant/weight_format.h"

namespace py = pybind11;

namespace lowbit::python {
namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

// Shape of the matrix used for bits per element in format_info (as `lowbit formats` quotes it).
constexpr int64_t kInfoRows = 4096;
constexpr int64_t kInfoCols = 4096;

enum class FormatKind { kElement, kScaled, kGguf };

const char* kind_name(FormatKind k) {
  switch (k) {
    case FormatKind::kElement: return "element";
    case FormatKind::kScaled: return "scaled";
    case FormatKind::kGguf: return "gguf";
  }
  return "?";
}

// A format found by name: an element format, or a matrix format (scaled or GGUF).
struct NamedFormat {
  FormatKind kind = FormatKind::kElement;
  const ElementFormat* element = nullptr;
  std::optional<WeightFormat> matrix;
};

void check_kind(const std::optional<std::string>& kind) {
  if (kind && *kind != "element" && *kind != "scaled" && *kind != "gguf") {
    throw py::value_error("kind='" + *kind + "': expected None, 'element', 'scaled' or 'gguf'");
  }
}

NamedFormat resolve_format(const std::string& name, const std::optional<std::string>& kind) {
  check_kind(kind);
  const bool any = !kind.has_value();
  if (any || *kind == "element") {
    auto e = find_element_format(name);
    if (e.ok()) return {FormatKind::kElement, *e, std::nullopt};
    if (!any) throw LowbitError(e.status().message());
  }
  if (any || *kind == "scaled") {
    auto b = find_block_format(name);
    if (b.ok()) return {FormatKind::kScaled, nullptr, WeightFormat(**b)};
    if (!any) throw LowbitError(b.status().message());
  }
  if (const GgufBlockType* g = find_gguf_block_type(name)) return {FormatKind::kGguf, nullptr, WeightFormat(*g)};
  throw LowbitError(fmt::format("unknown {}format '{}' (lowbit.formats({}) lists the names)",
                                any ? "" : *kind + " ", name, any ? "" : "'" + *kind + "'"));
}

std::vector<std::string> format_names(const std::optional<std::string>& kind) {
  check_kind(kind);
  std::vector<std::string> names;
  auto add = [&](const std::string& n) {
    for (const std::string& have : names) {
      if (have == n) return;  // a name in two tables is listed once (the element format wins)
    }
    names.push_back(n);
  };
  if (!kind || *kind == "element") {
    for (const ElementFormat& e : element_formats()) add(e.name);
  }
  if (!kind || *kind == "scaled") {
    for (const BlockFormat& b : block_formats()) add(b.name());
  }
  if (!kind || *kind == "gguf") {
    for (const GgufBlockType& g : gguf_block_types()) add(g.name);
  }
  return names;
}

py::dict format_info(const std::string& name, const std::optional<std::string>& kind) {
  const NamedFormat f = resolve_format(name, kind);
  py::dict d;
  d["name"] = name;
  d["kind"] = kind_name(f.kind);
  if (f.element != nullptr) {
    d["bits"] = f.element->bits;
    d["max"] = f.element->max_finite;
    d["min_positive"] = f.element->min_positive;
    d["signed"] = f.element->is_signed;
    d["description"] = f.element->description;
    py::list reserved;  // codes encode never produces (element_format.h ElementCodec::is_reserved)
    for (uint32_t c = 0; c < num_codes(*f.element); ++c) {
      if (f.element->codec->is_reserved(c)) reserved.append(c);
    }
    d["reserved_codes"] = reserved;
    return d;
  }
  if (const BlockFormat* b = f.matrix->block_format()) {
    d["bits"] = b->layout.code_bits;
    d["element"] = b->element.name;
    d["block_size"] = b->layout.group_cols;
    d["description"] = b->spec.description;
  } else if (const TrellisParams* t = f.matrix->trellis_params()) {
    d["bits"] = t->code_bits_per_weight();
    d["block_size"] = t->group;
    d["description"] = "trellis-coded weights (formats/trellis_code.h)";
  } else if (const VqParams* v = f.matrix->vq_params()) {
    d["bits"] = v->stages;
    d["block_size"] = v->group;
    d["description"] = "residual VQ codes, per-tensor k-means codebooks (formats/vq_code.h)";
  } else if (const Ptq161Params* p = f.matrix->ptq161_params()) {
    d["salient_permille"] = p->salient_permille;
    d["block_size"] = p->block;
    d["description"] = "PTQ1.61: salient input channels 4-bit, the rest binarised per block";
  } else {
    const GgufBlockType* g = f.matrix->gguf_type();
    d["bits"] = g->code_bits;
    d["block_size"] = g->block_size;
    d["bytes_per_block"] = g->bytes_per_block;
    d["description"] = g->description;
  }
  d["bits_per_element"] = value_or_throw(f.matrix->bits_per_element(kInfoRows, kInfoCols));
  return d;
}

std::vector<py::ssize_t> shape_of(const py::array& a) { return {a.shape(), a.shape() + a.ndim()}; }

// ---- element formats: one code per value, same shape ----

py::array encode_elements(const ElementFormat& format, const FloatArray& x) {
  const ElementKernel kernel = value_or_throw(ElementKernel::create(format));
  const size_t n = static_cast<size_t>(x.size());
  if (format.bits <= 8) {
    py::array_t<uint8_t> codes(shape_of(x));
    uint8_t* out = codes.mutable_data();
    {
      py::gil_scoped_release release;
      kernel.encode(x.data(), out, n);
    }
    return codes;
  }
  py::array_t<uint16_t> codes(shape_of(x));
  uint16_t* out = codes.mutable_data();
  {
    py::gil_scoped_release release;
    kernel.encode(x.data(), out, n);
  }
  return codes;
}

py::array_t<float> decode_elements(const ElementFormat& format, const py::array& codes_in) {
  const char k = codes_in.dtype().kind();
  if (k != 'u' && k != 'i' && k != 'b') {
    throw py::type_error(fmt::format("{} codes: expected an integer array, got dtype {}", format.name,
                                     std::string(py::str(codes_in.dtype()))));
  }
  const auto codes = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(codes_in);
  const int64_t limit = int64_t{1} << format.bits;
  std::vector<uint16_t> c(static_cast<size_t>(codes.size()));  // [n]
  for (size_t i = 0; i < c.size(); ++i) {
    const int64_t v = codes.data()[i];
    if (v < 0 || v >= limit) {
      throw py::value_error(fmt::format("{} codes: code {} at flat index {} is outside [0, {})", format.name, v, i,
                                        limit));
    }
    c[i] = static_cast<uint16_t>(v);
  }
  const ElementKernel kernel = value_or_throw(ElementKernel::create(format));
  py::array_t<float> out(shape_of(codes));
  float* y = out.mutable_data();
  {
    py::gil_scoped_release release;
    kernel.decode(c.data(), y, c.size());
  }
  return out;
}

// ---- matrix formats: an array [..., cols] is a matrix [rows, cols] ----

// What lowbit.quantize returns for a scaled format or GGUF block type: the
// stored arrays of a QuantizedTensor (block_format.h gives the layout), with
// the input's shape so dequantize gives it back.
struct PyQuantized {
  std::string name;
  FormatKind kind;
  WeightFormat format;
  std::vector<py::ssize_t> shape;
  QuantizedTensor q;
};

// importance: [cols] per-column weights >= 0 of the scale search (llama.cpp's imatrix), or none.
PyQuantized quantize_matrix(const std::string& name, FormatKind kind, const WeightFormat& format,
                            const FloatArray& x, const std::optional<FloatArray>& importance) {
  if (x.ndim() == 0) throw py::value_error(name + ": expected an array of at least one dimension, got a scalar");
  const int64_t cols = x.shape(x.ndim() - 1);
  const int64_t rows = cols > 0 ? x.size() / cols : 0;
  throw_if_error(format.check_shape(rows, cols));
  QuantizeOptions options;
  if (importance) {
    if (importance->ndim() != 1 || importance->shape(0) != cols) {
      throw py::value_error(fmt::format("{}: importance must be a 1-D array of {} values (one per column)", name,
                                        cols));
    }
    options.importance = std::span<const float>(importance->data(), static_cast<size_t>(cols));
  }
  PyQuantized out{name, kind, format, shape_of(x), {}};
  Expected<QuantizedTensor> q = [&] {
    py::gil_scoped_release release;
    return format.quantize(x.data(), rows, cols, options);
  }();
  out.q = value_or_throw(std::move(q));
  return out;
}

py::array_t<float> dequantize_matrix(const PyQuantized& t) {
  py::array_t<float> out(t.shape);
  float* y = out.mutable_data();
  Status s;
  {
    py::gil_scoped_release release;
    s = t.format.dequantize(t.q, y);
  }
  throw_if_error(s);
  return out;
}

py::array_t<uint8_t> bytes_array(const std::vector<uint8_t>& v, py::ssize_t rows) {
  const py::ssize_t n = static_cast<py::ssize_t>(v.size());
  py::array_t<uint8_t> a(rows > 0 && n % rows == 0 ? std::vector<py::ssize_t>{rows, n / rows}
                                                   : std::vector<py::ssize_t>{n});
  std::copy(v.begin(), v.end(), a.mutable_data());
  return a;
}

const BlockFormat& scaled_only(const PyQuantized& t, const char* what) {
  if (t.format.block_format() == nullptr) {
    throw py::value_error(fmt::format("{}: {} exists for scaled formats only; a GGUF block type stores "
                                      "whole blocks in .codes", t.name, what));
  }
  return *t.format.block_format();
}

// Element codes [rows, cols], unpacked from the bit stream (block_format.h code_at).
py::array_t<uint16_t> element_codes(const PyQuantized& t) {
  const BlockFormat& f = scaled_only(t, "element_codes()");
  py::array_t<uint16_t> a({static_cast<py::ssize_t>(t.q.rows), static_cast<py::ssize_t>(t.q.cols)});
  uint16_t* out = a.mutable_data();
  for (int64_t r = 0; r < t.q.rows; ++r) {
    for (int64_t c = 0; c < t.q.cols; ++c) out[r * t.q.cols + c] = static_cast<uint16_t>(code_at(f, t.q, r, c));
  }
  return a;
}

// Scale codes [scale_rows, scale_cols] (mins: the asymmetric minimum codes), little-endian words decoded.
py::array_t<uint32_t> scale_codes(const PyQuantized& t, bool mins) {
  const BlockFormat& f = scaled_only(t, mins ? "min_codes()" : "scale_codes()");
  const BlockLayout& l = f.layout;
  const int64_t sr = scale_rows(l, t.q.rows), sc = scale_cols(l, t.q.cols);
  const std::vector<uint8_t>& bytes = mins ? t.q.mins : t.q.scales;
  if (mins && !l.asymmetric) throw py::value_error(t.name + ": min_codes(): the format is symmetric (no minimums)");
  py::array_t<uint32_t> a({static_cast<py::ssize_t>(sr), static_cast<py::ssize_t>(sc)});
  uint32_t* out = a.mutable_data();
  for (int64_t i = 0; i < sr * sc; ++i) out[i] = read_scale_code(bytes.data() + i * l.scale_bytes, l.scale_bytes);
  return a;
}

void check_no_importance(const NamedFormat& f, const std::string& name, const std::optional<FloatArray>& importance) {
  if (f.element != nullptr && importance) {
    throw py::value_error(name + " is an element format: importance applies to scaled formats and GGUF types");
  }
}

py::object quantize_any(const FloatArray& x, const std::string& name, const std::optional<std::string>& kind,
                        const std::optional<FloatArray>& importance) {
  const NamedFormat f = resolve_format(name, kind);
  check_no_importance(f, name, importance);
  if (f.element != nullptr) return encode_elements(*f.element, x);
  return py::cast(quantize_matrix(name, f.kind, *f.matrix, x, importance));
}

py::array_t<float> round_trip(const FloatArray& x, const std::string& name, const std::optional<std::string>& kind,
                              const std::optional<FloatArray>& importance) {
  const NamedFormat f = resolve_format(name, kind);
  check_no_importance(f, name, importance);
  if (f.element != nullptr) return decode_elements(*f.element, encode_elements(*f.element, x));
  return dequantize_matrix(quantize_matrix(name, f.kind, *f.matrix, x, importance));
}

}  // namespace

void register_formats(py::module_& m) {
  m.def("formats", &format_names, py::arg("kind") = py::none(),
        "Format names: kind None (all, a shared name once), 'element', 'scaled' or 'gguf' "
        "(llama.cpp block types).");
  m.def("format_info", &format_info, py::arg("name"), py::arg("kind") = py::none(),
        "A dict describing a format: kind, bits, description, and block size and bits per element "
        "(on a 4096x4096 matrix) for matrix formats.");

  py::class_<PyQuantized>(m, "QuantizedTensor",
                          "A matrix in a scaled format or GGUF block type, as the library stores it.")
      .def_property_readonly("format", [](const PyQuantized& t) { return t.name; })
      .def_property_readonly("kind", [](const PyQuantized& t) { return kind_name(t.kind); })
      .def_property_readonly("shape", [](const PyQuantized& t) { return py::tuple(py::cast(t.shape)); })
      .def_property_readonly("rows", [](const PyQuantized& t) { return t.q.rows; })
      .def_property_readonly("cols", [](const PyQuantized& t) { return t.q.cols; })
      .def_property_readonly("codes", [](const PyQuantized& t) { return bytes_array(t.q.codes, t.q.rows); },
                             "uint8 [rows, bytes per row]: packed element codes (scaled formats, LSB first) or "
                             "the GGUF blocks")
      .def_property_readonly("scales", [](const PyQuantized& t) { return bytes_array(t.q.scales, 0); },
                             "uint8 [n]: the scale codes' little-endian bytes (empty for GGUF types)")
      .def_property_readonly("mins", [](const PyQuantized& t) { return bytes_array(t.q.mins, 0); },
                             "uint8 [n]: the asymmetric minimums' bytes (empty when symmetric)")
      .def_property_readonly("tensor_scale", [](const PyQuantized& t) { return t.q.tensor_scale; },
                             "FP32 second-level scale (NVFP4), else 1")
      .def_property_readonly(
          "nbytes", [](const PyQuantized& t) { return value_or_throw(t.format.stored_bytes(t.q.rows, t.q.cols)); },
          "Stored bytes: codes, scales, minimums and the tensor scale of two-level formats")
      .def_property_readonly("bits_per_element",
                             [](const PyQuantized& t) {
                               return value_or_throw(t.format.bits_per_element(t.q.rows, t.q.cols));
                             })
      .def("element_codes", &element_codes, "uint16 [rows, cols]: each element's code (scaled formats)")
      .def("scale_codes", [](const PyQuantized& t) { return scale_codes(t, false); },
           "uint32 [scale_rows, scale_cols]: the block scale codes (scaled formats)")
      .def("min_codes", [](const PyQuantized& t) { return scale_codes(t, true); },
           "uint32 [scale_rows, scale_cols]: the block minimum codes (asymmetric scaled formats)")
      .def("__repr__", [](const PyQuantized& t) {
        return fmt::format("<lowbit.QuantizedTensor {} ({}) [{}, {}], {} bytes>", t.name, kind_name(t.kind),
                           t.q.rows, t.q.cols, value_or_throw(t.format.stored_bytes(t.q.rows, t.q.cols)));
      });

  m.def("quantize", &quantize_any, py::arg("x"), py::arg("format"), py::arg("kind") = py::none(),
        py::arg("importance") = py::none(),
        "Quantize a float array (converted to float32). Element format: the codes, same shape, uint8 "
        "(<= 8 bits) or uint16. Scaled format or GGUF type: a QuantizedTensor of the matrix "
        "[prod(shape[:-1]), shape[-1]]; importance: [cols] column weights of the scale search (imatrix).");
  m.def("dequantize", &dequantize_matrix, py::arg("q"), "A QuantizedTensor back to float32, in the input's shape.");
  m.def(
      "dequantize",
      [](const py::array& codes, const std::string& name, const std::optional<std::string>& kind) {
        const NamedFormat f = resolve_format(name, kind);
        if (f.element == nullptr) {
          throw py::value_error(name + " is a " + kind_name(f.kind) +
                                " format: dequantize takes the QuantizedTensor that quantize returned");
        }
        return decode_elements(*f.element, codes);
      },
      py::arg("codes"), py::arg("format"), py::arg("kind") = py::none(),
      "Element codes (integer array) back to float32 values, same shape.");
  m.def("round_trip", &round_trip, py::arg("x"), py::arg("format"), py::arg("kind") = py::none(),
        py::arg("importance") = py::none(),
        "Fake quantization: quantize then dequantize, float32 in the input's shape.");
}

}  // namespace lowbit::python
