#include "quant/attn_prob_quant.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cmath>

namespace lowbit {
namespace {

// Median of v (reordered): the middle value, or the mean of the two middle ones.
float median_of(std::span<float> v) {
  const size_t n = v.size(), mid = n / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<int64_t>(mid), v.end());
  const float upper = v[mid];
  if (n % 2 == 1) return upper;
  const float lower = *std::max_element(v.begin(), v.begin() + static_cast<int64_t>(mid));
  return 0.5f * (lower + upper);
}

}  // namespace

std::span<const AttnProbKindInfo> attn_prob_kinds() {
  static const std::array<AttnProbKindInfo, 6> table = {{
      {"uniform", ProbLevels::kUniform, ProbScale::kOne, "2^b evenly spaced levels on [0, 1]"},
      {"uniform-median", ProbLevels::kUniform, ProbScale::kMedian,
       "evenly spaced on [0, s], s = min(max, median + 3 MAD) of the head's row maxima"},
      {"log2", ProbLevels::kLog2, ProbScale::kOne, "0 and 2^-e, e = 0 .. 2^b - 2, rounded in log2"},
      {"log2-median", ProbLevels::kLog2, ProbScale::kMedian, "log2 levels times the median/MAD scale s"},
      {"tanq", ProbLevels::kTanq, ProbScale::kOne,
       "TanQ (DopQ-ViT): levels atan-spaced on [0, 1], fine near 0 and 1, rounded in the tangent domain"},
      {"tanq-median", ProbLevels::kTanq, ProbScale::kMedian, "TanQ levels on [0, s], the median/MAD scale s"},
  }};
  return table;
}

Expected<AttnProbQuantSpec> parse_attn_prob_quant(const std::string& spec) {
  const size_t colon = spec.find(':');
  if (colon == std::string::npos) {
    return make_error("attention probability quantizer '{}': expected KIND:BITS, e.g. tanq:4", spec);
  }
  const std::string kind = spec.substr(0, colon), bits_text = spec.substr(colon + 1);
  const AttnProbKindInfo* info = nullptr;
  for (const AttnProbKindInfo& k : attn_prob_kinds()) {
    if (kind == k.name) info = &k;
  }
  if (info == nullptr) {
    std::string names;
    for (const AttnProbKindInfo& k : attn_prob_kinds()) names += fmt::format("{}{}", names.empty() ? "" : ", ", k.name);
    return make_error("attention probability quantizer '{}': unknown kind '{}' (expected one of {})", spec, kind, names);
  }
  int bits = 0;
  const char* end = bits_text.data() + bits_text.size();
  const auto [ptr, ec] = std::from_chars(bits_text.data(), end, bits);
  if (bits_text.empty() || ec != std::errc() || ptr != end) {
    return make_error("attention probability quantizer '{}': bits '{}' is not an integer", spec, bits_text);
  }
  if (bits < kAttnProbMinBits || bits > kAttnProbMaxBits) {
    return make_error("attention probability quantizer '{}': bits {} out of range [{}, {}]", spec, bits,
                      kAttnProbMinBits, kAttnProbMaxBits);
  }
  return AttnProbQuantSpec{info->levels, info->scale, bits};
}

std::string attn_prob_quant_name(const AttnProbQuantSpec& spec) {
  for (const AttnProbKindInfo& k : attn_prob_kinds()) {
    if (k.levels == spec.levels && k.scale == spec.scale) return fmt::format("{}:{}", k.name, spec.bits);
  }
  return "?";
}

int prob_level_index_reference(const AttnProbQuantSpec& spec, float x) {
  const int64_t top = (int64_t{1} << spec.bits) - 1;  // N - 1
  if (x <= 0.0f) return 0;
  if (x >= 1.0f) return static_cast<int>(top);
  const double y = x;
  switch (spec.levels) {
    case ProbLevels::kUniform:
      return static_cast<int>(std::floor(y * static_cast<double>(top) + 0.5));
    case ProbLevels::kLog2: {
      const double e = std::floor(-std::log2(y) + 0.5);  // ≥ 0 for y < 1
      return e > static_cast<double>(top - 1) ? 0 : static_cast<int>(top - static_cast<int64_t>(e));
    }
    case ProbLevels::kTanq: {
      const double u = std::tan(kTanqTheta * (2.0 * y - 1.0)) / std::tan(kTanqTheta);  // [-1, 1]
      const double k = std::floor((u + 1.0) * 0.5 * static_cast<double>(top) + 0.5);
      return static_cast<int>(std::clamp(k, 0.0, static_cast<double>(top)));
    }
  }
  return 0;
}

