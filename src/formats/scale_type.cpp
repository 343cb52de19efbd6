#include "formats/scale_type.h"

#include <algorithm>
#include <limits>
#include <optional>

#include "core/half.h"
#include "formats/element_format.h"
#include "formats/element_kernel.h"

namespace lowbit {
namespace {

// An 8-bit scale type: its element format's generic ElementKernel (bit-exact
// with the codec, and a table search instead of the codec's double arithmetic)
// and the decode of every code. Built once per type.
struct ByteScale {
  std::optional<ElementKernel> kernel;
  float decode[256] = {};
};

std::optional<ByteScale> make_byte_scale(const char* name) {
  auto f = find_element_format(name);
  if (!f.ok()) return std::nullopt;
  auto kernel = ElementKernel::create(**f, Isa::kGeneric);
  if (!kernel.ok()) return std::nullopt;
  ByteScale b;
  b.kernel.emplace(std::move(kernel).value());
  for (uint32_t c = 0; c < num_codes(**f); ++c) b.decode[c] = (*f)->codec->decode(c);
  return b;
}

const ByteScale* byte_scale(ScaleType t) {
  static const std::optional<ByteScale> e8m0 = make_byte_scale("e8m0");
  static const std::optional<ByteScale> ue4m3 = make_byte_scale("ue4m3");
  static const std::optional<ByteScale> e4m3 = make_byte_scale("fp8_e4m3");
  static const std::optional<ByteScale> ue5m3 = make_byte_scale("ue5m3");
  const std::optional<ByteScale>* b = nullptr;
  switch (t) {
    case ScaleType::kE8m0: b = &e8m0; break;
    case ScaleType::kUe4m3: b = &ue4m3; break;
    case ScaleType::kE4m3: b = &e4m3; break;
    case ScaleType::kUe5m3: b = &ue5m3; break;
    default: return nullptr;
  }
  return b->has_value() ? &**b : nullptr;
}

}  // namespace

const char* scale_type_name(ScaleType t) {
  switch (t) {
    case ScaleType::kFp32: return "fp32";
    case ScaleType::kFp16: return "fp16";
    case ScaleType::kBf16: return "bf16";
    case ScaleType::kE8m0: return "e8m0";
    case ScaleType::kUe4m3: return "ue4m3";
    case ScaleType::kE4m3: return "e4m3";
    case ScaleType::kUe5m3: return "ue5m3";
  }
  return "?";
}

bool scale_type_signed(ScaleType t) {
  return t == ScaleType::kFp32 || t == ScaleType::kFp16 || t == ScaleType::kBf16 || t == ScaleType::kE4m3;
}

float scale_type_max(ScaleType t) {
  switch (t) {
    case ScaleType::kFp32: return std::numeric_limits<float>::max();
    case ScaleType::kFp16: return 65504.0f;
    case ScaleType::kBf16: return bits_to_float(0x7f7f0000u);
    case ScaleType::kE8m0: return bits_to_float(0x7f000000u);  // 2^127
    case ScaleType::kUe4m3:
    case ScaleType::kE4m3: return 448.0f;
    case ScaleType::kUe5m3: return 114688.0f;
  }
  return 0.0f;
}

uint32_t encode_scale(ScaleType t, float v) {
  const float m = scale_type_max(t);
  v = std::clamp(v, -m, m);
  switch (t) {
    case ScaleType::kFp32: return float_to_bits(v);
    case ScaleType::kFp16: return float_to_fp16(v);
    case ScaleType::kBf16: return float_to_bf16(v);
    default: {
      uint8_t code = 0;
      byte_scale(t)->kernel->encode(&v, &code, 1);
      return code;
    }
  }
}

float decode_scale(ScaleType t, uint32_t code) {
  switch (t) {
    case ScaleType::kFp32: return bits_to_float(code);
    case ScaleType::kFp16: return fp16_to_float(static_cast<uint16_t>(code));
    case ScaleType::kBf16: return bf16_to_float(static_cast<uint16_t>(code));
    default: return byte_scale(t)->decode[code & 0xffu];
  }
}

Status check_scale_type(ScaleType t) {
  if (scale_type_bytes(t) == 1 && byte_scale(t) == nullptr) {
    return make_error("scale type {}: its element format is missing from the element table", scale_type_name(t));
  }
  return Status::ok_status();
}

double scale_type_relative_error(ScaleType t) {
  switch (t) {
    case ScaleType::kFp32: return 0x1.0p-24;
    case ScaleType::kFp16: return 0x1.0p-11;
    case ScaleType::kBf16: return 0x1.0p-8;
    case ScaleType::kE8m0: return 1.0 / 3.0;
    case ScaleType::kUe4m3:
    case ScaleType::kE4m3:
    case ScaleType::kUe5m3: return 0x1.0p-4;
  }
  return 1.0;
}

bool scale_type_pow2_range(ScaleType t, int* k_min, int* k_max) {
  switch (t) {
    case ScaleType::kFp32: *k_min = -149; *k_max = 127; return true;
    case ScaleType::kFp16: *k_min = -24; *k_max = 15; return true;
    case ScaleType::kBf16: *k_min = -133; *k_max = 127; return true;
    case ScaleType::kE8m0: *k_min = -127; *k_max = 127; return true;
    default: return false;
  }
}

}  // namespace lowbit
