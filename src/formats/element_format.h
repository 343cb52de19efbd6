// Element formats: how one low-bit code maps to a real value. Every element
// format of lowbit (INTn, FP8/FP6/FP4 minifloats, E8M0/UE4M3/UE5M3 scale types,
// NF4 and user codebooks, posits, BF16/FP16) is described by one ElementFormat
// entry in the traits table (element_formats.cpp), with a scalar reference codec.
// Block/scaled formats (block_format.h) combine an element format with scales.
//
// One file per family holds the codec and the paragraph on range, layout and
// when the family wins: int_formats.cpp, minifloat.cpp, codebook.cpp, posit.cpp.
// The bulk (vectorised) path is element_kernel.h; it is tested bit for bit
// against the reference codecs declared here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "core/status.h"

namespace lowbit {

enum class ElementKind {
  kInteger,    // two's complement or offset integers (symmetric or with zero point)
  kMinifloat,  // sign/exponent/mantissa floats (FP8, FP6, FP4, E8M0, UE4M3, BF16, FP16)
  kCodebook,   // a sorted table of levels (NF4, user codebooks)
  kPosit,      // posit(n, es), 2022 standard
};

class ElementCodec {
 public:
  virtual ~ElementCodec() = default;
  // Reference decode of a code in [0, 2^bits).
  virtual float decode(uint32_t code) const = 0;
  // Reference encode with round-to-nearest-even (ties to the even code / the
  // level with even index for codebooks); out-of-range values saturate to the
  // largest finite magnitude unless the format defines infinities; NaN maps to the
  // format's canonical NaN code, or where it has none to the code of the value
  // nearest zero (+0 where zero exists: code 0 for INT/FP6/FP4, the 0.0 level of NF4).
  virtual uint32_t encode(float x) const = 0;
  // Stochastic rounding: rounds up with probability equal to the fractional
  // position between the two neighbouring representable values; `uniform` in [0,1).
  virtual uint32_t encode_stochastic(float x, float uniform) const = 0;
  // A code that encode never produces: NaN codes other than the canonical one,
  // the -2^(b-1) code of a restricted symmetric integer, codes past the end of a
  // short codebook. Every other code c satisfies encode(decode(c)) == c.
  virtual bool is_reserved(uint32_t code) const { return false; }
  // Whether the code decodes to NaN (NaR for posits).
  bool is_nan(uint32_t code) const {
    const float v = decode(code);
    return v != v;
  }
};

// Parameters of each family; ElementFormat::params holds the one of its kind.
enum class IntMode {
  kSymmetricRestricted,  // [-(2^(b-1)-1), 2^(b-1)-1], two's complement codes ("int4": [-7, 7])
  kSymmetricFull,        // [-2^(b-1), 2^(b-1)-1], two's complement codes ("int4_full": [-8, 7])
  kAsymmetric,           // [0, 2^b-1], used with a zero point ("uint4": [0, 15])
};
struct IntSpec {
  int bits = 0;
  IntMode mode = IntMode::kSymmetricRestricted;
  int min_value = 0;  // smallest code value (two's complement or offset)
  int max_value = 0;
};

// What the top exponent field means.
enum class MinifloatSpecials {
  kIeee,         // exponent all ones: infinity (mantissa 0) or NaN (E5M2, FP16, BF16)
  kOneNan,       // "fn": only the all-ones magnitude is NaN, no infinity (E4M3, E8M0, UE4M3, UE5M3)
  kFiniteOnly,   // every code is a finite number (FP6 E2M3/E3M2, FP4 E2M1)
};
struct MinifloatSpec {
  int exponent_bits = 0;
  int mantissa_bits = 0;
  int bias = 0;
  bool has_sign = true;
  // false: the zero exponent field is an ordinary binade (no zero, no subnormals: E8M0).
  bool has_subnormals = true;
  MinifloatSpecials specials = MinifloatSpecials::kFiniteOnly;
};

struct CodebookSpec {
  std::vector<float> levels;  // strictly increasing; code i decodes to levels[i]
};

struct PositSpec {
  int n = 0;   // bits, 2..16
  int es = 0;  // exponent bits; useed = 2^(2^es)
};

using ElementParams = std::variant<IntSpec, MinifloatSpec, CodebookSpec, PositSpec>;

struct ElementFormat {
  std::string name;          // "fp8_e4m3", "int4", "nf4", "posit8_2", ...
  ElementKind kind;
  int bits;                  // bits per code
  bool is_signed;
  float max_finite;          // largest finite magnitude
  float min_positive;        // smallest positive value (subnormal if any)
  std::string description;   // range, layout and when it wins
  std::shared_ptr<const ElementCodec> codec;
  ElementParams params;      // the family's parameters (the alternative matching `kind`)
};

// The traits table: every built-in element format.
const std::vector<ElementFormat>& element_formats();
// Lookup by name; error lists the known names.
Expected<const ElementFormat*> find_element_format(const std::string& name);

// Factories for formats outside the table; each validates its parameters.
// Integers of 2..16 bits.
Expected<ElementFormat> make_int_format(int bits, IntMode mode);
// Minifloats that fit in 16 bits and whose values are normal or subnormal float32 numbers.
Expected<ElementFormat> make_minifloat_format(const std::string& name, const MinifloatSpec& spec,
                                              const std::string& description = "");
// A user codebook of 2..256 finite, strictly increasing levels; bits = ceil(log2(size)).
Expected<ElementFormat> make_codebook_format(const std::string& name, std::vector<float> levels,
                                             const std::string& description = "");
// The 16 NF4 levels of QLoRA, bitsandbytes' float32 constants, ascending.
std::vector<float> nf4_levels();
// posit(n, es) with 2 <= n <= 16 and maxpos = 2^(2^es (n-2)) <= 2^127; named "positN_ES".
Expected<ElementFormat> make_posit_format(int n, int es);

// Number of codes, 2^bits.
inline uint32_t num_codes(const ElementFormat& format) { return 1u << format.bits; }
// Reference decode of every code, indexed by code (formats of at most 16 bits).
std::vector<float> decode_table(const ElementFormat& format);

// Shared by the codecs: stochastic choice between neighbours lo < x < hi (values
// in double) with P(hi) = (x - lo) / (hi - lo); exact when x equals lo or hi.
inline uint32_t stochastic_pick(double x, double lo, uint32_t lo_code, double hi, uint32_t hi_code,
                                float uniform) {
  if (x <= lo) return lo_code;
  if (x >= hi) return hi_code;
  return static_cast<double>(uniform) < (x - lo) / (hi - lo) ? hi_code : lo_code;
}

}  // namespace lowbit
