// Encoding of every float32 bit pattern for FP8 E4M3, FP8 E5M2 and FP4 E2M1
// against an independent second implementation written here.
//
// The oracle takes the representable values from ml_dtypes' decode tables
// (tests/data/formats/*.decode) and states the rounding rule directly: between
// neighbours v_i < v_(i+1) the result switches at the exact midpoint, a tie goes
// to the even code, |x| beyond max finite saturates (E4M3, E2M1) or, for the IEEE
// E5M2, becomes inf from the midpoint between max and the next binade 2^16 (ties
// to even: inf's code is even), negative inputs mirror positive ones with the
// sign bit (so -0 and tiny negatives give the -0 code), NaN gives the canonical
// NaN. As a function of |x|'s bits this is a step function, so a sweep walks it
// in O(1) per input.
//
// Covered, multithreaded (std::thread):
//   - the fast kernels: all 2^32 inputs for the kernel this CPU runs (AVX-512, or
//     generic without it), a stratified eighth for the generic one otherwise;
//   - the scalar reference codec: a stratified sample of 1 in 32 inputs (one
//     pseudo-random pick in each run of 32 consecutive bit patterns, 1.3e8 per
//     format) plus every boundary: 64 bit patterns either side of each switch
//     point and of each representable value, the infinities and NaN patterns.
//     The full 2^32 sweep of the double-precision reference takes ~45 s per
//     format per core, too slow for CI; the kernels, which equal the oracle on
//     every input, run the same rounding in a different algorithm.
#include <algorithm>
#include <atomic>
#include <mutex>

#include "formats/element_kernel.h"
#include "test_element_util.h"

namespace lowbit {
namespace {

using testing::element;

int sweep_threads() { return static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 2u, 8u)); }

class StepOracle {
 public:
  // `table`: ml_dtypes' decode table (code, float bits) of a signed format.
  StepOracle(const std::vector<testing::HexPair>& table, uint32_t sign_bit, bool ieee_overflow, uint32_t nan_code)
      : sign_bit_(sign_bit), nan_code_(nan_code) {
    std::vector<std::pair<double, uint32_t>> values;  // finite, non-negative, by value
    uint32_t inf_code = 0;
    for (const auto& [code, bits] : table) {
      const float v = bits_to_float(bits);
      if (code & sign_bit) continue;
      if (std::isinf(v)) inf_code = code;
      if (std::isfinite(v)) values.emplace_back(v, code);
    }
    std::sort(values.begin(), values.end());
    if (ieee_overflow) {
      const double top = values.back().first, gap = top - values[values.size() - 2].first;
      values.emplace_back(top + gap, inf_code);  // rounding with an unbounded exponent
    }
    starts_.push_back(0);
    codes_.push_back(values[0].second);
    for (size_t i = 0; i + 1 < values.size(); ++i) {
      const double mid = (values[i].first + values[i + 1].first) / 2;
      const auto mid_f = static_cast<float>(mid);
      EXPECT_EQ(static_cast<double>(mid_f), mid) << "midpoint not a float32";
      const uint32_t upper_code = values[i + 1].second;
      starts_.push_back(float_to_bits(mid_f) + ((upper_code & 1u) == 0 ? 0u : 1u));
      codes_.push_back(upper_code);
    }
  }

  // Walks the step function upwards over |x|'s bits.
  class Walker {
   public:
    Walker(const StepOracle& o, uint32_t first_mag) : o_(o) {
      idx_ = static_cast<size_t>(std::upper_bound(o.starts_.begin(), o.starts_.end(), first_mag) -
                                 o.starts_.begin()) - 1;
    }
    // The expected codes for +|x| and -|x| and the first magnitude where they
    // may change; mags must not decrease between calls.
    struct Segment {
      uint32_t pos;
      uint32_t neg;
      uint64_t end;
    };
    Segment at(uint32_t mag) {
      if (mag > 0x7f800000u) return {o_.nan_code_, o_.nan_code_, uint64_t{1} << 31};
      while (idx_ + 1 < o_.starts_.size() && o_.starts_[idx_ + 1] <= mag) ++idx_;
      const uint64_t end = idx_ + 1 < o_.starts_.size() ? o_.starts_[idx_ + 1] : uint64_t{0x7f800001u};
      return {o_.codes_[idx_], o_.codes_[idx_] | o_.sign_bit_, end};
    }

