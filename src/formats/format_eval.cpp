#include "formats/format_eval.h"

#include <cmath>
#include <limits>

namespace lowbit {
namespace {

// splitmix64 stream.
class SplitMix {
 public:
  explicit SplitMix(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // (0, 1), never 0 so that logarithms are finite.
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double r = std::sqrt(-2.0 * std::log(uniform()));
    const double t = 2.0 * M_PI * uniform();
    spare_ = r * std::sin(t);
    has_spare_ = true;
    return r * std::cos(t);
  }

 private:
  uint64_t state_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

}  // namespace

QuantError measure_error(const float* x, const float* q, int64_t n) {
  double signal = 0.0, noise = 0.0, max_abs = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(x[i]) - static_cast<double>(q[i]);
    signal += static_cast<double>(x[i]) * x[i];
    noise += d * d;
    max_abs = std::max(max_abs, std::fabs(d));
  }
  QuantError e;
  e.mse = n > 0 ? noise / static_cast<double>(n) : 0.0;
  e.snr_db = noise > 0.0 ? 10.0 * std::log10(signal / noise) : std::numeric_limits<double>::infinity();
  e.max_abs = max_abs;
  return e;
}

Expected<SyntheticInput> parse_synthetic_input(const std::string& name) {
  for (SyntheticInput i : {SyntheticInput::kGaussian, SyntheticInput::kLaplace, SyntheticInput::kStudentT,
                           SyntheticInput::kOutlier}) {
    if (name == synthetic_input_name(i)) return i;
  }
  return make_error("unknown input '{}' (expected gaussian, laplace, student-t or outlier)", name);
}

const char* synthetic_input_name(SyntheticInput input) {
  switch (input) {
    case SyntheticInput::kGaussian: return "gaussian";
    case SyntheticInput::kLaplace: return "laplace";
    case SyntheticInput::kStudentT: return "student-t";
    case SyntheticInput::kOutlier: return "outlier";
  }
  return "?";
}

std::vector<float> synthetic_matrix(SyntheticInput input, int64_t rows, int64_t cols, uint64_t seed) {
  std::vector<float> x(static_cast<size_t>(rows * cols));  // [rows, cols]
  SplitMix rng(seed);
  for (float& v : x) {
    double d = 0.0;
    switch (input) {
      case SyntheticInput::kGaussian: d = rng.normal(); break;
      case SyntheticInput::kLaplace: {
        const double u = rng.uniform() - 0.5;
        d = -M_SQRT1_2 * (u < 0 ? -1.0 : 1.0) * std::log(1.0 - 2.0 * std::fabs(u));
        break;
      }
      case SyntheticInput::kStudentT: {
        double chi2 = 0.0;
        for (int k = 0; k < 4; ++k) {
          const double z = rng.normal();
          chi2 += z * z;
        }
        d = rng.normal() / std::sqrt(chi2 / 4.0) * M_SQRT1_2;
        break;
      }
      case SyntheticInput::kOutlier: {
        d = rng.normal();
        if (rng.next() % 1000 == 0) d *= 50.0;
        break;
      }
    }
    v = static_cast<float>(d);
  }
  return x;
}

Expected<FormatEval> evaluate_format(const BlockFormat& format, const float* x, int64_t rows, int64_t cols,
                                     const QuantizeOptions& options, Isa isa) {
  LB_ASSIGN_OR_RETURN(BlockKernel kernel, BlockKernel::create(format, isa));
  LB_ASSIGN_OR_RETURN(QuantizedTensor q, kernel.quantize(x, rows, cols, options));
  std::vector<float> back(static_cast<size_t>(rows * cols));  // [rows, cols]
  LB_RETURN_IF_ERROR(kernel.dequantize(q, back.data()));
  FormatEval e;
  e.name = format.name();
  e.bits_per_element = format.bits_per_element(rows, cols);
  e.error = measure_error(x, back.data(), rows * cols);
  return e;
}

}  // namespace lowbit
