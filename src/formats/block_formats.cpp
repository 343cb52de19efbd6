// The traits table of named scaled formats (block_format.h) and its checks.
#include <algorithm>
#include <cstdio>
#include <cmath>
#include <iterator>
#include <limits>
#include <regex>

#include "formats/block_format.h"

namespace lowbit {
namespace {

using G = ScaleGranularity;
using T = ScaleType;
using R = ScaleRule;

BlockFormatSpec spec(const char* name, const char* element, G granularity, int group_rows, int group_cols,
                     T scale_type, R rule, const char* description, double snr = 0.0) {
  BlockFormatSpec s;
  s.name = name;
  s.element = element;
  s.granularity = granularity;
  s.group_rows = group_rows;
  s.group_cols = group_cols;
  s.scale_type = scale_type;
  s.rule = rule;
  s.description = description;
  s.snr_gaussian_db = snr;
  return s;
}

BlockFormatSpec asymmetric(BlockFormatSpec s) {
  s.asymmetric = true;
  return s;
}

BlockFormatSpec with_unit(BlockFormatSpec s, int unit_log2) {
  s.element_unit_log2 = unit_log2;
  return s;
}

BlockFormatSpec two_level(BlockFormatSpec s) {
  s.tensor_scale = true;
  return s;
}

std::vector<BlockFormatSpec> named_specs() {
  return {
      spec("int8_pc", "int8", G::kRow, 1, 1, T::kFp32, R::kAbsMax,
           "INT8 [-127, 127], one FP32 absmax scale per row (per output channel; per token for "
           "activations): near lossless, the W8A8 baseline (SmoothQuant, LLM.int8 without outliers)", 41.13),
      spec("int4_g128", "int4", G::kGroup, 1, 128, T::kFp16, R::kAbsMax,
           "INT4 [-7, 7], FP16 absmax scale per 128 (symmetric GPTQ/AWQ groups)", 18.61),
      asymmetric(spec("int4_g128_asym", "uint4", G::kGroup, 1, 128, T::kFp16, R::kAbsMax,
                      "UINT4 [0, 15] with FP16 scale and FP16 minimum per 128 (GPTQ/AWQ with zero "
                      "points, llama.cpp Q4_1): x = code * s + m over [min(x, 0), max(x, 0)]", 20.01)),
      asymmetric(spec("int3_g128", "uint3", G::kGroup, 1, 128, T::kFp16, R::kAbsMax,
                      "UINT3 [0, 7] with FP16 scale and minimum per 128 (3-bit GPTQ/AWQ)", 13.40)),
      asymmetric(spec("int2_g64", "uint2", G::kGroup, 1, 64, T::kFp16, R::kAbsMax,
                      "UINT2 [0, 3] with FP16 scale and minimum per 64 (2-bit GPTQ); expect large errors "
                      "without a better search or rotations", 6.92)),
      spec("fp8_e4m3", "fp8_e4m3", G::kRow, 1, 1, T::kFp32, R::kAbsMax,
           "FP8 E4M3 (+-448), FP32 absmax scale per row: the FP8 weight/activation format of "
           "Hopper inference stacks", 31.53),
      spec("fp8_e5m2", "fp8_e5m2", G::kRow, 1, 1, T::kFp32, R::kAbsMax,
           "FP8 E5M2 (+-57344), FP32 scale per row: 2 mantissa bits, range for gradients", 25.55),
      spec("fp8_e4m3_b128", "fp8_e4m3", G::kBlock2D, 128, 128, T::kFp32, R::kAbsMax,
           "FP8 E4M3 with one FP32 scale per 128 x 128 tile (DeepSeek-V3 weights)", 31.54),
      spec("mxfp8_e4m3", "fp8_e4m3", G::kGroup, 1, 32, T::kE8m0, R::kPow2,
           "OCP MXFP8 E4M3: 32 elements share an E8M0 scale 2^(floor(log2 amax) - 8)", 30.64),
      spec("mxfp8_e5m2", "fp8_e5m2", G::kGroup, 1, 32, T::kE8m0, R::kPow2,
           "OCP MXFP8 E5M2: E8M0 scale 2^(floor(log2 amax) - 15) per 32", 25.36),
      spec("mxfp6_e2m3", "fp6_e2m3", G::kGroup, 1, 32, T::kE8m0, R::kPow2,
           "OCP MXFP6 E2M3 (+-7.5): E8M0 scale 2^(floor(log2 amax) - 2) per 32", 30.95),
      spec("mxfp6_e3m2", "fp6_e3m2", G::kGroup, 1, 32, T::kE8m0, R::kPow2,
           "OCP MXFP6 E3M2 (+-28): E8M0 scale 2^(floor(log2 amax) - 4) per 32", 25.36),
      spec("mxfp4", "fp4_e2m1", G::kGroup, 1, 32, T::kE8m0, R::kPow2,
           "OCP MXFP4: FP4 E2M1 (+-6) with E8M0 scale 2^(floor(log2 amax) - 2) per 32; the spec's "
           "rule clips the block maximum when amax / scale rounds past 6", 18.78),
      spec("mxfp4_up", "fp4_e2m1", G::kGroup, 1, 32, T::kE8m0, R::kPow2Up,
           "MXFP4 with the round-up E8M0 scale: doubled when the block maximum would clip", 19.02),
      with_unit(spec("mxint8", "int8", G::kGroup, 1, 32, T::kE8m0, R::kPow2,
                     "OCP MXINT8: INT8 read as 1.6 fixed point (code / 64, max 1.984375), E8M0 scale "
                     "2^floor(log2 amax) per 32", 41.65),
                -6),
      two_level(spec("nvfp4", "fp4_e2m1", G::kGroup, 1, 16, T::kUe4m3, R::kAbsMax,
                     "NVFP4: FP4 E2M1 with a UE4M3 scale per 16 and an FP32 tensor scale amax / (6 * 448) "
                     "(NVIDIA's recipe); finer blocks and non-power-of-two scales beat MXFP4", 20.45)),
      spec("nf4_g64", "nf4", G::kGroup, 1, 64, T::kFp16, R::kAbsMax,
           "NF4 (QLoRA normal-quantile levels in [-1, 1]) with an FP16 absmax per 64 (bitsandbytes "
           "stores FP32, or 8-bit with double quantization)", 20.73),
      with_unit(spec("bfp8_b16", "int8", G::kGroup, 1, 16, T::kE8m0, R::kPow2Up,
                     "Block floating point: 16 INT8 mantissas (1.6 fixed point) sharing an 8-bit exponent "
                     "chosen so that nothing clips (MSFP-style)", 42.75),
                -6),
      with_unit(spec("bfp16_b64", "int16", G::kGroup, 1, 64, T::kE8m0, R::kPow2Up,
                     "Block floating point with INT16 mantissas (1.14 fixed point) and a shared 8-bit "
                     "exponent per 64", 89.15),
                -14),
      spec("fp4_g128_pow2", "fp4_e2m1", G::kGroup, 1, 128, T::kE8m0, R::kPow2Up,
           "FP4 E2M1 with power-of-two scales per 128 that never clip (ZeroQuant-FP's constraint, "
           "stored as E8M0)", 18.83),
      spec("fp16", "fp16", G::kNone, 1, 1, T::kFp32, R::kAbsMax,
           "IEEE FP16 storage, no scale (saturates at +-65504)", 73.65),
      spec("bf16", "bf16", G::kNone, 1, 1, T::kFp32, R::kAbsMax,
           "BF16 storage, no scale (LayerCast-style 16-bit storage with FP32 compute)", 55.58),
  };
}

// The asymmetric integer menu: UINTb codes with an FP16 scale and an FP16 minimum
// per group of G (or per row), x = code * s + m over [min(x, 0), max(x, 0)], as
// int4_g128_asym; for every width a size-budget allocator chooses between. A
// group costs b + 32/G bits per weight; a row b + 32/cols. FP16 is enough per row
// as per group: the scale keeps its 11 significant bits while the block's range
// max(x, 0) - min(x, 0) exceeds 2^-14 (2^b - 1) (0.016 at 8 bits; narrower rows
// get subnormal scales) and |min| stays below FP16's 65504.
constexpr int kMenuBits[] = {2, 3, 4, 5, 6, 8};
constexpr int kMenuGroups[] = {32, 64, 128, 0};  // 0: one scale and minimum per row
// Measured SNR (dB, see BlockFormatSpec::snr_gaussian_db; `lowbit formats --eval`),
// [bits][group] in the order of the two lists above; 0 where a named entry holds
// the format (and its measurement).
constexpr double kMenuSnr[std::size(kMenuBits)][std::size(kMenuGroups)] = {
    // /32   /64    /128   row
    {8.12, 0.0, 6.01, 2.90},     // 2 bits (/64: int2_g64)
    {15.50, 14.32, 0.0, 10.42},  // 3 bits (/128: int3_g128)
    {22.14, 20.94, 0.0, 17.02},  // 4 bits (/128: int4_g128_asym)
    {28.44, 27.25, 26.33, 23.34},
    {34.60, 33.40, 32.47, 29.49},
    {46.74, 45.54, 44.62, 41.63},
};

// Same stored layout and rule: one of them is enough in the table.
bool same_definition(const BlockFormatSpec& a, const BlockFormatSpec& b) {
  return a.element == b.element && a.granularity == b.granularity && a.group_rows == b.group_rows &&
         a.group_cols == b.group_cols && a.scale_type == b.scale_type && a.rule == b.rule &&
         a.asymmetric == b.asymmetric && a.tensor_scale == b.tensor_scale &&
         a.element_unit_log2 == b.element_unit_log2;
}

// The menu entries `named` does not already hold under another name (int3_g128,
// int2_g64 and int4_g128_asym are the 3-bit/128, 2-bit/64 and 4-bit/128 ones).
std::vector<BlockFormatSpec> asymmetric_int_menu(const std::vector<BlockFormatSpec>& named) {
  std::vector<BlockFormatSpec> out;
  for (size_t i = 0; i < std::size(kMenuBits); ++i) {
    const int b = kMenuBits[i];
    for (size_t j = 0; j < std::size(kMenuGroups); ++j) {
      const int g = kMenuGroups[j];
      const std::string name = g > 0 ? fmt::format("int{}_g{}_asym", b, g) : fmt::format("int{}_pc_asym", b);
      const std::string description =
          g > 0 ? fmt::format("UINT{} [0, {}] with FP16 scale and FP16 minimum per {}: {} + 32/{} = {:g} bits per "
                              "weight",
                              b, (1 << b) - 1, g, b, g, b + 32.0 / g)
                : fmt::format("UINT{} [0, {}] with FP16 scale and FP16 minimum per row (per output channel): {} + "
                              "32/cols bits per weight ({:g} at 4096 columns)",
                              b, (1 << b) - 1, b, b + 32.0 / 4096);
      BlockFormatSpec s = asymmetric(spec(name.c_str(), fmt::format("uint{}", b).c_str(), g > 0 ? G::kGroup : G::kRow,
                                          1, g > 0 ? g : 1, T::kFp16, R::kAbsMax, description.c_str(),
                                          kMenuSnr[i][j]));
      const bool held = std::any_of(named.begin(), named.end(),
                                    [&s](const BlockFormatSpec& n) { return same_definition(n, s); });
      if (!held) out.push_back(std::move(s));
    }
  }
  return out;
}

std::vector<BlockFormatSpec> table_specs() {
  std::vector<BlockFormatSpec> t = named_specs();
  std::vector<BlockFormatSpec> menu = asymmetric_int_menu(t);
  t.insert(t.end(), std::make_move_iterator(menu.begin()), std::make_move_iterator(menu.end()));
  return t;
}

// Table entries, the integer names (also intN_full / uintN up to 16 bits) and posits.
Expected<ElementFormat> resolve_element(const std::string& name) {
  auto found = find_element_format(name);
  if (found.ok()) return **found;
  static const std::regex int_name(R"((u?)int([0-9]+)(_full)?)");
  std::smatch m;
  if (std::regex_match(name, m, int_name) && !(m[1].length() > 0 && m[3].length() > 0)) {
    const int bits = std::stoi(m[2].str());
    const IntMode mode = m[1].length() > 0 ? IntMode::kAsymmetric
                         : m[3].length() > 0 ? IntMode::kSymmetricFull
                                             : IntMode::kSymmetricRestricted;
    return make_int_format(bits, mode);
  }
  return found.status();
}

}  // namespace

const char* granularity_name(ScaleGranularity g) {
  switch (g) {
    case G::kNone: return "none";
    case G::kTensor: return "tensor";
    case G::kRow: return "row";
    case G::kGroup: return "group";
    case G::kBlock2D: return "block2d";
  }
  return "?";
}

const char* scale_rule_name(ScaleRule r) {
  switch (r) {
    case R::kAbsMax: return "absmax";
    case R::kPow2: return "pow2";
    case R::kPow2Up: return "pow2_up";
  }
  return "?";
}

Expected<BlockFormat> make_block_format(const BlockFormatSpec& s) {
  auto fail = [&s](const std::string& why) { return make_error("block format '{}': {}", s.name, why); };
  auto element = resolve_element(s.element);
  if (!element.ok()) return element.status().with_context(fmt::format("block format '{}'", s.name));
  const ElementFormat& e = *element;
  if (e.bits > 16) return fail("element formats of more than 16 bits are not supported");
  if ((s.granularity == G::kGroup || s.granularity == G::kBlock2D) && (s.group_cols < 1 || s.group_rows < 1)) {
    return fail("group sizes must be at least 1");
  }
  if (s.granularity == G::kGroup && s.group_rows != 1) return fail("a group is one row high (use block2d for tiles)");
  if (s.element_unit_log2 < -30 || s.element_unit_log2 > 30) return fail("element unit out of [-30, 30]");
  const bool unsigned_int = e.kind == ElementKind::kInteger && std::holds_alternative<IntSpec>(e.params) &&
                            std::get<IntSpec>(e.params).mode == IntMode::kAsymmetric;
  if (s.asymmetric) {
    if (!unsigned_int) return fail(fmt::format("asymmetric needs an unsigned integer element (uintN), not '{}'", e.name));
    if (!scale_type_signed(s.scale_type)) return fail("asymmetric needs a signed scale type to hold the block minimum");
    if (s.rule != R::kAbsMax || s.tensor_scale) return fail("asymmetric formats use absmax scales without a tensor scale");
    if (s.granularity == G::kNone) return fail("asymmetric needs a scale granularity");
  } else if (!e.is_signed) {
    return fail(fmt::format("element '{}' is unsigned: use it with asymmetric = true", e.name));
  }
  LB_RETURN_IF_ERROR(check_scale_type(s.scale_type).with_context(fmt::format("block format '{}'", s.name)));
  int k_min = 0, k_max = 0;
  if (s.rule != R::kAbsMax && !scale_type_pow2_range(s.scale_type, &k_min, &k_max)) {
    return fail(fmt::format("{} scales need a type holding powers of two (fp32, fp16, bf16, e8m0), not {}",
                            scale_rule_name(s.rule), scale_type_name(s.scale_type)));
  }
  if (s.tensor_scale && (s.rule != R::kAbsMax || s.granularity == G::kNone || s.granularity == G::kTensor)) {
    return fail("a tensor scale needs absmax block scales below the tensor level");
  }

  BlockFormat f;
  f.spec = s;
  f.element = e;
  f.layout.code_bits = e.bits;
  f.layout.granularity = s.granularity;
  f.layout.group_rows = s.granularity == G::kBlock2D ? s.group_rows : 1;
  f.layout.group_cols = (s.granularity == G::kGroup || s.granularity == G::kBlock2D) ? s.group_cols : 1;
  f.layout.scale_bytes = scale_type_bytes(s.scale_type);
  f.layout.asymmetric = s.asymmetric;
  f.layout.tensor_scale = s.tensor_scale;
  // vmax and the step below it, over the codes encode can produce.
  const ElementCodec& codec = *e.codec;
  float top = 0.0f, below = 0.0f;
  f.code_lo = std::numeric_limits<float>::infinity();
  f.code_hi = -f.code_lo;
  for (uint32_t c = 0; c < num_codes(e); ++c) {
    const float v = codec.decode(c);
    if (codec.is_reserved(c) || !std::isfinite(v)) continue;
    f.code_lo = std::min(f.code_lo, v);
    f.code_hi = std::max(f.code_hi, v);
    if (v > top) {
      below = top;
      top = v;
    } else if (v > below && v < top) {
      below = v;
    }
  }
  if (!(top > 0.0f)) return fail(fmt::format("element '{}' has no positive value", e.name));
  f.element_max = std::ldexp(top, s.element_unit_log2);
  f.element_step = std::ldexp(top - below, s.element_unit_log2);
  f.max_code_odd = (codec.encode(top) & 1u) != 0;
  switch (s.granularity == G::kNone ? R::kPow2 : s.rule) {
    case R::kAbsMax: {
      const double d = scale_type_relative_error(s.scale_type);
      f.requantize_stable = static_cast<double>(top) * d / (1.0 - d) < 0.5 * static_cast<double>(top - below);
      break;
    }
    case R::kPow2: {  // also kNone: round to nearest even is idempotent on its own codes
      const float binade = std::ldexp(1.0f, std::ilogb(top));
      f.requantize_stable = s.granularity == G::kNone || codec.decode(codec.encode(binade)) == binade;
      break;
    }
    case R::kPow2Up:
      f.requantize_stable = e.kind == ElementKind::kInteger || e.kind == ElementKind::kMinifloat;
      break;
  }
  return f;
}

const std::vector<BlockFormat>& block_formats() {
  static const std::vector<BlockFormat> table = [] {
    std::vector<BlockFormat> t;
    for (const BlockFormatSpec& s : table_specs()) {
      auto f = make_block_format(s);
      if (f.ok()) {
        t.push_back(std::move(f).value());
      } else {  // fixed entries: only a broken element table gets here; tests check every name is present
        std::fprintf(stderr, "lowbit: warning: %s\n", f.status().message().c_str());
      }
    }
    return t;
  }();
  return table;
}

Expected<const BlockFormat*> find_block_format(const std::string& name) {
  std::string known;
  for (const BlockFormat& f : block_formats()) {
    if (f.name() == name) return &f;
    known += known.empty() ? f.name() : ", " + f.name();
  }
  return make_error("unknown block format '{}' (known: {})", name, known);
}

const BlockFormat* find_asymmetric_int_format(int bits, int group) {
  for (const BlockFormat& f : block_formats()) {
    const BlockFormatSpec& s = f.spec;
    const bool shape = group > 0 ? s.granularity == G::kGroup && s.group_cols == group : s.granularity == G::kRow;
    if (shape && s.asymmetric && s.scale_type == T::kFp16 && s.element_unit_log2 == 0 &&
        s.element == fmt::format("uint{}", bits)) {
      return &f;
    }
  }
  return nullptr;
}

}  // namespace lowbit
