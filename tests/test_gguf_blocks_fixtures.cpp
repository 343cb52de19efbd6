// lowbit's GGUF block encoders against gguf-py, through committed fixtures:
//
//   tests/data/gguf_blocks/<type>.bin  the bytes gguf_quantize writes for the
//                                      fixture matrix below
//   tests/data/gguf_blocks/<type>.f32  lowbit's reference dequantization of
//                                      them, little-endian float32
//
// EncoderReproducesCommittedFixtures pins the encoder (any change in its
// output shows here) and lowbit's decoding of those bytes;
// tests/python/test_gguf_blocks_py.py checks that gguf-py's
// gguf.quants.dequantize of every .bin equals the .f32 bit for bit, and
// GgufPyDecodesLowbitBytes runs that script where python3 has gguf and numpy.
//
// The matrix is made with integer arithmetic and IEEE additions only, so it is
// the same on every machine. To regenerate after an intended encoder change:
//   LOWBIT_WRITE_GGUF_FIXTURES=1 ./build/lowbit_tests --gtest_filter='GgufBlockFixtures.*'
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/half.h"
#include "formats/gguf_blocks.h"
#include "test_util.h"

namespace lowbit {
namespace {

constexpr int64_t kRows = 8;
constexpr int64_t kCols = 512;  // two K super-blocks, sixteen 32-element blocks

uint64_t mix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in [0, 1) with 24 bits, exact in float.
float uniform(uint64_t i) { return static_cast<float>(mix(i) >> 40) * 0x1p-24f; }

// Roughly N(0, 1/3): a sum of four uniforms, centred.
float bell(uint64_t i) { return uniform(4 * i) + uniform(4 * i + 1) + uniform(4 * i + 2) + uniform(4 * i + 3) - 2.0f; }

// [kRows, kCols]: zeros, a constant, a ramp, a bell curve, a heavy-tailed row,
// tiny values (fp16-subnormal scales), one outlier among small values, and
// large values. Rows 0-3 are encoded without importance, rows 4-7 with it.
std::vector<float> fixture_matrix() {
  std::vector<float> x(static_cast<size_t>(kRows * kCols));
  for (int64_t c = 0; c < kCols; ++c) {
    const uint64_t i = static_cast<uint64_t>(c);
    x[0 * kCols + c] = 0.0f;
    x[1 * kCols + c] = 0.75f;
    x[2 * kCols + c] = static_cast<float>(c - kCols / 2) / 128.0f;
    x[3 * kCols + c] = bell(1000 + i);
    x[4 * kCols + c] = bell(2000 + i) * (mix(3000 + i) % 23 == 0 ? 20.0f : 1.0f);
    x[5 * kCols + c] = bell(4000 + i) * 1e-6f;
    x[6 * kCols + c] = c == 77 ? 300.0f : bell(5000 + i) * 0.01f;
    x[7 * kCols + c] = bell(6000 + i) * 1e4f;
  }
  return x;
}

// [kCols] importance in [1, 64), spread like imatrix column sums.
std::vector<float> fixture_importance() {
  std::vector<float> w(static_cast<size_t>(kCols));
  for (int64_t c = 0; c < kCols; ++c) w[c] = std::ldexp(1.0f + uniform(7000 + c), static_cast<int>(mix(8000 + c) % 6));
  return w;
}

std::string fixture_base(const GgufBlockType& t) {
  return testing::source_path(std::string("tests/data/gguf_blocks/") + t.name);
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const void* data, size_t n) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

TEST(GgufBlockFixtures, EncoderReproducesCommittedFixtures) {
  const std::vector<float> x = fixture_matrix();
  const std::vector<float> w = fixture_importance();
  const bool write = std::getenv("LOWBIT_WRITE_GGUF_FIXTURES") != nullptr;
  for (const GgufBlockType& t : gguf_block_types()) {
    SCOPED_TRACE(t.name);
    const int64_t half = kRows / 2;
    auto plain = gguf_quantize(t, x.data(), half, kCols);
    auto weighted = gguf_quantize(t, x.data() + half * kCols, half, kCols, w);
    ASSERT_TRUE(plain.ok() && weighted.ok());
    QuantizedTensor q = std::move(plain).value();
    q.rows = kRows;
    q.codes.insert(q.codes.end(), weighted->codes.begin(), weighted->codes.end());
    std::vector<float> y(static_cast<size_t>(kRows * kCols));
    ASSERT_TRUE(gguf_dequantize(t, q, y.data()).ok());
    const std::string base = fixture_base(t);
    if (write) {
      write_bytes(base + ".bin", q.codes.data(), q.codes.size());
      write_bytes(base + ".f32", y.data(), y.size() * sizeof(float));
      continue;
    }
    const std::vector<uint8_t> bin = read_bytes(base + ".bin");
    const std::vector<uint8_t> f32 = read_bytes(base + ".f32");
    ASSERT_FALSE(bin.empty()) << "missing " << base << ".bin";
    EXPECT_EQ(bin, q.codes) << t.name << ": the encoder's output changed; if that is intended, regenerate with "
                            << "LOWBIT_WRITE_GGUF_FIXTURES=1 and rerun tests/python/test_gguf_blocks_py.py";
    ASSERT_EQ(f32.size(), y.size() * sizeof(float));
    std::vector<float> expected(y.size());
    std::memcpy(expected.data(), f32.data(), f32.size());
    for (size_t i = 0; i < y.size(); ++i) {
      ASSERT_EQ(float_to_bits(y[i]), float_to_bits(expected[i])) << t.name << " element " << i;
    }
  }
}

TEST(GgufBlockFixtures, GgufPyDecodesLowbitBytes) {
  const testing::CommandResult probe = [] {
    testing::CommandResult r;
    FILE* p = popen("python3 -c 'import gguf, numpy' 2>&1", "r");
    if (p == nullptr) return r;
    char buf[256];
    while (fgets(buf, sizeof(buf), p) != nullptr) r.output += buf;
    const int status = pclose(p);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
  }();
  if (probe.exit_code != 0) GTEST_SKIP() << "python3 with gguf and numpy not available: " << probe.output;
  const std::string command =
      "python3 " + testing::source_path("tests/python/test_gguf_blocks_py.py") + " 2>&1";
  FILE* p = popen(command.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string output;
  char buf[256];
  while (fgets(buf, sizeof(buf), p) != nullptr) output += buf;
  const int status = pclose(p);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << output;
  EXPECT_NE(output.find("11 types"), std::string::npos) << output;
}

}  // namespace
}  // namespace lowbit
