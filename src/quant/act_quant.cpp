#include "quant/act_quant.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "formats/ggml_activations.h"
#include "io/untrusted_json.h"

namespace lowbit {
namespace {

using json = nlohmann::json;

struct Alias {
  const char* name;
  const char* target;
};
constexpr Alias kAliases[] = {{"fp8", "fp8_e4m3"}, {"fp4", "fp4_e2m1"}, {"mxfp8", "mxfp8_e4m3"}};

std::string resolve_alias(const std::string& name) {
  for (const Alias& a : kAliases) {
    if (name == a.name) return a.target;
  }
  return name;
}

// The element path's format: `element` with one FP32 absmax scale per row (vmax, lo, hi).
Expected<BlockFormat> element_path_format(const std::string& element) {
  BlockFormatSpec s;
  s.name = "act_" + element;
  s.element = element;
  s.granularity = ScaleGranularity::kRow;
  s.scale_type = ScaleType::kFp32;
  s.rule = ScaleRule::kAbsMax;
  return make_block_format(s);
}

// max |x| over [n], or NaN when a value is not finite.
float abs_max(const float* x, int64_t n) {
  float m = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) return std::nanf("");
    m = std::max(m, std::fabs(x[i]));
  }
  return m;
}

}  // namespace

const char* act_granularity_name(ActGranularity g) {
  switch (g) {
    case ActGranularity::kTensor: return "tensor";
    case ActGranularity::kToken: return "token";
    case ActGranularity::kGroup: return "group";
  }
  return "?";
}

Expected<ActQuantSpec> parse_act_spec(const json& j, const std::string& where) {
  if (!j.is_object()) return make_error("{}: \"act\" must be an object", where);
  for (const auto& [key, value] : j.items()) {
    if (key != "format" && key != "granularity" && key != "group" && key != "clip") {
      return make_error("{}: act: unknown key '{}' (known: format, granularity, group, clip)", where, key);
    }
  }
  ActQuantSpec s;
  if (!j.contains("format") || !j["format"].is_string()) return make_error("{}: act needs a \"format\" string", where);
  s.format = j["format"].get<std::string>();
  bool has_granularity = false;
  if (j.contains("granularity")) {
    const std::string g = j["granularity"].is_string() ? j["granularity"].get<std::string>() : "";
    if (g == "tensor") {
      s.granularity = ActGranularity::kTensor;
    } else if (g == "token") {
      s.granularity = ActGranularity::kToken;
    } else if (g == "group") {
      s.granularity = ActGranularity::kGroup;
    } else {
      return make_error("{}: act granularity must be \"tensor\", \"token\" or \"group\", got {}", where,
                        describe_json(j["granularity"]));
    }
    has_granularity = true;
  }
  bool has_group = false;
  if (j.contains("group")) {
    const json& v = j["group"];
    if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > 4096) {
      return make_error("{}: act group must be an integer in [1, 4096], got {}", where, describe_json(v));
    }
    s.group = v.get<int>();
    has_group = true;
  }
  if (j.contains("clip")) {
    const json& v = j["clip"];
    const double c = v.is_number() ? v.get<double>() : std::nan("");
    if (!(c > 0.0 && c <= 1.0)) return make_error("{}: act clip must be a number in (0, 1], got {}", where,
                                                  describe_json(v));
    s.clip = static_cast<float>(c);
  }
  const std::string name = resolve_alias(s.format);
  if (const GgmlActType* ggml = find_ggml_act_type(name)) {
    const ActGranularity g = ggml->block_size == 1 ? ActGranularity::kToken : ActGranularity::kGroup;
    const int group = static_cast<int>(ggml->block_size);
    if ((has_granularity && g != s.granularity) || (has_group && (g != ActGranularity::kGroup || group != s.group))) {
      return make_error("{}: act format \"{}\" fixes granularity \"{}\"{}; drop or match \"granularity\"/\"group\"",
                        where, s.format, act_granularity_name(g),
                        g == ActGranularity::kGroup ? fmt::format(" with group {}", group) : std::string());
    }
    if (s.clip != 1.0f) return make_error("{}: act format \"{}\" takes no clip (llama.cpp's scale rule)", where,
                                          s.format);
    s.granularity = g;
    if (g == ActGranularity::kGroup) s.group = group;
    return s;
  }
  if (element_path_format(name).ok()) {
    if (has_group && s.granularity != ActGranularity::kGroup) {
      return make_error("{}: act \"group\" applies to granularity \"group\" only", where);
    }
    return s;
  }
  auto named = find_block_format(name);
  if (!named.ok()) {
    return make_error("{}: act format \"{}\" is neither an element format nor a named scaled format ({})", where,
                      s.format, named.status().message());
  }
  const BlockFormat& f = **named;
  ActGranularity g = ActGranularity::kToken;
  int group = s.group;
  switch (f.layout.granularity) {
    case ScaleGranularity::kRow: g = ActGranularity::kToken; break;
    case ScaleGranularity::kGroup:
      g = ActGranularity::kGroup;
      group = f.layout.group_cols;
      break;
    default:
      return make_error("{}: act format \"{}\" has {} scales; activations take per-row or per-group formats", where,
                        s.format, granularity_name(f.layout.granularity));
  }
  if ((has_granularity && g != s.granularity) || (has_group && group != s.group)) {
    return make_error("{}: act format \"{}\" fixes granularity \"{}\"{}; drop or match \"granularity\"/\"group\"",
                      where, s.format, act_granularity_name(g),
                      g == ActGranularity::kGroup ? fmt::format(" with group {}", group) : std::string());
  }
  s.granularity = g;
  s.group = group;
  return s;
}