std::vector<double> prob_levels_reference(const AttnProbQuantSpec& spec) {
  const int64_t n = int64_t{1} << spec.bits, top = n - 1;
  std::vector<double> levels(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) {
    const double kd = static_cast<double>(k), td = static_cast<double>(top);
    switch (spec.levels) {
      case ProbLevels::kUniform:
        levels[k] = kd / td;
        break;
      case ProbLevels::kLog2:
        levels[k] = k == 0 ? 0.0 : std::exp2(-(td - kd));
        break;
      case ProbLevels::kTanq: {
        const double u = 2.0 * kd / td - 1.0;
        levels[k] = 0.5 * (1.0 + std::atan(std::tan(kTanqTheta) * u) / kTanqTheta);
        break;
      }
    }
  }
  levels.front() = 0.0;  // exact ends (atan(tan θ)/θ may round off 1)
  levels.back() = 1.0;
  return levels;
}

float median_mad_scale(std::span<float> row_max) {
  if (row_max.empty()) return 1.0f;
  const float largest = *std::max_element(row_max.begin(), row_max.end());
  const float med = median_of(row_max);
  for (float& m : row_max) m = std::fabs(m - med);
  const float mad = median_of(row_max);
  return std::min(largest, med + static_cast<float>(kMadMultiple) * mad);
}

AttnProbQuantizer::AttnProbQuantizer(const AttnProbQuantSpec& spec) : spec_(spec) {
  const std::vector<double> levels = prob_levels_reference(spec);
  levels_.assign(levels.begin(), levels.end());
  // Threshold j: the smallest float in (0, 1] whose reference index exceeds j, by
  // bisection over the bit patterns of non-negative floats (ordered as integers);
  // the reference is monotone, so each search starts at the previous threshold.
  const int top = static_cast<int>(levels.size()) - 1;
  thresholds_.resize(static_cast<size_t>(top));
  uint32_t lo = 0;
  for (int j = 0; j < top; ++j) {
    uint32_t hi = std::bit_cast<uint32_t>(1.0f);  // index(1) = N - 1 > j
    while (lo < hi) {
      const uint32_t mid = lo + (hi - lo) / 2;
      if (prob_level_index_reference(spec, std::bit_cast<float>(mid)) > j) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    thresholds_[j] = std::bit_cast<float>(lo);
  }
}

float AttnProbQuantizer::quantize(float x, float s) const {
  if (std::isnan(x)) return x;
  const float y = x / s;
  if (y < thresholds_.front()) return 0.0f;  // most probabilities of a long row
  const auto k = std::upper_bound(thresholds_.begin(), thresholds_.end(), y) - thresholds_.begin();
  return s * levels_[static_cast<size_t>(k)];
}

void AttnProbQuantizer::quantize_causal_rows(float* p, int rows, int64_t stride, int first_len) const {
  float s = 1.0f;
  if (spec_.scale == ProbScale::kMedian) {
    std::vector<float> row_max(static_cast<size_t>(rows));  // [rows]
    for (int t = 0; t < rows; ++t) {
      const float* row = p + t * stride;
      float m = 0.0f;
      for (int i = 0; i < first_len + t; ++i) m = std::fmax(m, row[i]);  // NaN ignored
      row_max[t] = m;
    }
    s = median_mad_scale(row_max);
    if (!(s > 0.0f)) s = 1.0f;  // a row of NaN: keep them, quantize the rest on [0, 1]
  }
  for (int t = 0; t < rows; ++t) {
    float* row = p + t * stride;
    for (int i = 0; i < first_len + t; ++i) row[i] = quantize(row[i], s);
  }
}

}  // namespace lowbit
