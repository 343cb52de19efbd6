#include "io/compressed_tensors.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

#include "core/bounded_regex.h"
#include "core/half.h"
#include "io/untrusted_json.h"

namespace lowbit {
namespace {

using json = nlohmann::json;
using Dt = SafetensorsDtype;

struct StrategyName {
  CtStrategy strategy;
  const char* name;
};
constexpr StrategyName kStrategies[] = {{CtStrategy::kTensor, "tensor"},
                                        {CtStrategy::kChannel, "channel"},
                                        {CtStrategy::kGroup, "group"},
                                        {CtStrategy::kBlock, "block"},
                                        {CtStrategy::kTensorGroup, "tensor_group"}};

// Bit widths whose packing is the same in every compressed-tensors version: the
// dense cross-word packing of 0.13+ and the earlier 32/b codes per word agree
// exactly when b divides 32 (b = 3, 5, 6, 7 differ between the two).
bool packing_unambiguous(int bits) { return bits == 1 || bits == 2 || bits == 4 || bits == 8; }

Expected<CtWeightArgs> parse_weight_args(const json& w, const std::string& where) {
  if (!w.is_object()) return make_error("{}: \"weights\" is {}, expected an object", where, describe_json(w));
  CtWeightArgs a;
  auto it = w.find("num_bits");
  if (it == w.end() || !it->is_number_integer()) return make_error("{}: \"num_bits\" missing or not an integer", where);
  a.num_bits = it->get<int>();
  const std::string type = w.value("type", std::string("int"));
  if (type != "int" && type != "float") return make_error("{}: \"type\" '{}' is not \"int\" or \"float\"", where, type);
  a.is_float = type == "float";
  if (auto s = w.find("symmetric"); s != w.end() && !s->is_null()) {
    if (!s->is_boolean()) return make_error("{}: \"symmetric\" is {}, expected true or false", where,
                                            describe_json(*s));
    a.symmetric = s->get<bool>();
  }
  if (auto d = w.find("dynamic"); d != w.end() && !(d->is_boolean() && !d->get<bool>()) && !d->is_null()) {
    return make_error("{}: dynamic weight quantization ({}) is not a stored checkpoint", where, describe_json(*d));
  }
  int64_t group = 0;
  bool has_group = false;
  if (auto g = w.find("group_size"); g != w.end() && !g->is_null()) {
    if (!g->is_number_integer()) return make_error("{}: \"group_size\" is {}, expected an integer", where,
                                                   describe_json(*g));
    group = g->get<int64_t>();
    has_group = true;
  }
  std::string strategy;
  if (auto s = w.find("strategy"); s != w.end() && !s->is_null()) {
    if (!s->is_string()) return make_error("{}: \"strategy\" is {}, expected a string", where, describe_json(*s));
    strategy = s->get<std::string>();
  } else {  // inferred from the group size as compressed-tensors does
    strategy = !has_group ? "tensor" : group == -1 ? "channel" : "group";
  }
  bool known = false;
  for (const auto& s : kStrategies) {
    if (strategy == s.name) {
      a.strategy = s.strategy;
      known = true;
    }
  }
  if (!known) return make_error("{}: weight strategy '{}' is not supported", where, strategy);
  if (a.strategy == CtStrategy::kGroup || a.strategy == CtStrategy::kTensorGroup) {
    if (group <= 0) return make_error("{}: strategy '{}' needs a positive \"group_size\"", where, strategy);
    a.group_size = group;
  }
  if (a.strategy == CtStrategy::kBlock) {
    auto b = w.find("block_structure");
    if (b == w.end() || !b->is_array() || b->size() != 2 || !(*b)[0].is_number_integer() ||
        !(*b)[1].is_number_integer() || (*b)[0].get<int64_t>() <= 0 || (*b)[1].get<int64_t>() <= 0) {
      return make_error("{}: strategy 'block' needs \"block_structure\": [rows, cols] of positive integers", where);
    }
    a.block_rows = (*b)[0].get<int64_t>();
    a.block_cols = (*b)[1].get<int64_t>();
  }
  return a;
}

// Whether lowbit decodes weights stored in `format` under `a`; "" = yes, else why not.
std::string unsupported_reason(const std::string& format, const CtWeightArgs& a) {
  if (format == kCtFormatPacked) {
    if (a.is_float) return "pack-quantized holds integer weights";
    if (!packing_unambiguous(a.num_bits)) {
      return fmt::format("{}-bit packing differs between compressed-tensors versions (1, 2, 4 and 8 bits are read)",
                         a.num_bits);
    }
    if (a.strategy == CtStrategy::kBlock || a.strategy == CtStrategy::kTensorGroup) return "strategy not used with INT";
    if (!a.symmetric && a.strategy == CtStrategy::kTensor) return "asymmetric per-tensor zero points are not read";
    return "";
  }
  if (format == kCtFormatFloat) {
    if (!a.is_float || a.num_bits != 8) return "float-quantized holds FP8 E4M3 weights";
    if (!a.symmetric) return "asymmetric FP8 is not read";
    if (a.strategy == CtStrategy::kTensorGroup) return "strategy not used with FP8";
    return "";
  }
  if (format == kCtFormatNvfp4) {
    if (!a.is_float || a.num_bits != 4 || a.group_size != 16 || !a.symmetric) {
      return "nvfp4-pack-quantized holds symmetric FP4 E2M1 in groups of 16";
    }
    return "";
  }
  return "format not read by lowbit (pack-quantized, float-quantized and nvfp4-pack-quantized are)";
}

// "re:" targets come from an untrusted config.json: a BoundedRegex (bounded
// length, nesting and backtracking) rather than std::regex, which recurses per
// parenthesis and backtracks without limit.
Expected<std::optional<BoundedRegex>> compile_target(const std::string& target, const std::string& where) {
  if (target.rfind("re:", 0) != 0) return std::optional<BoundedRegex>();
  const std::string what = target.size() <= 64 ? fmt::format("{}: target '{}'", where, target) : where + ": target";
  LB_ASSIGN_OR_RETURN(BoundedRegex re, BoundedRegex::compile(target.substr(3), what));
  return std::optional<BoundedRegex>(std::move(re));
}

// Whether `module` is named by `target` ("Linear", a name, or "re:" matched from
// the start of the name, as Python's re.match).
Expected<bool> target_matches(const std::string& module, const std::string& target, const std::string& where) {
  if (target == "Linear") return true;  // every module asked about is a Linear
  LB_ASSIGN_OR_RETURN(std::optional<BoundedRegex> re, compile_target(target, where));
  if (re) return re->search(module, /*anchored=*/true);
  return target == module;
}

Expected<bool> matches_any(const std::string& module, const std::vector<std::string>& targets,
                           const std::string& where) {
  for (const std::string& t : targets) {
    LB_ASSIGN_OR_RETURN(const bool found, target_matches(module, t, where));
    if (found) return true;
  }
  return false;
}

std::string shape_str(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

Status expect(const SafetensorsTensor* t, const char* what, std::initializer_list<Dt> dtypes,
              const std::vector<int64_t>& shape, const std::string& where) {
  if (t == nullptr) return make_error("{}: missing {}", where, what);
  bool dtype_ok = false;
  std::string names;
  for (Dt d : dtypes) {
    dtype_ok |= t->dtype == d;
    names += (names.empty() ? "" : " or ") + std::string(safetensors_dtype_info(d).name);
  }
  if (!dtype_ok) {
    return make_error("{}: {} has dtype {}, expected {}", where, what, safetensors_dtype_info(t->dtype).name, names);
  }
  if (t->shape != shape) {
    return make_error("{}: {} has shape {}, expected {}", where, what, shape_str(t->shape), shape_str(shape));
  }
  return Status::ok_status();
}

// The scale grid of a strategy over [rows, cols]: shape, and the index of (r, c).
struct ScaleGrid {
  std::vector<int64_t> shape;
  int64_t row_div = 1, col_div = 1, cols = 1;  // index = (r / row_div) * cols + c / col_div
  int64_t index(int64_t r, int64_t c) const { return (r / row_div) * cols + c / col_div; }
};

Expected<ScaleGrid> scale_grid(const CtWeightArgs& a, int64_t rows, int64_t cols, const std::string& where) {
  ScaleGrid g;
  switch (a.strategy) {
    case CtStrategy::kTensor:
      g.shape = {1};
      g.row_div = rows > 0 ? rows : 1;
      g.col_div = cols > 0 ? cols : 1;
      break;
    case CtStrategy::kChannel:
      g.shape = {rows, 1};
      g.col_div = cols > 0 ? cols : 1;
      break;
    case CtStrategy::kGroup:
    case CtStrategy::kTensorGroup:
      if (cols % a.group_size != 0) {
        return make_error("{}: {} columns are not a multiple of group_size {}", where, cols, a.group_size);
      }
      g.cols = cols / a.group_size;
      g.shape = {rows, g.cols};
      g.col_div = a.group_size;
      break;
    case CtStrategy::kBlock:
      g.cols = (cols + a.block_cols - 1) / a.block_cols;
      g.shape = {(rows + a.block_rows - 1) / a.block_rows, g.cols};
      g.row_div = a.block_rows;
      g.col_div = a.block_cols;
      break;
  }
  return g;
}

// A scale tensor as FP32, accepting the scalar forms [] and [1] of a tensor scale.
Expected<std::vector<float>> read_scales(const SafetensorsTensor* t, const char* what, const ScaleGrid& g,
                                         std::initializer_list<Dt> dtypes, const std::string& where) {
  std::vector<int64_t> shape = g.shape;
  if (t != nullptr && g.shape == std::vector<int64_t>{1} && t->n_elements() == 1) shape = t->shape;
  LB_RETURN_IF_ERROR(expect(t, what, dtypes, shape, where));
  const size_t n = static_cast<size_t>(t->n_elements());
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) {
    switch (t->dtype) {
      case Dt::kF32: std::memcpy(&out[i], t->data + 4 * i, 4); break;
      case Dt::kF16:
      case Dt::kBF16: {
        uint16_t h;
        std::memcpy(&h, t->data + 2 * i, 2);
        out[i] = half_code_to_float(h, t->dtype == Dt::kBF16);
        break;
      }
      case Dt::kF8_E4M3: out[i] = ct_fp8_e4m3_to_float(t->data[i]); break;
      default: return make_error("{}: {} dtype not readable", where, what);
    }
    if (!std::isfinite(out[i])) return make_error("{}: {} element {} is not finite", where, what, i);
  }
  return out;
}

// Rounds an FP32 product to the scale's dtype, as the reference decompressor
// (which computes in that dtype) does.
float round_to(Dt dtype, float x) {
  if (dtype == Dt::kF16) return fp16_to_float(float_to_fp16(x));
  if (dtype == Dt::kBF16) return bf16_to_float(float_to_bf16(x));
  return x;
}

// Code c of a little-endian bit stream of b-bit codes (b <= 8) starting at `row`.
uint32_t stream_code(const uint8_t* row, int64_t c, int bits) {
  const int64_t bit = c * bits;
  const int64_t byte = bit / 8;
  const int shift = static_cast<int>(bit % 8);
  uint32_t v = row[byte] >> shift;
  if (shift + bits > 8) v |= static_cast<uint32_t>(row[byte + 1]) << (8 - shift);
  return v & ((1u << bits) - 1u);
}

Status check_weight_shape(const SafetensorsTensor* t, int64_t rows, int64_t cols, const std::string& where) {
  if (t == nullptr) return Status::ok_status();  // optional: the config gives the shape
  if ((t->dtype != Dt::kI64 && t->dtype != Dt::kI32) || t->n_elements() != 2) {
    return make_error("{}: weight_shape must be 2 integers (I64 or I32)", where);
  }
  int64_t v[2];
  for (int i = 0; i < 2; ++i) {
    if (t->dtype == Dt::kI64) {
      std::memcpy(&v[i], t->data + 8 * i, 8);
    } else {
      int32_t x;
      std::memcpy(&x, t->data + 4 * i, 4);
      v[i] = x;
    }
  }
  if (v[0] != rows || v[1] != cols) {
    return make_error("{}: weight_shape [{}, {}] but config.json implies [{}, {}]", where, v[0], v[1], rows, cols);
  }
  return Status::ok_status();
}

Expected<std::vector<float>> dequantize_packed(const CtWeightArgs& a, const CtModuleTensors& t, int64_t rows,
                                               int64_t cols, const std::string& where) {
  const int b = a.num_bits;
  const int64_t words = ct_packed_words(cols, b);
  LB_RETURN_IF_ERROR(expect(t.weight_packed, "weight_packed", {Dt::kI32}, {rows, words}, where));
  LB_RETURN_IF_ERROR(check_weight_shape(t.weight_shape, rows, cols, where));
  LB_ASSIGN_OR_RETURN(ScaleGrid g, scale_grid(a, rows, cols, where));
  LB_ASSIGN_OR_RETURN(std::vector<float> s, read_scales(t.weight_scale, "weight_scale", g,
                                                        {Dt::kF32, Dt::kF16, Dt::kBF16}, where));
  const int32_t offset = 1 << (b - 1);  // stored codes are q + 2^(b-1)
  std::vector<int32_t> zero(s.size(), 0);
  if (!a.symmetric) {
    const int64_t zp_rows = g.shape[0], zp_cols = g.shape.size() > 1 ? g.shape[1] : 1;
    LB_RETURN_IF_ERROR(expect(t.weight_zero_point, "weight_zero_point", {Dt::kI32},
                              {ct_packed_words(zp_rows, b), zp_cols}, where));
    // [words, zp_cols]: column j's zero points are a bit stream down the rows.
    std::vector<uint8_t> column(static_cast<size_t>(ct_packed_words(zp_rows, b)) * 4);
    for (int64_t j = 0; j < zp_cols; ++j) {
      for (size_t w = 0; w < column.size() / 4; ++w) {
        std::memcpy(column.data() + 4 * w, t.weight_zero_point->data + 4 * (w * zp_cols + j), 4);
      }
      for (int64_t r = 0; r < zp_rows; ++r) {
        zero[r * zp_cols + j] = static_cast<int32_t>(stream_code(column.data(), r, b)) - offset;
      }
    }
  }
  const Dt dtype = t.weight_scale->dtype;
  std::vector<float> out(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row = t.weight_packed->data + r * words * 4;
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t k = g.index(r, c);
      const int32_t q = static_cast<int32_t>(stream_code(row, c, b)) - offset;
      out[r * cols + c] = round_to(dtype, static_cast<float>(q - zero[k]) * s[k]);
    }
  }
  return out;
}

Expected<std::vector<float>> dequantize_fp8(const CtWeightArgs& a, const CtModuleTensors& t, int64_t rows,
                                            int64_t cols, const std::string& where) {
  LB_RETURN_IF_ERROR(expect(t.weight, "weight", {Dt::kF8_E4M3}, {rows, cols}, where));
  LB_ASSIGN_OR_RETURN(ScaleGrid g, scale_grid(a, rows, cols, where));
  LB_ASSIGN_OR_RETURN(std::vector<float> s, read_scales(t.weight_scale, "weight_scale", g,
                                                        {Dt::kF32, Dt::kF16, Dt::kBF16}, where));
  const Dt dtype = t.weight_scale->dtype;
  std::vector<float> out(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      out[r * cols + c] = round_to(dtype, ct_fp8_e4m3_to_float(t.weight->data[r * cols + c]) * s[g.index(r, c)]);
    }
  }
  return out;
}