json act_spec_json(const ActQuantSpec& s) {
  json j = {{"format", s.format}, {"granularity", act_granularity_name(s.granularity)}, {"clip", s.clip}};
  if (s.granularity == ActGranularity::kGroup) j["group"] = s.group;
  return j;
}

double act_bits_per_element(const ActQuantSpec& s, int64_t in) {
  const std::string name = resolve_alias(s.format);
  if (const GgmlActType* ggml = find_ggml_act_type(name)) return ggml->bits_per_element;
  auto f = element_path_format(name);
  if (!f.ok()) {
    auto named = find_block_format(name);
    return named.ok() ? (*named)->bits_per_element(1, in) : 0.0;
  }
  const double bits = f->layout.code_bits;
  switch (s.granularity) {
    case ActGranularity::kTensor: return bits;
    case ActGranularity::kToken: return bits + 32.0 / static_cast<double>(in);
    case ActGranularity::kGroup: return bits + 32.0 * ceil_div(in, s.group) / static_cast<double>(in);
  }
  return bits;
}

json act_attachment_json(const ActQuantAttachment& a) {
  json j = act_spec_json(a.spec);
  if (a.spec.is_static()) j["threshold"] = a.static_threshold;
  return j;
}

Expected<ActQuantAttachment> parse_act_attachment(const json& j, const std::string& where) {
  if (!j.is_object()) return make_error("{}: \"act\" must be an object", where);
  json spec = j;
  spec.erase("threshold");
  ActQuantAttachment a;
  LB_ASSIGN_OR_RETURN(a.spec, parse_act_spec(spec, where));
  if (a.spec.is_static()) {
    const double t = j.contains("threshold") && j["threshold"].is_number() ? j["threshold"].get<double>() : 0.0;
    if (!(t > 0.0 && std::isfinite(t))) {
      return make_error("{}: per-tensor static act needs a positive finite \"threshold\"", where);
    }
    a.static_threshold = static_cast<float>(t);
  }
  return a;
}

std::optional<ActQuantSpec> llamacpp_act_spec(GgmlType weight) {
  const GgmlTypeTraits* traits = find_ggml_type(static_cast<uint32_t>(weight));
  if (traits == nullptr || traits->act_type == GgmlType::F32) return std::nullopt;
  const GgmlActType* act = find_ggml_act_type(traits->act_type);
  if (act == nullptr) return std::nullopt;
  ActQuantSpec s;
  s.format = act->name;
  s.granularity = act->block_size == 1 ? ActGranularity::kToken : ActGranularity::kGroup;
  if (act->block_size > 1) s.group = static_cast<int>(act->block_size);
  return s;
}

