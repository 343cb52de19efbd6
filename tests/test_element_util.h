// Helpers shared by the element format tests (tests/test_element_*.cpp).
#pragma once

#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/half.h"
#include "formats/element_format.h"
#include "test_util.h"

namespace lowbit::testing {

// The table entry of a built-in format; fails the test when it is missing.
inline const ElementFormat& element(const std::string& name) {
  auto f = find_element_format(name);
  EXPECT_TRUE(f.ok()) << f.status().message();
  if (!f.ok()) throw std::runtime_error("missing element format " + name);
  return *f.value();
}

// Same bits (so +0 != -0, and any NaN equals any NaN).
inline bool same_value(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return float_to_bits(a) == float_to_bits(b);
}

// Float32 bits -> an integer in the order of the values: -inf < ... < -0 < +0 <
// ... < +inf (NaNs beyond the infinities).
inline int64_t value_key(float x) {
  const auto s = static_cast<int32_t>(float_to_bits(x));
  return s < 0 ? (s ^ 0x7fffffff) : s;
}
inline float key_value(int64_t key) {
  const auto s = static_cast<int32_t>(key);
  return bits_to_float(static_cast<uint32_t>(s < 0 ? (s ^ 0x7fffffff) : s));
}
inline const int64_t kMinusInfKey = value_key(-INFINITY);
inline const int64_t kPlusInfKey = value_key(INFINITY);

// A fixture line "hex hex" from tests/data/formats/<file>.
struct HexPair {
  uint32_t first = 0;
  uint32_t second = 0;
};

inline std::vector<HexPair> read_hex_pairs(const std::string& file) {
  std::vector<HexPair> rows;
  std::ifstream in(source_path("tests/data/formats/" + file));
  EXPECT_TRUE(in.good()) << "missing fixture tests/data/formats/" << file
                         << " (regenerate with scripts/gen_format_fixtures.py)";
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    HexPair p;
    fields >> std::hex >> p.first >> p.second;
    rows.push_back(p);
  }
  return rows;
}

// Runs fn(begin, end) over [0, count) split across `threads` std::threads.
inline void parallel_ranges(uint64_t count, int threads, const std::function<void(uint64_t, uint64_t)>& fn) {
  std::vector<std::thread> pool;
  const uint64_t chunk = (count + threads - 1) / threads;
  for (int t = 0; t < threads; ++t) {
    const uint64_t begin = chunk * t;
    const uint64_t end = std::min<uint64_t>(count, begin + chunk);
    if (begin < end) pool.emplace_back(fn, begin, end);
  }
  for (auto& th : pool) th.join();
}

// Formats outside the table that the factories build, tested like the table's.
inline const std::vector<ElementFormat>& extra_element_formats() {
  static const std::vector<ElementFormat> extra = [] {
    std::vector<ElementFormat> out;
    for (int bits : {3, 5, 9, 12, 16}) {
      for (IntMode mode : {IntMode::kSymmetricRestricted, IntMode::kSymmetricFull, IntMode::kAsymmetric}) {
        out.push_back(make_int_format(bits, mode).value());
      }
    }
    for (auto [n, es] : {std::pair{2, 0}, {3, 1}, {5, 0}, {6, 1}, {6, 3}, {7, 2}, {10, 1}, {12, 3}, {16, 0}, {16, 3}}) {
      out.push_back(make_posit_format(n, es).value());
    }
    out.push_back(make_codebook_format("ternary", {-1.0f, 0.0f, 1.0f}).value());
    out.push_back(make_codebook_format("k5", {-3.5f, -0.25f, 0.0f, 0.125f, 7.0f}).value());
    using S = MinifloatSpecials;
    for (auto [name, spec] : {std::pair{"e3m4", MinifloatSpec{3, 4, 3, true, true, S::kFiniteOnly}},
                              {"e5m2_sat", MinifloatSpec{5, 2, 15, true, true, S::kOneNan}},
                              {"e4m3_ieee", MinifloatSpec{4, 3, 7, true, true, S::kIeee}},
                              {"e5m3_ieee", MinifloatSpec{5, 3, 15, true, true, S::kIeee}},
                              {"ue2m1", MinifloatSpec{2, 1, 1, false, true, S::kFiniteOnly}}}) {
      out.push_back(make_minifloat_format(name, spec).value());
    }
    return out;
  }();
  return extra;
}

// The table's formats and the extra ones.
inline std::vector<const ElementFormat*> all_test_formats() {
  std::vector<const ElementFormat*> out;
  for (const ElementFormat& f : element_formats()) out.push_back(&f);
  for (const ElementFormat& f : extra_element_formats()) out.push_back(&f);
  return out;
}

}  // namespace lowbit::testing