Expected<std::vector<float>> dequantize_nvfp4(const CtWeightArgs& a, const CtModuleTensors& t, int64_t rows,
                                              int64_t cols, const std::string& where) {
  if (cols % 2 != 0) return make_error("{}: NVFP4 needs an even number of columns, not {}", where, cols);
  LB_RETURN_IF_ERROR(expect(t.weight_packed, "weight_packed", {Dt::kU8}, {rows, cols / 2}, where));
  LB_ASSIGN_OR_RETURN(ScaleGrid g, scale_grid(a, rows, cols, where));
  LB_ASSIGN_OR_RETURN(std::vector<float> s, read_scales(t.weight_scale, "weight_scale", g, {Dt::kF8_E4M3}, where));
  ScaleGrid one;
  one.shape = {1};
  LB_ASSIGN_OR_RETURN(std::vector<float> global,
                      read_scales(t.weight_global_scale, "weight_global_scale", one, {Dt::kF32}, where));
  if (!(global[0] > 0.0f)) return make_error("{}: weight_global_scale {} is not positive", where, global[0]);
  for (float& v : s) v = v / global[0];  // the block scale the codes multiply
  std::vector<float> out(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row = t.weight_packed->data + r * (cols / 2);
    for (int64_t c = 0; c < cols; ++c) {
      const uint8_t code = static_cast<uint8_t>(row[c / 2] >> (4 * (c % 2)));
      out[r * cols + c] = ct_fp4_e2m1_to_float(code) * s[g.index(r, c)];
    }
  }
  return out;
}

}  // namespace

