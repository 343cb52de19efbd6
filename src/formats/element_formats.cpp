// The traits table of element formats: every built-in format, by name, built by
// the family factories (int_formats.cpp, minifloat.cpp, codebook.cpp, posit.cpp).
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "formats/element_format.h"

namespace lowbit {
namespace {

// The factories only fail on bad parameters; the table's are fixed and tested,
// so a failure here is a bug in this file.
ElementFormat must(Expected<ElementFormat> f) {
  if (!f.ok()) {
    std::fprintf(stderr, "lowbit: internal error in the element format table: %s\n", f.status().message().c_str());
    std::abort();
  }
  return std::move(f).value();
}

ElementFormat minifloat(const char* name, int e, int m, int bias, bool has_sign, bool subnormals,
                        MinifloatSpecials specials, const char* description) {
  return must(make_minifloat_format(name, MinifloatSpec{e, m, bias, has_sign, subnormals, specials},
                                    description));
}

std::vector<ElementFormat> build_table() {
  using S = MinifloatSpecials;
  std::vector<ElementFormat> t;
  for (int bits = 2; bits <= 8; ++bits) {
    t.push_back(must(make_int_format(bits, IntMode::kSymmetricRestricted)));
    t.push_back(must(make_int_format(bits, IntMode::kSymmetricFull)));
    t.push_back(must(make_int_format(bits, IntMode::kAsymmetric)));
  }
  t.push_back(minifloat("fp8_e4m3", 4, 3, 7, true, true, S::kOneNan,
                        "FP8 E4M3 (OCP fn): +-448, no inf, NaN = 0x7F/0xFF; weights and activations"));
  t.push_back(minifloat("fp8_e5m2", 5, 2, 15, true, true, S::kIeee,
                        "FP8 E5M2 (IEEE-like): +-57344, inf and NaN; wide range for gradients"));
  t.push_back(minifloat("fp6_e2m3", 2, 3, 1, true, true, S::kFiniteOnly,
                        "FP6 E2M3 (OCP MX): +-7.5, no inf/NaN; MXFP6 element, more precision"));
  t.push_back(minifloat("fp6_e3m2", 3, 2, 3, true, true, S::kFiniteOnly,
                        "FP6 E3M2 (OCP MX): +-28, no inf/NaN; MXFP6 element, more range"));
  t.push_back(minifloat("fp4_e2m1", 2, 1, 1, true, true, S::kFiniteOnly,
                        "FP4 E2M1 (OCP MX): {0, 0.5, 1, 1.5, 2, 3, 4, 6}; MXFP4/NVFP4 element"));
  t.push_back(minifloat("e8m0", 8, 0, 127, false, false, S::kOneNan,
                        "E8M0 (OCP MX scale): powers of two 2^-127..2^127, NaN = 0xFF, no zero"));
  t.push_back(minifloat("ue4m3", 4, 3, 7, false, true, S::kOneNan,
                        "UE4M3 (NVFP4 scale): unsigned E4M3, 7 bits, [2^-9, 448], NaN = 0x7F"));
  t.push_back(minifloat("ue5m3", 5, 3, 15, false, true, S::kOneNan,
                        "UE5M3 (scale): unsigned 8-bit, [2^-17, 114688], NaN = 0xFF, no inf"));
  t.push_back(minifloat("bf16", 8, 7, 127, true, true, S::kIeee,
                        "BF16: float32's range with 8 significant bits; 16-bit storage, FP32 compute"));
  t.push_back(minifloat("fp16", 5, 10, 15, true, true, S::kIeee,
                        "FP16 (IEEE binary16): +-65504, 11 significant bits; 16-bit storage"));
  t.push_back(must(make_codebook_format(
      "nf4", nf4_levels(), "NF4 (QLoRA): 16 normal-quantile levels in [-1, 1] with exact 0; absmax-scaled blocks")));
  for (auto [n, es] : {std::pair{4, 1}, {8, 0}, {8, 1}, {8, 2}, {16, 1}, {16, 2}}) {
    t.push_back(must(make_posit_format(n, es)));
  }
  return t;
}

}  // namespace

const std::vector<ElementFormat>& element_formats() {
  static const std::vector<ElementFormat> table = build_table();
  return table;
}

Expected<const ElementFormat*> find_element_format(const std::string& name) {
  std::string known;
  for (const ElementFormat& f : element_formats()) {
    if (f.name == name) return &f;
    known += known.empty() ? f.name : ", " + f.name;
  }
  return make_error("unknown element format '{}' (known: {})", name, known);
}

std::vector<float> decode_table(const ElementFormat& format) {
  std::vector<float> table(num_codes(format));  // [2^bits], indexed by code
  for (uint32_t c = 0; c < table.size(); ++c) table[c] = format.codec->decode(c);
  return table;
}

}  // namespace lowbit