   private:
    const StepOracle& o_;
    size_t idx_;
  };

  const std::vector<uint32_t>& starts() const { return starts_; }

 private:
  std::vector<uint32_t> starts_;  // |x| bits where codes_[i] begins, ascending
  std::vector<uint32_t> codes_;
  uint32_t sign_bit_;
  uint32_t nan_code_;
};

StepOracle oracle_for(const char* name) {
  const ElementFormat& f = element(name);
  const uint32_t sign_bit = num_codes(f) / 2;
  return StepOracle(testing::read_hex_pairs(std::string(name) + ".decode"), sign_bit, name == std::string("fp8_e5m2"),
                    f.codec->encode(NAN));
}

// Collects the first mismatches from all threads.
struct Mismatches {
  std::mutex mu;
  std::vector<std::string> lines;
  std::atomic<uint64_t> count{0};
  void add(float x, uint32_t got, uint32_t expected, const char* who) {
    if (count++ >= 10) return;
    std::lock_guard<std::mutex> lock(mu);
    std::ostringstream s;
    s << who << ": x = " << x << " (bits 0x" << std::hex << float_to_bits(x) << "): got 0x" << got
      << ", expected 0x" << expected;
    lines.push_back(s.str());
  }
  void report(const std::string& what) {
    for (const auto& l : lines) ADD_FAILURE() << what << ": " << l;
    EXPECT_EQ(count.load(), 0u) << what;
  }
};

// Sweeps magnitudes in batches; `stride` > 1 checks one batch, at a
// pseudo-random place, in every `stride` (a stratified sample).
void sweep_kernel(const char* name, Isa isa, int stride) {
  const ElementFormat& f = element(name);
  auto kernel = ElementKernel::create(f, isa);
  ASSERT_TRUE(kernel.ok()) << kernel.status().message();
  const StepOracle oracle = oracle_for(name);
  Mismatches bad;
  constexpr uint64_t kMagnitudes = uint64_t{1} << 31;
  testing::parallel_ranges(kMagnitudes, sweep_threads(), [&](uint64_t begin, uint64_t end) {
    constexpr size_t kBatch = 16384;
    std::vector<uint32_t> x(2 * kBatch);  // [2 * batch] float bits: +|x| then -|x|
    std::vector<uint8_t> codes(2 * kBatch);
    StepOracle::Walker walk(oracle, static_cast<uint32_t>(begin));
    for (uint64_t base = begin; base < end; base += kBatch) {
      if (stride > 1 && ((base / kBatch) * 0x9E3779B97F4A7C15ull >> 40) % stride != 0) continue;
      const size_t n = static_cast<size_t>(std::min<uint64_t>(kBatch, end - base));
      for (size_t i = 0; i < n; ++i) {
        x[i] = static_cast<uint32_t>(base + i);
        x[n + i] = static_cast<uint32_t>(base + i) | 0x80000000u;
      }
      kernel->encode(reinterpret_cast<const float*>(x.data()), codes.data(), 2 * n);
      // The expected code is constant on segments of the step function.
      for (size_t i = 0; i < n;) {
        const auto seg = walk.at(static_cast<uint32_t>(base + i));
        const size_t stop = static_cast<size_t>(std::min<uint64_t>(n, seg.end - base));
        uint32_t diff = 0;
        for (size_t j = i; j < stop; ++j) diff |= (codes[j] ^ seg.pos) | (codes[n + j] ^ seg.neg);
        if (diff != 0) {
          for (size_t j = i; j < stop; ++j) {
            if (codes[j] != seg.pos) bad.add(bits_to_float(x[j]), codes[j], seg.pos, "+");
            if (codes[n + j] != seg.neg) bad.add(bits_to_float(x[n + j]), codes[n + j], seg.neg, "-");
          }
        }
        i = stop;
      }
    }
  });
  bad.report(std::string(name) + " kernel " + isa_name(isa));
}