const char* ct_strategy_name(CtStrategy s) {
  for (const auto& n : kStrategies) {
    if (n.strategy == s) return n.name;
  }
  return "?";
}

Expected<CtConfig> parse_ct_config(const json& qc, const std::string& where) {
  if (!qc.is_object()) return make_error("{}: \"quantization_config\" is not an object", where);
  const std::string method = qc.value("quant_method", std::string());
  if (method != "compressed-tensors") {
    return make_error("{}: quant_method '{}' is not supported (only \"compressed-tensors\")", where, method);
  }
  CtConfig c;
  if (auto f = qc.find("format"); f != qc.end() && f->is_string()) c.format = f->get<std::string>();
  auto groups = qc.find("config_groups");
  if (groups == qc.end() || !groups->is_object()) return make_error("{}: \"config_groups\" missing or not an object", where);
  for (const auto& [name, g] : groups->items()) {
    const std::string gw = fmt::format("{}: config_groups.{}", where, name);
    if (!g.is_object()) return make_error("{}: not a scheme object (preset names are not supported)", gw);
    CtScheme s;
    auto targets = g.find("targets");
    if (targets == g.end() || !targets->is_array()) return make_error("{}: \"targets\" missing or not a list", gw);
    for (const auto& t : *targets) {
      if (!t.is_string()) return make_error("{}: target {} is not a string", gw, describe_json(t));
      s.targets.push_back(t.get<std::string>());
      LB_RETURN_IF_ERROR(compile_target(s.targets.back(), gw).status());
    }
    s.format = c.format;
    if (auto f = g.find("format"); f != g.end() && f->is_string()) s.format = f->get<std::string>();
    if (s.format.empty() || s.format == "mixed-precision") {
      return make_error("{}: no compression format (the group has none and the top level says '{}')", gw, c.format);
    }
    auto w = g.find("weights");
    if (w == g.end() || w->is_null()) continue;  // activation-only scheme: weights stay dense
    LB_ASSIGN_OR_RETURN(s.weights, parse_weight_args(*w, gw + ".weights"));
    if (const std::string why = unsupported_reason(s.format, s.weights); !why.empty()) {
      return make_error("{}: {} with {}-bit {} {} weights: {}", gw, s.format, s.weights.num_bits,
                        s.weights.is_float ? "float" : "int", ct_strategy_name(s.weights.strategy), why);
    }
    if (auto in = g.find("input_activations"); in != g.end() && !in->is_null()) s.has_input_activations = true;
    c.groups.emplace_back(name, std::move(s));
  }
  if (auto ig = qc.find("ignore"); ig != qc.end() && !ig->is_null()) {
    if (!ig->is_array()) return make_error("{}: \"ignore\" is not a list", where);
    for (const auto& t : *ig) {
      if (!t.is_string()) return make_error("{}: ignore entry {} is not a string", where, describe_json(t));
      c.ignore.push_back(t.get<std::string>());
      LB_RETURN_IF_ERROR(compile_target(c.ignore.back(), where + ": ignore").status());
    }
  }
  return c;
}

