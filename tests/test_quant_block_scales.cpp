// BlockScales (quant/block_scales.h) repeats the formats layer's per-value
// arithmetic against scales chosen earlier. Known answer: quantizing the very
// values that chose the scales must give quantize()'s bytes exactly, by rows, by
// columns, and with the scales chosen group by group; the packed tensor must
// dequantize to the values quantize_*() returned, bit for bit. Every named format.
#include <gtest/gtest.h>

#include <cstring>

#include "quant/block_scales.h"
#include "test_quant_util.h"

namespace lowbit {
namespace {

using testing::gaussian;
using testing::max_abs;

void expect_same_floats(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(std::memcmp(&a[i], &b[i], 4), 0) << what << ": value " << i << ": " << a[i] << " vs " << b[i];
  }
}

void check_format(const BlockFormat& f, ScaleSearch search, int64_t rows, int64_t cols) {
  SCOPED_TRACE(f.name() + (search == ScaleSearch::kMseClip ? " mse" : " minmax"));
  std::vector<float> x = gaussian(rows, cols, 11);
  x[5] = 9.0f;  // one outlier, so clipping matters
  QuantizeOptions o;
  o.search = search;
  auto ref = quantize(f, x.data(), rows, cols, o);
  ASSERT_TRUE(ref.ok()) << ref.status().message();
  std::vector<float> ref_back(x.size());
  ASSERT_TRUE(dequantize(f, *ref, ref_back.data()).ok());

  auto made = BlockScales::create(f, rows, cols);
  ASSERT_TRUE(made.ok()) << made.status().message();
  BlockScales& s = *made;
  s.set_tensor_amax(max_abs(x));
  ASSERT_TRUE(s.choose(x.data(), 0, cols, o).ok());

  std::vector<uint16_t> codes(x.size());
  std::vector<float> q(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    s.quantize_row(r, 0, cols, x.data() + r * cols, codes.data() + r * cols, q.data() + r * cols);
  }
  auto packed = s.pack(codes.data());
  ASSERT_TRUE(packed.ok()) << packed.status().message();
  EXPECT_EQ(packed->codes, ref->codes);
  EXPECT_EQ(packed->scales, ref->scales);
  EXPECT_EQ(packed->mins, ref->mins);
  EXPECT_EQ(packed->tensor_scale, ref->tensor_scale);
  expect_same_floats(q, ref_back, "rows");

  // Column by column, with the scales chosen one group at a time.
  auto made2 = BlockScales::create(f, rows, cols);
  ASSERT_TRUE(made2.ok());
  BlockScales& s2 = *made2;
  s2.set_tensor_amax(max_abs(x));
  const int64_t g = s2.group_cols();
  std::vector<float> slice, col(rows), qc(rows);
  std::vector<uint16_t> cc(rows);
  for (int64_t c0 = 0; c0 < cols; c0 += g) {
    const int64_t len = std::min(g, cols - c0);
    slice.resize(static_cast<size_t>(rows * len));
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t k = 0; k < len; ++k) slice[r * len + k] = x[r * cols + c0 + k];
    }
    ASSERT_TRUE(s2.choose(slice.data(), c0, len, o).ok());
  }
  std::vector<float> q2(x.size());
  for (int64_t c = 0; c < cols; ++c) {
    for (int64_t r = 0; r < rows; ++r) col[r] = x[r * cols + c];
    s2.quantize_column(c, col.data(), cc.data(), qc.data());
    for (int64_t r = 0; r < rows; ++r) {
      codes[r * cols + c] = cc[r];
      q2[r * cols + c] = qc[r];
    }
  }
  auto packed2 = s2.pack(codes.data());
  ASSERT_TRUE(packed2.ok());
  EXPECT_EQ(packed2->codes, ref->codes);
  EXPECT_EQ(packed2->scales, ref->scales);
  EXPECT_EQ(packed2->mins, ref->mins);
  EXPECT_EQ(packed2->tensor_scale, ref->tensor_scale);
  expect_same_floats(q2, ref_back, "columns");
}

TEST(QuantBlockScales, ReproducesQuantizeForEveryNamedFormat) {
  for (const BlockFormat& f : block_formats()) {
    check_format(f, ScaleSearch::kMinMax, 7, 300);
    check_format(f, ScaleSearch::kMseClip, 5, 161);
  }
}

TEST(QuantBlockScales, Block2dTilesAndPartialGroups) {
  check_format(testing::named_format("fp8_e4m3_b128"), ScaleSearch::kMinMax, 130, 257);
  check_format(testing::named_format("int3_g128"), ScaleSearch::kMinMax, 3, 1);
}

TEST(QuantBlockScales, RejectsPartialGroupsAndUnchosenBlocks) {
  const BlockFormat& f = testing::named_format("int4_g128");
  auto s = BlockScales::create(f, 2, 300);
  ASSERT_TRUE(s.ok());
  std::vector<float> x(2 * 300, 1.0f);
  EXPECT_FALSE(s->choose(x.data(), 64, 128).ok());   // does not start a group
  EXPECT_FALSE(s->choose(x.data(), 0, 100).ok());    // does not end one
  EXPECT_TRUE(s->choose(x.data(), 256, 44).ok());    // the last, partial group
  std::vector<uint16_t> codes(x.size());
  EXPECT_FALSE(s->pack(codes.data()).ok());          // groups 0 and 1 never chosen
  auto nv = BlockScales::create(testing::named_format("nvfp4"), 2, 32);
  ASSERT_TRUE(nv.ok());
  EXPECT_FALSE(nv->choose(x.data(), 0, 32).ok());    // tensor |max| not set
}

}  // namespace
}  // namespace lowbit
