// Measuring scaled formats: error metrics, seeded synthetic inputs, and one
// call that quantizes a matrix with a format and reports bits and error (used by
// `lowbit formats --eval` and by the quality tests).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "formats/block_format.h"

namespace lowbit {

// Over n pairs, in double:
//   mse     = sum (x - q)^2 / n
//   snr_db  = 10 log10(sum x^2 / sum (x - q)^2); +inf when q == x exactly
//   max_abs = max |x - q|
struct QuantError {
  double mse = 0.0;
  double snr_db = 0.0;
  double max_abs = 0.0;
};
QuantError measure_error(const float* x, const float* q, int64_t n);

// Unit-variance, zero-mean i.i.d. inputs from a counter-based generator
// (splitmix64), identical on every platform:
//   gaussian   N(0, 1) by Box-Muller
//   laplace    Laplace with b = 1/sqrt(2)
//   student-t  Student's t with 4 degrees of freedom, scaled by 1/sqrt(2)
//   outlier    N(0, 1) with one value in 1000 multiplied by 50 (LLM weight outliers)
enum class SyntheticInput { kGaussian, kLaplace, kStudentT, kOutlier };
Expected<SyntheticInput> parse_synthetic_input(const std::string& name);
const char* synthetic_input_name(SyntheticInput input);
// [rows, cols]
std::vector<float> synthetic_matrix(SyntheticInput input, int64_t rows, int64_t cols, uint64_t seed);

// The reference matrix that BlockFormatSpec::snr_gaussian_db is measured on.
constexpr int64_t kQualityRows = 128;
constexpr int64_t kQualityCols = 4096;
constexpr uint64_t kQualitySeed = 1;

struct FormatEval {
  std::string name;
  double bits_per_element = 0.0;
  QuantError error;
};
// Quantizes x [rows, cols] with `format` on `isa`, dequantizes and measures.
Expected<FormatEval> evaluate_format(const BlockFormat& format, const float* x, int64_t rows, int64_t cols,
                                     const QuantizeOptions& options = {}, Isa isa = active_isa());

}  // namespace lowbit