Expected<const CtScheme*> CtConfig::scheme_for(const std::string& module) const {
  for (const auto& [name, s] : groups) {
    LB_ASSIGN_OR_RETURN(bool hit, matches_any(module, s.targets, "config_groups." + name));
    if (!hit) continue;
    LB_ASSIGN_OR_RETURN(bool ignored, matches_any(module, ignore, "ignore"));
    return ignored ? nullptr : &s;
  }
  return static_cast<const CtScheme*>(nullptr);
}

nlohmann::ordered_json ct_config_to_json(const CtConfig& c) {
  nlohmann::ordered_json groups = nlohmann::ordered_json::object();
  for (const auto& [name, s] : c.groups) {
    const CtWeightArgs& a = s.weights;
    nlohmann::ordered_json w;
    w["num_bits"] = a.num_bits;
    w["type"] = a.is_float ? "float" : "int";
    w["symmetric"] = a.symmetric;
    w["group_size"] = (a.strategy == CtStrategy::kGroup || a.strategy == CtStrategy::kTensorGroup)
                          ? nlohmann::ordered_json(a.group_size)
                          : nlohmann::ordered_json(nullptr);
    w["strategy"] = ct_strategy_name(a.strategy);
    w["block_structure"] = a.strategy == CtStrategy::kBlock
                               ? nlohmann::ordered_json({a.block_rows, a.block_cols})
                               : nlohmann::ordered_json(nullptr);
    w["dynamic"] = false;
    w["actorder"] = nullptr;
    w["observer"] = "minmax";
    w["observer_kwargs"] = nlohmann::ordered_json::object();
    nlohmann::ordered_json g;
    g["targets"] = s.targets;
    g["weights"] = std::move(w);
    g["input_activations"] = nullptr;
    g["output_activations"] = nullptr;
    g["format"] = s.format;
    groups[name] = std::move(g);
  }
  nlohmann::ordered_json j;
  j["quant_method"] = "compressed-tensors";
  j["format"] = c.format;
  j["quantization_status"] = "compressed";
  j["config_groups"] = std::move(groups);
  j["ignore"] = c.ignore;
  j["kv_cache_scheme"] = nullptr;
  j["global_compression_ratio"] = nullptr;
  j["sparsity_config"] = nlohmann::ordered_json::object();
  return j;
}

