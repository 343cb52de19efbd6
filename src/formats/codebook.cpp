// Codebook (non-uniform, table-of-levels) element formats: NF4 and user codebooks.
//
// Layout: code i decodes to levels[i]; the levels are finite and strictly
// increasing, so codes are ordered like their values and encoding is a binary
// search. A codebook of L levels uses ceil(log2 L) bits; codes L..2^bits-1 are
// reserved and decode to NaN.
// NF4 (QLoRA, Dettmers et al. 2023) holds 16 levels in [-1, 1] at the quantiles
// of a standard normal, with an exact zero: 8 positive and 7 negative levels. The
// values are bitsandbytes' float32 constants. Used with an absmax scale per block
// of 64 it is information-theoretically good for normally distributed weights.
// When a codebook wins: when the weight distribution is known and not uniform
// (NF4 for Gaussian weights, learned k-means levels as in SqueezeLLM); decode is a
// table lookup, but there is no cheap integer dot product.
// Encoding: nearest level (exact, in double), ties to the even index; values
// outside [levels.front(), levels.back()] saturate; NaN encodes like +0 (to the
// level nearest zero). Stochastic rounding picks between the two neighbouring
// levels with probability proportional to the distance.
#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "formats/element_format.h"

namespace lowbit {
namespace {

class CodebookCodec final : public ElementCodec {
 public:
  explicit CodebookCodec(std::vector<float> levels) : levels_(std::move(levels)) {}

  float decode(uint32_t code) const override {
    return code < levels_.size() ? levels_[code] : std::numeric_limits<float>::quiet_NaN();
  }

  uint32_t encode(float x) const override {
    if (std::isnan(x)) x = 0.0f;
    const uint32_t hi = upper(x);
    if (hi == 0) return 0;
    if (hi == levels_.size()) return hi - 1;
    const uint32_t lo = hi - 1;
    const double d_lo = static_cast<double>(x) - levels_[lo];  // exact: both are floats
    const double d_hi = static_cast<double>(levels_[hi]) - x;
    if (d_lo < d_hi) return lo;
    if (d_hi < d_lo) return hi;
    return (lo & 1u) == 0 ? lo : hi;
  }

  uint32_t encode_stochastic(float x, float uniform) const override {
    if (std::isnan(x)) return encode(x);
    const uint32_t hi = upper(x);
    if (hi == 0) return 0;
    if (hi == levels_.size()) return hi - 1;
    return stochastic_pick(x, levels_[hi - 1], hi - 1, levels_[hi], hi, uniform);
  }

  bool is_reserved(uint32_t code) const override { return code >= levels_.size(); }

 private:
  // Index of the first level > x (levels_.size() if none).
  uint32_t upper(float x) const {
    return static_cast<uint32_t>(std::upper_bound(levels_.begin(), levels_.end(), x) - levels_.begin());
  }

  std::vector<float> levels_;
};

}  // namespace

Expected<ElementFormat> make_codebook_format(const std::string& name, std::vector<float> levels,
                                             const std::string& description) {
  if (levels.size() < 2 || levels.size() > 256) {
    return make_error("codebook '{}': need 2..256 levels, got {}", name, levels.size());
  }
  for (size_t i = 0; i < levels.size(); ++i) {
    if (!std::isfinite(levels[i])) {
      return make_error("codebook '{}': level {} is not finite ({})", name, i, levels[i]);
    }
    if (i > 0 && !(levels[i - 1] < levels[i])) {
      return make_error("codebook '{}': levels must be strictly increasing, but level {} ({}) <= level {} ({})",
                        name, i, levels[i], i - 1, levels[i - 1]);
    }
  }
  int bits = 1;
  while ((size_t{1} << bits) < levels.size()) ++bits;
  ElementFormat f;
  f.name = name;
  f.kind = ElementKind::kCodebook;
  f.bits = bits;
  f.is_signed = levels.front() < 0.0f;
  f.max_finite = std::max(std::fabs(levels.front()), std::fabs(levels.back()));
  f.min_positive = std::numeric_limits<float>::infinity();
  for (float v : levels) {
    if (v > 0.0f) f.min_positive = std::min(f.min_positive, v);
  }
  if (!std::isfinite(f.min_positive)) f.min_positive = 0.0f;  // no positive level
  f.description = description.empty()
                      ? fmt::format("codebook of {} levels in [{:g}, {:g}]", levels.size(), levels.front(),
                                    levels.back())
                      : description;
  f.params = CodebookSpec{levels};
  f.codec = std::make_shared<CodebookCodec>(std::move(levels));
  return f;
}

// The 16 NF4 levels, exactly as bitsandbytes' float32 table.
std::vector<float> nf4_levels() {
  return {-1.0f,
          -0.6961928009986877f,
          -0.5250730514526367f,
          -0.39491748809814453f,
          -0.28444138169288635f,
          -0.18477343022823334f,
          -0.09105003625154495f,
          0.0f,
          0.07958029955625534f,
          0.16093020141124725f,
          0.24611230194568634f,
          0.33791524171829224f,
          0.44070982933044434f,
          0.5626170039176941f,
          0.7229568362236023f,
          1.0f};
}

}  // namespace lowbit
