#include "kvcache/kv_spec.h"

#include <cctype>
#include <charconv>
#include <cstdlib>

namespace lowbit {
namespace {

constexpr const char* kKnownParts = "kivi, gG, bB, rR, sinkS, sparseP, prerope, rot, rotgG, reorder, nuq, qnorm, fp8, e5m2, fp4";

// Whole-string non-negative integer.
bool parse_int(std::string_view s, int* out) {
  if (s.empty() || s.size() > 10) return false;  // from_chars reports a larger value as out of range
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

bool parse_number(std::string_view s, double* out) {
  if (s.empty() || s.size() > 16) return false;
  for (char c : s) {
    if (!(c == '.' || (c >= '0' && c <= '9'))) return false;
  }
  const std::string copy(s);
  char* end = nullptr;
  *out = std::strtod(copy.c_str(), &end);
  return end == copy.c_str() + copy.size();
}

// "prefix123" -> 123.
bool numbered(std::string_view part, std::string_view prefix, int* value) {
  return part.size() > prefix.size() && part.substr(0, prefix.size()) == prefix &&
         parse_int(part.substr(prefix.size()), value);
}

// The numbered parts and the values each takes (kMaxPartNumber for all: far beyond
// any context length or head count, and within an int).
constexpr int kMaxPartNumber = 1 << 30;
struct NumberedPart {
  const char* prefix;
  int min;
  const char* what;
};
constexpr NumberedPart kNumberedParts[] = {{"rotg", 1, "the rotation group in KV heads"},
                                           {"sink", 0, "the sink tokens kept in FP32"},
                                           {"r", 0, "the residual window in tokens"},
                                           {"g", 1, "the group size"},
                                           {"b", 1, "the key token block of -kivi"}};

// A known prefix followed by digits whose value is outside the part's range:
// named as such, not as an unknown part.
Status check_part_number(std::string_view part) {
  size_t digits = 0;
  while (digits < part.size() && !std::isdigit(static_cast<unsigned char>(part[digits]))) ++digits;
  const std::string_view prefix = part.substr(0, digits), number = part.substr(digits);
  if (number.empty()) return Status::ok_status();
  for (char c : number) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return Status::ok_status();
  }
  for (const NumberedPart& np : kNumberedParts) {
    if (prefix != np.prefix) continue;
    int64_t value = 0;
    const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (ec != std::errc() || value < np.min || value > kMaxPartNumber) {
      return make_error("part '{}': {} takes a whole number from {} to {} ({})", part, np.prefix, np.min,
                        kMaxPartNumber, np.what);
    }
  }
  return Status::ok_status();
}

struct Family {
  KvElement element = KvElement::kInteger;
  const char* part = nullptr;  // the spec part that chose it
};

Status check_bits_for(const Family& f, int bits, const std::string& what) {
  if (bits == 32) return Status::ok_status();
  if (bits < 2 || bits > 16) return make_error("{}: bits must be 2..16 (or 32 for FP32), got {}", what, bits);
  switch (f.element) {
    case KvElement::kFp8E4M3:
    case KvElement::kFp8E5M2:
      if (bits != 8) return make_error("part '{}' needs 8-bit codes, but {} has {} bits", f.part, what, bits);
      break;
    case KvElement::kFp4E2M1:
      if (bits != 4) return make_error("part '{}' needs 4-bit codes, but {} has {} bits", f.part, what, bits);
      break;
    case KvElement::kCodebook:
      if (bits > 8) return make_error("part 'nuq' needs at most 8 bits (256 levels), but {} has {} bits", what, bits);
      break;
    default: break;
  }
  return Status::ok_status();
}

}  // namespace

bool KvSpec::is_fp32() const {
  if (rotate || pre_rope) return false;
  for (const KvLayerSpec& l : layers) {
    if (l.key.quantized() || l.value.quantized()) return false;
  }
  return true;
}

bool KvSpec::uses_codebooks() const {
  for (const KvLayerSpec& l : layers) {
    if (l.key.element == KvElement::kCodebook || l.value.element == KvElement::kCodebook) return true;
  }
  return false;
}

double KvSpec::average_bits(int n_layers) const {
  if (n_layers <= 0) return 0.0;
  double sum = 0.0;
  for (int i = 0; i < n_layers; ++i) sum += layer(i).key.bits + layer(i).value.bits;
  return sum / (2.0 * n_layers);
}

std::string KvSpec::describe() const {
  const char* per_layer = layers.size() > 1 ? ", per-layer bits" : "";
  if (source.empty()) return layers.size() > 1 ? fmt::format("{} ({})", name, per_layer + 2) : name;
  return fmt::format("{} ({}{})", source, name, per_layer);
}

Expected<KvTensorSpec> kv_tensor_with_bits(const KvTensorSpec& like, int bits, const std::string& what) {
  if (like.element == KvElement::kFloat16) {
    return make_error("{}: the fp16 cache stores 16-bit halves; it has no choice of bits", what);
  }
  KvTensorSpec t = like;
  Family f;
  f.element = like.element == KvElement::kFloat32 ? KvElement::kInteger : like.element;
  f.part = like.element == KvElement::kFp8E4M3   ? "fp8"
           : like.element == KvElement::kFp8E5M2 ? "e5m2"
           : like.element == KvElement::kFp4E2M1 ? "fp4"
                                                  : "nuq";
  LB_RETURN_IF_ERROR(check_bits_for(f, bits, what));
  t.bits = bits;
  t.element = bits == 32 ? KvElement::kFloat32 : f.element;
  return t;
}

Expected<KvSpec> parse_kv_spec(const std::string& text) {
  auto fail = [&](const Status& s) { return Status::error(fmt::format("kv spec '{}': {}", text, s.message())); };
  KvSpec spec;
  spec.name = text;
  if (text == "fp32" || text == "f32") return spec;
  if (text == "fp16" || text == "f16") {
    KvTensorSpec half;
    half.element = KvElement::kFloat16;
    half.bits = 16;
    spec.layers = {KvLayerSpec{half, half}};
    return spec;
  }

  std::vector<std::string_view> parts;
  std::string_view rest(text);
  while (true) {
    const size_t dash = rest.find('-');
    parts.push_back(rest.substr(0, dash));
    if (dash == std::string_view::npos) break;
    rest = rest.substr(dash + 1);
  }
  // kNvM
  const std::string_view head = parts[0];
  const size_t v_at = head.find('v');
  int key_bits = 0, value_bits = 0;
  if (head.size() < 4 || head[0] != 'k' || v_at == std::string_view::npos ||
      !parse_int(head.substr(1, v_at - 1), &key_bits) || !parse_int(head.substr(v_at + 1), &value_bits)) {
    return fail(make_error("the first part '{}' must be kNvM (key and value bits, e.g. k4v4), fp32 or fp16", head));
  }

  Family family;
  bool kivi = false;
  int group = 0, block = 0;
  std::vector<std::string> seen;
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string_view p = parts[i];
    if (p.empty()) return fail(make_error("empty part (two dashes in a row, or a trailing dash)"));
    if (Status s = check_part_number(p); !s.ok()) return fail(s);
    // The name of the part without its number, to reject repeats.
    std::string kind(p);
    while (!kind.empty() && (std::isdigit(static_cast<unsigned char>(kind.back())) || kind.back() == '.')) {
      kind.pop_back();
    }
    if (kind == "fp" || kind == "e" || kind == "e5m") kind = "element";  // fp8, fp4, e5m2
    if (kind == "rotg") kind = "rot";                                    // rot, rotgG
    for (const std::string& s : seen) {
      if (s == kind) return fail(make_error("part '{}' repeats an earlier part", p));
    }
    seen.push_back(kind);

    int n = 0;
    double x = 0.0;
    auto set_family = [&](KvElement e, const char* name) -> Status {
      if (family.part != nullptr) {
        return make_error("part '{}' conflicts with part '{}' (one element type per spec)", name, family.part);
      }
      family.element = e;
      family.part = name;
      return Status::ok_status();
    };
    if (p == "kivi") {
      kivi = true;
    } else if (p == "prerope") {
      spec.pre_rope = true;
    } else if (p == "rot") {
      spec.rotate = true;
    } else if (numbered(p, "rotg", &n)) {  // ranges: check_part_number
      spec.rotate = true;
      spec.rotate_group = n;
    } else if (p == "reorder") {
      spec.reorder_keys = true;
    } else if (p == "qnorm") {
      spec.qnorm = true;
    } else if (p == "nuq") {
      if (Status s = set_family(KvElement::kCodebook, "nuq"); !s.ok()) return fail(s);
    } else if (p == "fp8") {
      if (Status s = set_family(KvElement::kFp8E4M3, "fp8"); !s.ok()) return fail(s);
    } else if (p == "e5m2") {
      if (Status s = set_family(KvElement::kFp8E5M2, "e5m2"); !s.ok()) return fail(s);
    } else if (p == "fp4") {
      if (Status s = set_family(KvElement::kFp4E2M1, "fp4"); !s.ok()) return fail(s);
    } else if (numbered(p, "sink", &n)) {
      spec.sinks = n;
    } else if (p.substr(0, 6) == "sparse" && parse_number(p.substr(6), &x)) {
      if (!(x > 0.0 && x <= 100.0)) return fail(make_error("part '{}': the percentage must be in (0, 100]", p));
      spec.sparse_percent = x;
    } else if (numbered(p, "r", &n)) {
      spec.residual = n;
    } else if (numbered(p, "g", &n)) {
      group = n;
    } else if (numbered(p, "b", &n)) {
      block = n;
    } else {
      return fail(make_error("unknown part '{}' (known: {})", p, kKnownParts));
    }
  }
  if (block != 0 && !kivi) return fail(make_error("part 'b{}' sets the key token block of -kivi; add -kivi", block));
  if (spec.reorder_keys && !spec.rotate) {
    return fail(make_error("part 'reorder' permutes the key channels before the Hadamard rotation; add -rot or -rotgG"));
  }
  if (spec.qnorm && family.element != KvElement::kCodebook) {
    return fail(make_error("part 'qnorm' normalises fitted NUQ codebooks; add -nuq"));
  }
  if (family.part == nullptr) family.part = "nuq";  // only read for kCodebook