Expected<std::vector<float>> ct_dequantize(const CtScheme& scheme, const CtModuleTensors& t, int64_t rows,
                                           int64_t cols, const std::string& where) {
  if (scheme.format == kCtFormatPacked) return dequantize_packed(scheme.weights, t, rows, cols, where);
  if (scheme.format == kCtFormatFloat) return dequantize_fp8(scheme.weights, t, rows, cols, where);
  if (scheme.format == kCtFormatNvfp4) return dequantize_nvfp4(scheme.weights, t, rows, cols, where);
  return make_error("{}: compression format '{}' is not read", where, scheme.format);
}

int64_t ct_packed_words(int64_t n, int bits) { return (n * bits + 31) / 32; }

std::vector<uint8_t> ct_pack_rows(const uint8_t* codes, int64_t rows, int64_t cols, int bits) {
  const int64_t row_bytes = ct_packed_words(cols, bits) * 4;
  std::vector<uint8_t> out(static_cast<size_t>(rows * row_bytes), 0);
  const uint32_t mask = (1u << bits) - 1u;
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* dst = out.data() + r * row_bytes;
    for (int64_t c = 0; c < cols; ++c) {
      const uint32_t v = codes[r * cols + c] & mask;
      const int64_t bit = c * bits;
      const int shift = static_cast<int>(bit % 8);
      dst[bit / 8] |= static_cast<uint8_t>(v << shift);
      if (shift + bits > 8) dst[bit / 8 + 1] |= static_cast<uint8_t>(v >> (8 - shift));
    }
  }
  return out;
}

