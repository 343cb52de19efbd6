// Fake quantization of post-softmax attention probabilities P = softmax(q·kᵀ/√d)
// (issue 19 item 5; `lowbit ppl --attn-prob-quant KIND:BITS`). Each value of P is
// replaced by the nearest of 2^b levels on [0, s] (nearest in the kind's own domain,
// below) before P·V, to measure what a b-bit P costs. Three level sets, all with
// 0 and s among their levels (N = 2^b, k = 0 .. N-1 in ascending order):
//   uniform  x_k = s·k/(N-1)                     rounding to the nearest x
//   log2     x_0 = 0, x_k = s·2^-(N-1-k)           rounding of -log2(x/s) to the nearest
//                                                 integer e, e > N-2 gives 0 (the
//                                                 log2 quantizer of FQ-ViT / RepQ-ViT)
//   tanq     x_k = (s/2)·(1 + atan(tan(θ)·u_k)/θ),  u_k = 2k/(N-1) - 1,  θ = π/3
//            code k = round((N-1)/2 · (1 + tan(θ·(2x/s - 1))/tan(θ)))
// TanQ (Yang et al. 2024, DopQ-ViT) rounds in the tangent domain: the levels are the
// images of a uniform grid under atan, whose slope is smallest at the two ends, so
// they are finer near 0 (where most probabilities are) and near s (the few large
// ones that carry a row) than a uniform grid, coarser in the middle. The spacing
// at the ends is tanθ / (θ·(1 + tan²θ)) ≈ 0.41 times the uniform one at θ = π/3
// (b = 2 gives the levels {0, 1/4, 3/4, 1}). θ is this implementation's choice:
// the paper's own equation was not available to us (docs/QUANTIZATION.md).
//
// Scale s: "one" uses s = 1 (P ≤ 1 always); "median" is the MAD-guided choice of
// DopQ-ViT's MOSF applied to the row maxima m_i of one head's rows in one call
// (every query row of a prompt; the single row of a decode step):
//   s = min(max_i m_i, median(m) + 3·MAD(m)),  MAD(m) = median_i |m_i - median(m)|
// so rows whose peak is an outlier among the head's rows are clipped at s while the
// other rows' values get a grid fitted to their range.
//
// Values x/s ≥ 1 (and +inf) give s, x ≤ 0 gives 0, NaN stays NaN.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace lowbit {

enum class ProbLevels { kUniform, kLog2, kTanq };
enum class ProbScale { kOne, kMedian };

struct AttnProbQuantSpec {
  ProbLevels levels = ProbLevels::kUniform;
  ProbScale scale = ProbScale::kOne;
  int bits = 8;  // [2, 16]
};

inline constexpr int kAttnProbMinBits = 2;
inline constexpr int kAttnProbMaxBits = 16;
// θ of TanQ's tangent, in (0, π/2).
inline constexpr double kTanqTheta = 1.0471975511965976;  // π/3
// The multiple of the MAD above the median where the median scale clips.
inline constexpr double kMadMultiple = 3.0;

// The kinds by name, for the CLI's help: "uniform", "uniform-median", "log2",
// "log2-median", "tanq", "tanq-median".
struct AttnProbKindInfo {
  const char* name;
  ProbLevels levels;
  ProbScale scale;
  const char* help;
};
std::span<const AttnProbKindInfo> attn_prob_kinds();

// "KIND:BITS", e.g. "tanq:4"; errors name the spec and what is wrong.
Expected<AttnProbQuantSpec> parse_attn_prob_quant(const std::string& spec);
std::string attn_prob_quant_name(const AttnProbQuantSpec& spec);  // "tanq:4"

// The reference: index (into the ascending levels) of the level x ∈ [0, 1] rounds to
// at s = 1, computed from the formulas above in double. x ≤ 0 gives 0, x ≥ 1 gives
// N-1; x must not be NaN.
int prob_level_index_reference(const AttnProbQuantSpec& spec, float x);
// The 2^b levels at s = 1, ascending, in double (from the formulas above).
std::vector<double> prob_levels_reference(const AttnProbQuantSpec& spec);

// MAD-guided scale of a set of row maxima (see above); 1 when the set is empty.
// The span (no NaN) is reordered (medians by selection).
float median_mad_scale(std::span<float> row_max);

// A spec's levels and decision thresholds as floats, built once from the
// reference: quantize(x) = s·level[#{thresholds ≤ x/s}], where threshold j is the
// smallest float whose reference index is above j. So it returns the reference's
// level for every float x/s, with a binary search instead of tan/log2 per value.
class AttnProbQuantizer {
 public:
  explicit AttnProbQuantizer(const AttnProbQuantSpec& spec);
  const AttnProbQuantSpec& spec() const { return spec_; }
  const std::vector<float>& levels() const { return levels_; }  // [2^b] at s = 1, ascending

  // One value at scale s > 0.
  float quantize(float x, float s) const;
  // The rows of one head's P in place: row t is p[t·stride, t·stride + first_len + t)
  // (causal: each row sees one position more than the one before), t < rows.
  // Entries past a row's length are not touched. The scale follows spec().scale
  // (row maxima ignore NaN; a NaN stays NaN).
  void quantize_causal_rows(float* p, int rows, int64_t stride, int first_len) const;

 private:
  AttnProbQuantSpec spec_;
  std::vector<float> levels_;      // [N]
  std::vector<float> thresholds_;  // [N - 1] ascending
};

}  // namespace lowbit