  KvTensorSpec tmpl;
  tmpl.element = family.element;
  tmpl.group = group;
  if (block != 0) tmpl.token_block = block;
  KvLayerSpec layer;
  const std::string what_k = fmt::format("the keys (k{})", key_bits);
  const std::string what_v = fmt::format("the values (v{})", value_bits);
  auto key = kv_tensor_with_bits(tmpl, key_bits, what_k);
  if (!key.ok()) return fail(key.status());
  auto value = kv_tensor_with_bits(tmpl, value_bits, what_v);
  if (!value.ok()) return fail(value.status());
  layer.key = *key;
  layer.value = *value;
  if (kivi) layer.key.granularity = KvGranularity::kPerChannel;
  spec.layers = {layer};
  return spec;
}

const char* kv_spec_help() {
  return "KV cache: fp32, fp16 (IEEE half, llama.cpp's default), or kNvM (key/value bits 2..16, 32 = FP32) then -parts: "
         "kivi (per-channel keys), gG (group along head_dim), bB (key token block), rR (FP32 residual window), "
         "sinkS (FP32 sink tokens), sparseP (P% outliers kept exactly), prerope, rot (Hadamard per head), "
         "rotgG (Hadamard over groups of G KV heads), "
         "reorder (outlier-aware key channel order before the rotation), nuq (fitted codebooks), "
         "qnorm (codebook mean/std matched to the data), fp8, e5m2, fp4; or a KV configuration JSON file";
}

}  // namespace lowbit
