// The KV tensor codec, the storage stream and the Hadamard transform: exact
// sizes, error bounds from the scale, exact outliers, bit-exact FP32 sinks and
// residual windows, and the allocation matching the accounting.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "core/half.h"
#include "kernels/hadamard.h"
#include "kvcache/kv_spec.h"
#include "kvcache/kv_stream.h"
#include "kvcache/kv_tensor_codec.h"
#include "kvcache/quantized_kv_cache.h"

namespace lowbit {
namespace {

std::vector<float> gaussian(size_t n, uint64_t seed, float sigma = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

KvTensorSpec tensor(const std::string& spec_text, bool keys) {
  auto s = parse_kv_spec(spec_text);
  EXPECT_TRUE(s.ok()) << s.status().message();
  return keys ? s->layers[0].key : s->layers[0].value;
}

KvTensorCodec make_codec(const KvTensorSpec& t, int width, int head_dim, int sparse = 0) {
  auto c = KvTensorCodec::create(t, width, head_dim, sparse, {}, "test");
  EXPECT_TRUE(c.ok()) << c.status().message();
  return std::move(c).value();
}

TEST(KvCodec, BytesPerTokenKnownAnswers) {
  // SmolLM2-135M: 3 KV heads of 64. k4 per token, G = 32: 96 code bytes + 6 groups x (FP16 scale + FP16 zero).
  EXPECT_EQ(make_codec(tensor("k4v4", true), 192, 64).unit_bytes(), 96 + 6 * 4);
  // k3: 72 code bytes + 24; k2: 48 + 24; k8: 192 + 24.
  EXPECT_EQ(make_codec(tensor("k3v3", true), 192, 64).unit_bytes(), 72 + 24);
  EXPECT_EQ(make_codec(tensor("k2v2", true), 192, 64).unit_bytes(), 48 + 24);
  // FP8 has no zero point: 192 + 6 x 2.
  EXPECT_EQ(make_codec(tensor("k8v8-fp8", true), 192, 64).unit_bytes(), 192 + 12);
  // KIVI keys: a block of 32 tokens, 32 x 192 2-bit codes + 192 channels x 4 bytes = 72 bytes a token.
  const KvTensorCodec kivi = make_codec(tensor("k2v2-kivi", true), 192, 64);
  EXPECT_EQ(kivi.tokens_per_unit(), 32);
  EXPECT_EQ(kivi.unit_bytes(), 32 * 192 / 4 + 192 * 4);
  EXPECT_DOUBLE_EQ(kivi.bytes_per_token(), 72.0);
  // 16-bit codes take FP32 scales: 384 + 6 x 8.
  EXPECT_EQ(make_codec(tensor("k16v16", true), 192, 64).unit_bytes(), 384 + 48);
  // 1% outliers of 192: 2 entries of 6 bytes.
  EXPECT_EQ(kv_sparse_count(1.0, 192), 2);
  EXPECT_EQ(kv_sparse_count(100.0, 192), 192);
  EXPECT_DOUBLE_EQ(make_codec(tensor("k4v4", true), 192, 64, 2).bytes_per_token(), 120.0 + 12.0);
}

// Every element within half a step (plus the FP16 rounding of the scale and zero point).
void expect_within_half_step(const KvTensorCodec& codec, const std::vector<float>& x, const std::vector<float>& y,
                             int group, int levels) {
  for (size_t g0 = 0; g0 < x.size(); g0 += group) {
    const auto [mn, mx] = std::minmax_element(x.begin() + g0, x.begin() + g0 + group);
    const double step = (*mx - *mn) / (levels - 1);
    const double tol = 0.5 * step + 2e-3 * std::max(std::fabs(*mn), std::fabs(*mx));
    for (size_t i = g0; i < g0 + group; ++i) {
      ASSERT_LE(std::fabs(x[i] - y[i]), tol) << "element " << i << ": " << x[i] << " -> " << y[i];
    }
  }
}

TEST(KvCodec, IntegerPerTokenErrorWithinHalfStep) {
  for (int bits : {2, 3, 4, 8}) {
    const KvTensorCodec c = make_codec(tensor(fmt::format("k{}v{}", bits, bits), true), 192, 64);
    const int rows = 7;
    const std::vector<float> x = gaussian(rows * 192, bits);
    std::vector<uint8_t> dense(rows * c.unit_bytes());
    std::vector<float> y(x.size());
    KvCodecScratch s;
    c.encode(x.data(), rows, dense.data(), nullptr, s);
    c.decode(dense.data(), nullptr, rows, y.data(), s);
    expect_within_half_step(c, x, y, 32, 1 << bits);
    // Dequantize -> quantize gives the same bytes.
    std::vector<uint8_t> again(dense.size());
    c.encode(y.data(), rows, again.data(), nullptr, s);
    EXPECT_EQ(again, dense) << bits << " bits";
  }
}

TEST(KvCodec, KiviPerChannelErrorWithinHalfStep) {
  const KvTensorCodec c = make_codec(tensor("k3v3-kivi-b8", true), 16, 8);
  std::vector<float> x = gaussian(8 * 16, 5);
  for (int t = 0; t < 8; ++t) x[t * 16 + 3] += 40.0f;  // an outlier channel: only its own groups widen
  std::vector<uint8_t> dense(c.unit_bytes());
  std::vector<float> y(x.size());
  KvCodecScratch s;
  c.encode(x.data(), 1, dense.data(), nullptr, s);
  c.decode(dense.data(), nullptr, 1, y.data(), s);
  for (int ch = 0; ch < 16; ++ch) {
    float mn = 1e30f, mx = -1e30f;
    for (int t = 0; t < 8; ++t) mn = std::min(mn, x[t * 16 + ch]), mx = std::max(mx, x[t * 16 + ch]);
    const double tol = 0.5 * (mx - mn) / 7 + 2e-3 * std::max(std::fabs(mn), std::fabs(mx));
    for (int t = 0; t < 8; ++t) EXPECT_LE(std::fabs(x[t * 16 + ch] - y[t * 16 + ch]), tol) << "channel " << ch;
  }
}

TEST(KvCodec, ConstantAndZeroGroups) {
  const KvTensorCodec c = make_codec(tensor("k2v2-g8", true), 16, 8);
  std::vector<float> x(16, 0.0f);
  std::fill(x.begin() + 8, x.end(), 0.375f);  // exactly representable in FP16
  std::vector<uint8_t> dense(c.unit_bytes());
  std::vector<float> y(16, -1.0f);
  KvCodecScratch s;
  c.encode(x.data(), 1, dense.data(), nullptr, s);
  c.decode(dense.data(), nullptr, 1, y.data(), s);
  EXPECT_EQ(y, x);
}

TEST(KvCodec, SixteenBitCodesAreNearlyExact) {
  const KvTensorCodec c = make_codec(tensor("k16v16", true), 64, 64);
  const std::vector<float> x = gaussian(64, 9, 3.0f);
  std::vector<uint8_t> dense(c.unit_bytes());
  std::vector<float> y(64);
  KvCodecScratch s;
  c.encode(x.data(), 1, dense.data(), nullptr, s);
  c.decode(dense.data(), nullptr, 1, y.data(), s);
  // Half a step of the group's range over 65535 levels, plus float rounding of y s + z.
  for (int g = 0; g < 2; ++g) {
    const auto [mn, mx] = std::minmax_element(x.begin() + 32 * g, x.begin() + 32 * g + 32);
    const double tol = 0.5 * (*mx - *mn) / 65535 + 4e-7 * std::max(std::fabs(*mn), std::fabs(*mx));
    EXPECT_LT(tol, 1.5e-4);
    for (int i = 32 * g; i < 32 * g + 32; ++i) EXPECT_NEAR(x[i], y[i], tol) << i;
  }
}

TEST(KvCodec, MinifloatsCodeTheScaledValue) {
  // FP8 E4M3 with the group maximum on 448: relative error <= 2^-4 for normal values.
  const KvTensorCodec c = make_codec(tensor("k8v8-fp8", true), 32, 32);
  const std::vector<float> x = gaussian(32, 3);
  std::vector<uint8_t> dense(c.unit_bytes());
  std::vector<float> y(32);
  KvCodecScratch s;
  c.encode(x.data(), 1, dense.data(), nullptr, s);
  c.decode(dense.data(), nullptr, 1, y.data(), s);
  float amax = 0;
  for (float v : x) amax = std::max(amax, std::fabs(v));
  for (int i = 0; i < 32; ++i) {
    EXPECT_LE(std::fabs(x[i] - y[i]), std::max(std::fabs(x[i]) / 16.0f, amax / 448.0f * 0.01f) + 1e-3f * amax) << i;
  }
}

TEST(KvCodec, DenseAndSparseAllOutliersIsExact) {
  for (const char* spec : {"k2v2", "k2v2-kivi-b4", "k4v4-fp4"}) {
    const KvTensorCodec c = make_codec(tensor(spec, true), 24, 8, kv_sparse_count(100.0, 24));
    const int T = c.tokens_per_unit();
    const std::vector<float> x = gaussian(T * 24 * 3, 11, 5.0f);
    std::vector<uint8_t> dense(3 * c.unit_bytes()), sparse(3 * T * c.sparse_row_bytes());
    std::vector<float> y(x.size());
    KvCodecScratch s;
    c.encode(x.data(), 3, dense.data(), sparse.data(), s);
    c.decode(dense.data(), sparse.data(), 3, y.data(), s);
    EXPECT_EQ(std::memcmp(x.data(), y.data(), x.size() * 4), 0) << spec;
  }
}

TEST(KvCodec, SparseKeepsTheLargestExactlyAndShrinksTheRange) {
  const KvTensorCodec plain = make_codec(tensor("k3v3-g32", true), 32, 32);
  const KvTensorCodec sparse = make_codec(tensor("k3v3-g32", true), 32, 32, 1);
  std::vector<float> x = gaussian(32, 4);
  x[17] = 100.0f;
  KvCodecScratch s;
  std::vector<uint8_t> d1(plain.unit_bytes()), d2(sparse.unit_bytes()), side(sparse.sparse_row_bytes());
  std::vector<float> y1(32), y2(32);
  plain.encode(x.data(), 1, d1.data(), nullptr, s);
  plain.decode(d1.data(), nullptr, 1, y1.data(), s);
  sparse.encode(x.data(), 1, d2.data(), side.data(), s);
  sparse.decode(d2.data(), side.data(), 1, y2.data(), s);
  EXPECT_EQ(y2[17], 100.0f);
  double e1 = 0, e2 = 0;
  for (int i = 0; i < 32; ++i) e1 += (x[i] - y1[i]) * (x[i] - y1[i]), e2 += (x[i] - y2[i]) * (x[i] - y2[i]);
  EXPECT_LT(e2, e1 / 100.0);
}

TEST(KvHadamard, KnownAnswersAndOrthogonality) {
  std::vector<float> e0 = {1, 0, 0, 0};
  fwht(e0.data(), 4);
  EXPECT_EQ(e0, (std::vector<float>{0.5f, 0.5f, 0.5f, 0.5f}));
  std::vector<float> e1 = {0, 1, 0, 0};
  fwht(e1.data(), 4);
  EXPECT_EQ(e1, (std::vector<float>{0.5f, -0.5f, 0.5f, -0.5f}));
  const std::vector<float> x = gaussian(64, 2);
  std::vector<float> y = x;
  fwht(y.data(), 64);
  double nx = 0, ny = 0;
  for (int i = 0; i < 64; ++i) nx += x[i] * x[i], ny += y[i] * y[i];
  EXPECT_NEAR(nx, ny, 1e-4 * nx);
  fwht(y.data(), 64);  // its own inverse
  for (int i = 0; i < 64; ++i) EXPECT_NEAR(x[i], y[i], 1e-6) << i;
  // (qH)·(kH) = q·k.
  const std::vector<float> q = gaussian(64, 7), k = gaussian(64, 8);
  std::vector<float> qh = q, kh = k;
  fwht(qh.data(), 64);
  fwht(kh.data(), 64);
  double d = 0, dh = 0;
  for (int i = 0; i < 64; ++i) d += q[i] * k[i], dh += qh[i] * kh[i];
  EXPECT_NEAR(d, dh, 1e-5);
}

TEST(KvStream, SinksAndResidualWindowAreBitExact) {
  const KvTensorCodec c = make_codec(tensor("k2v2-g8", true), 16, 8);
  const int capacity = 100, sinks = 4, residual = 16;
  const std::vector<float> x = gaussian(capacity * 16, 21);
  // Written in uneven batches, the state after every write is checked.
  KvStream stream(c, capacity, sinks, residual);
  std::vector<float> out(x.size());
  int pos = 0;
  for (int n : {1, 2, 5, 9, 30, 1, 1, 51}) {
    ASSERT_TRUE(stream.write(pos, n, x.data() + pos * 16).ok());
    pos += n;
    stream.read(pos, out.data());
    for (int p = 0; p < pos; ++p) {
      const bool fp32 = p < sinks || p >= pos - residual;
      const bool same = std::memcmp(out.data() + p * 16, x.data() + p * 16, 64) == 0;
      if (fp32) {
        EXPECT_TRUE(same) << "position " << p << " of " << pos << " is not bit-exact";
      } else if (p < stream.first_writable()) {
        EXPECT_FALSE(same) << "position " << p << " was not quantized";
      }
    }
  }
  // Coded positions cannot be rewritten; positions in the window can.
  EXPECT_FALSE(stream.write(10, 1, x.data()).ok());
  EXPECT_TRUE(stream.write(pos - 3, 3, x.data()).ok());
  EXPECT_FALSE(stream.write(pos + 1, 1, x.data()).ok());
}

TEST(KvStream, BatchedAndTokenByTokenWritesStoreTheSame) {
  const KvTensorCodec c = make_codec(tensor("k3v3-kivi-b8", true), 16, 8);
  const int capacity = 77;
  const std::vector<float> x = gaussian(capacity * 16, 31);
  KvStream a(c, capacity, 2, 8), b(c, capacity, 2, 8);
  ASSERT_TRUE(a.write(0, capacity, x.data()).ok());
  for (int p = 0; p < capacity; ++p) ASSERT_TRUE(b.write(p, 1, x.data() + p * 16).ok());
  std::vector<float> ra(x.size()), rb(x.size());
  a.read(capacity, ra.data());
  b.read(capacity, rb.data());
  EXPECT_EQ(ra, rb);
  // Reading a prefix that cuts a unit gives the same rows.
  std::vector<float> prefix(37 * 16);
  a.read(37, prefix.data());
  EXPECT_TRUE(std::equal(prefix.begin(), prefix.end(), ra.begin()));
}

TEST(KvCodec, Fp16StoresRoundedHalves) {
  // 2 bytes an element, no scales: x' = fp16(x), round to nearest even, bit for bit
  // (1 + 2^-11 is a tie and goes to 1; 65520 overflows to infinity as in F16C).
  const KvTensorCodec c = make_codec(tensor("fp16", true), 192, 64);
  EXPECT_EQ(c.unit_bytes(), 384);
  EXPECT_DOUBLE_EQ(c.bytes_per_token(), 384.0);
  std::vector<float> x = gaussian(3 * 192, 21, 3.0f);
  x[0] = 1.0f + 0x1p-11f;
  x[1] = 1.0f + 0x3p-11f;
  x[2] = 65520.0f;
  x[3] = -0x1p-25f;
  std::vector<uint8_t> dense(3 * 384);
  KvCodecScratch scratch;
  c.encode(x.data(), 3, dense.data(), nullptr, scratch);
  std::vector<float> out(x.size());
  c.decode(dense.data(), nullptr, 3, out.data(), scratch);
  for (size_t i = 0; i < x.size(); ++i) {
    uint16_t h = 0;
    std::memcpy(&h, dense.data() + 2 * i, 2);
    ASSERT_EQ(h, float_to_fp16(x[i])) << i;
    const float expect = fp16_to_float(float_to_fp16(x[i]));
    ASSERT_EQ(std::memcmp(&out[i], &expect, 4), 0) << i << ": " << out[i] << " vs " << expect;
  }
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], 1.0f + 0x1p-9f);
  EXPECT_TRUE(std::isinf(out[2]));
  EXPECT_TRUE(out[3] == 0.0f && std::signbit(out[3]));
  // Through the cache: what a layer reads back is the rounded rows.
  auto spec = parse_kv_spec("fp16");
  ASSERT_TRUE(spec.ok());
  auto cache = QuantizedKvCache::create(*spec, KvCacheShape{2, 8, 3, 64});
  ASSERT_TRUE(cache.ok()) << cache.status().message();
  const std::vector<float> k = gaussian(4 * 192, 22), v = gaussian(4 * 192, 23);
  ASSERT_TRUE((*cache)->write(1, 0, 4, k.data(), v.data()).ok());
  std::vector<float> k_out(k.size()), v_out(v.size());
  (*cache)->read(1, 4, k_out.data(), v_out.data());
  for (size_t i = 0; i < k.size(); ++i) {
    ASSERT_EQ(k_out[i], fp16_to_float(float_to_fp16(k[i]))) << i;
    ASSERT_EQ(v_out[i], fp16_to_float(float_to_fp16(v[i]))) << i;
  }
  EXPECT_DOUBLE_EQ((*cache)->bytes_per_token(), 2 * 2 * 384.0);
}

TEST(KvCache, AllocatedBytesMatchTheAccounting) {
  // 2 layers, 3 heads of 64, 1000 positions, k4v2-kivi-r128-sink4-sparse1.
  auto spec = parse_kv_spec("k4v2-kivi-r128-sink4-sparse1");
  ASSERT_TRUE(spec.ok());
  const KvCacheShape shape{2, 1000, 3, 64};
  auto cache = QuantizedKvCache::create(*spec, shape);
  ASSERT_TRUE(cache.ok()) << cache.status().message();
  // Keys: units of 32 tokens of 32*192*4/8 + 192*4 bytes; values: 48 + 6*4 bytes a token; 2 outliers x 6 bytes a row.
  const double key_token = (32.0 * 192 / 2 + 192 * 4) / 32 + 12;
  const double value_token = 48 + 24 + 12;
  EXPECT_DOUBLE_EQ((*cache)->bytes_per_token(), 2 * (key_token + value_token));
  // Units ever filled: keys (1000 - 4 - 128) / 32 = 27, values 868; FP32 sinks 4 rows, window R + T rows.
  const uint64_t keys = 27 * (32 * 96 + 768) + 27 * 32 * 12 + (4 + 128 + 32) * 192 * 4;
  const uint64_t values = 868 * 72 + 868 * 12 + (4 + 128 + 1) * 192 * 4;
  EXPECT_EQ((*cache)->allocated_bytes(), 2 * (keys + values));
  // The FP32 cache: capacity x 2 x kv_dim x 4 per layer.
  Fp32KvCache fp(2, 1000, 192);
  EXPECT_EQ(fp.allocated_bytes(), 2ull * 1000 * 2 * 192 * 4);
  EXPECT_DOUBLE_EQ(fp.bytes_per_token(), 2.0 * 2 * 192 * 4);
}

}  // namespace
}  // namespace lowbit