bool have_avx512() { return isa_supported(Isa::kAvx512, detect_cpu_features()); }

// The generic kernel sweeps everything where it is the production path, and a
// stratified eighth (5.4e8 inputs per format) when AVX-512 runs instead.
TEST(ElementSweep, GenericKernelEncodesEveryFloat32LikeTheOracle) {
  for (const char* name : {"fp8_e4m3", "fp8_e5m2", "fp4_e2m1"}) sweep_kernel(name, Isa::kGeneric, have_avx512() ? 8 : 1);
}

TEST(ElementSweep, Avx512KernelEncodesEveryFloat32LikeTheOracle) {
  if (!have_avx512()) GTEST_SKIP() << "no AVX-512 on this CPU";
  for (const char* name : {"fp8_e4m3", "fp8_e5m2", "fp4_e2m1"}) sweep_kernel(name, Isa::kAvx512, 1);
}

TEST(ElementSweep, ReferenceEncodesAStratifiedSampleAndAllBoundariesLikeTheOracle) {
  for (const char* name : {"fp8_e4m3", "fp8_e5m2", "fp4_e2m1"}) {
    const ElementCodec& codec = *element(name).codec;
    const StepOracle oracle = oracle_for(name);
    Mismatches bad;
    std::atomic<uint64_t> checked{0};
    constexpr uint64_t kRuns = (uint64_t{1} << 31) / 32;
    testing::parallel_ranges(kRuns, sweep_threads(), [&](uint64_t begin, uint64_t end) {
      StepOracle::Walker walk(oracle, static_cast<uint32_t>(begin * 32));
      for (uint64_t run = begin; run < end; ++run) {
        const auto mag = static_cast<uint32_t>(run * 32 + ((run * 0x9E3779B97F4A7C15ull) >> 59));
        const auto [pos, neg, seg_end] = walk.at(mag);
        const float xp = bits_to_float(mag), xn = bits_to_float(mag | 0x80000000u);
        const uint32_t gp = codec.encode(xp), gn = codec.encode(xn);
        if (gp != pos) bad.add(xp, gp, pos, "+");
        if (gn != neg) bad.add(xn, gn, neg, "-");
      }
      checked += 2 * (end - begin);
    });
    // Boundaries: around every switch point and every representable value.
    std::vector<uint32_t> mags;
    for (uint32_t s : oracle.starts()) {
      for (int d = -64; d <= 64; ++d) mags.push_back(s + d);
    }
    for (uint32_t code = 0; code < num_codes(element(name)) / 2; ++code) {
      const float v = codec.decode(code);
      if (!std::isfinite(v)) continue;
      for (int d = -64; d <= 64; ++d) mags.push_back(float_to_bits(v) + d);
    }
    for (uint32_t m : {0x7f800000u, 0x7f800001u, 0x7fc00000u, 0x7fffffffu, 0x7f7fffffu, 0u, 1u}) mags.push_back(m);
    std::sort(mags.begin(), mags.end());
    mags.erase(std::unique(mags.begin(), mags.end()), mags.end());
    while (!mags.empty() && mags.back() > 0x7fffffffu) mags.pop_back();  // wrapped below 0
    StepOracle::Walker walk(oracle, 0);
    for (uint32_t mag : mags) {
      const auto [pos, neg, seg_end] = walk.at(mag);
      const float xp = bits_to_float(mag), xn = bits_to_float(mag | 0x80000000u);
      if (codec.encode(xp) != pos) bad.add(xp, codec.encode(xp), pos, "+ boundary");
      if (codec.encode(xn) != neg) bad.add(xn, codec.encode(xn), neg, "- boundary");
    }
    EXPECT_GE(checked.load() + 2 * mags.size(), 100000000u);
    bad.report(std::string(name) + " reference");
  }
}

}  // namespace
}  // namespace lowbit