std::vector<uint8_t> ct_pack_columns(const uint8_t* codes, int64_t rows, int64_t cols, int bits) {
  std::vector<uint8_t> transposed(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) transposed[c * rows + r] = codes[r * cols + c];
  }
  // [cols, words] packed along the rows of the transpose, then transposed back.
  const std::vector<uint8_t> packed = ct_pack_rows(transposed.data(), cols, rows, bits);
  const int64_t words = ct_packed_words(rows, bits);
  std::vector<uint8_t> out(static_cast<size_t>(words * cols * 4));
  for (int64_t c = 0; c < cols; ++c) {
    for (int64_t w = 0; w < words; ++w) std::memcpy(&out[4 * (w * cols + c)], &packed[4 * (c * words + w)], 4);
  }
  return out;
}

float ct_fp8_e4m3_to_float(uint8_t code) {
  const float sign = (code & 0x80) ? -1.0f : 1.0f;
  const int exponent = (code >> 3) & 0xf;
  const int mantissa = code & 0x7;
  if (exponent == 0xf && mantissa == 0x7) return std::numeric_limits<float>::quiet_NaN();
  if (exponent == 0) return sign * std::ldexp(static_cast<float>(mantissa), -9);  // subnormal: m/8 * 2^-6
  return sign * std::ldexp(static_cast<float>(8 + mantissa), exponent - 10);      // (1 + m/8) * 2^(e-7)
}

float ct_fp4_e2m1_to_float(uint8_t code) {
  static constexpr float kMagnitude[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  const float m = kMagnitude[code & 0x7];
  return (code & 0x8) ? -m : m;
}

}  // namespace lowbit
