// checked_mul / checked_product: exact at the int64 limits, and every partial
// product is checked, so a zero dim after an overflowing pair is still an overflow.
#include <gtest/gtest.h>

#include <limits>
#include <vector>

#include "core/checked_math.h"

namespace lowbit {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

TEST(CheckedMath, MulAtTheLimits) {
  EXPECT_EQ(checked_mul<int64_t>(3, 7), 21);
  EXPECT_EQ(checked_mul<int64_t>(kMax, 1), kMax);
  EXPECT_EQ(checked_mul<int64_t>(kMax, 0), 0);
  EXPECT_EQ(checked_mul<int64_t>(int64_t{1} << 31, int64_t{1} << 31), int64_t{1} << 62);
  EXPECT_FALSE(checked_mul<int64_t>(int64_t{1} << 32, int64_t{1} << 31));
  EXPECT_FALSE(checked_mul<int64_t>(kMax, 2));
  EXPECT_FALSE(checked_mul<int>(65536, 65536));
  EXPECT_EQ(checked_mul<uint64_t>(uint64_t{1} << 63, 1), uint64_t{1} << 63);
  EXPECT_FALSE(checked_mul<uint64_t>(uint64_t{1} << 63, 2));
}

TEST(CheckedMath, ProductChecksEveryStep) {
  EXPECT_EQ(checked_product(std::vector<int64_t>{}), 1);
  EXPECT_EQ(checked_product(std::vector<int64_t>{4, 8, 2}), 64);
  EXPECT_EQ(checked_product(std::vector<int64_t>{5, 0, 3}), 0);
  const int64_t t40 = int64_t{1} << 40;
  EXPECT_FALSE(checked_product(std::vector<int64_t>{t40, t40, t40, t40}));
  EXPECT_FALSE(checked_product(std::vector<int64_t>{int64_t{1} << 62, 3, 0}));
  EXPECT_FALSE(checked_product(std::vector<int64_t>{2, -1}));
  EXPECT_EQ(checked_product(std::vector<int64_t>{int64_t{1} << 62, 1}), int64_t{1} << 62);
}

}  // namespace
}  // namespace lowbit