Expected<ActQuantizer> ActQuantizer::create(const ActQuantSpec& spec) {
  ActQuantizer q;
  q.spec_ = spec;
  if (!(spec.clip > 0.0f && spec.clip <= 1.0f)) return make_error("act quantizer: clip {} outside (0, 1]", spec.clip);
  if (spec.granularity == ActGranularity::kGroup && spec.group < 1) {
    return make_error("act quantizer: group {} must be at least 1", spec.group);
  }
  const std::string name = resolve_alias(spec.format);
  if (const GgmlActType* ggml = find_ggml_act_type(name)) {
    if (spec.clip != 1.0f) return make_error("act quantizer: format \"{}\" takes no clip", spec.format);
    const int64_t block = spec.granularity == ActGranularity::kGroup ? spec.group : 1;
    if (block != ggml->block_size) {
      return make_error("act quantizer: format \"{}\" has blocks of {}, not {}", spec.format, ggml->block_size, block);
    }
    q.ggml_ = ggml;
    return q;
  }
  auto element = element_path_format(name);
  if (element.ok()) {
    q.element_format_ = std::make_shared<const BlockFormat>(std::move(element).value());
    LB_ASSIGN_OR_RETURN(ElementKernel k, ElementKernel::create(q.element_format_->element));
    q.kernel_ = std::make_shared<const ElementKernel>(std::move(k));
    return q;
  }
  auto named = find_block_format(name);
  if (!named.ok()) return named.status().with_context("act quantizer");
  if (spec.is_static()) return make_error("act quantizer: format \"{}\" has no per-tensor static form", spec.format);
  q.named_ = *named;
  LB_ASSIGN_OR_RETURN(BlockKernel k, BlockKernel::create(*q.named_));
  q.block_kernel_ = std::make_shared<const BlockKernel>(std::move(k));
  return q;
}

Status ActQuantizer::apply(const float* x, int64_t n_tokens, int64_t in, float* out, float static_threshold,
                           ThreadPool* pool) const {
  if (spec_.is_static() && !(static_threshold > 0.0f && std::isfinite(static_threshold))) {
    return make_error("act quantizer: per-tensor static threshold {} must be positive and finite", static_threshold);
  }
  if (pool == nullptr || pool->size() == 1 || n_tokens < 2) {
    return apply_rows(x, 0, n_tokens, in, out, static_threshold);
  }
  std::vector<Status> status(static_cast<size_t>(pool->size()), Status::ok_status());
  pool->parallel_for(n_tokens, [&](int64_t b, int64_t e, int t) {
    status[static_cast<size_t>(t)] = apply_rows(x, b, e, in, out, static_threshold);
  });
  for (const Status& s : status) LB_RETURN_IF_ERROR(s);
  return Status::ok_status();
}

Status ActQuantizer::apply_rows(const float* x, int64_t r0, int64_t r1, int64_t in, float* out,
                                float threshold) const {
  const int64_t block = spec_.granularity == ActGranularity::kGroup ? spec_.group : in;
  if (ggml_ != nullptr) {
    for (int64_t r = r0; r < r1; ++r) {
      Status s = ggml_round_activations(*ggml_, x + r * in, in, out + r * in);
      if (!s.ok()) return s.with_context(fmt::format("act quantizer, row {}", r));
    }
    return Status::ok_status();
  }
  if (named_ != nullptr) {
    // Clamp each block to ±clip · amax, then the format library on one row at a time.
    std::vector<float> row(static_cast<size_t>(in));  // [in]
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * in;
      for (int64_t c0 = 0; c0 < in; c0 += block) {
        const int64_t n = std::min(block, in - c0);
        const float amax = abs_max(xr + c0, n);
        if (std::isnan(amax)) return make_error("act quantizer: non-finite input in row {}", r);
        const float t = spec_.clip * amax;
        for (int64_t i = 0; i < n; ++i) row[c0 + i] = std::clamp(xr[c0 + i], -t, t);
      }
      LB_ASSIGN_OR_RETURN(QuantizedTensor q, block_kernel_->quantize(row.data(), 1, in));
      LB_RETURN_IF_ERROR(block_kernel_->dequantize(q, out + r * in));
    }
    return Status::ok_status();
  }
  const BlockFormat& f = *element_format_;
  std::vector<float> y(static_cast<size_t>(in));         // [in] scaled values
  std::vector<uint16_t> codes(static_cast<size_t>(in));  // [in]
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * in;
    float* orow = out + r * in;
    for (int64_t c0 = 0; c0 < in; c0 += block) {
      const int64_t n = std::min(block, in - c0);
      const float amax = abs_max(xr + c0, n);
      if (std::isnan(amax)) return make_error("act quantizer: non-finite input in row {}", r);
      const float t = spec_.is_static() ? threshold : spec_.clip * amax;
      const float s = t / f.element_max;
      if (!(s > 0.0f)) {
        std::fill(orow + c0, orow + c0 + n, 0.0f);
        continue;
      }
      for (int64_t i = 0; i < n; ++i) y[i] = std::clamp(xr[c0 + i] / s, f.code_lo, f.code_hi);
      kernel_->encode(y.data(), codes.data(), static_cast<size_t>(n));
      kernel_->decode(codes.data(), y.data(), static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) orow[c0 + i] = y[i] * s;
    }
  }
  return Status::ok_status();
}

}  // namespace lowbit
