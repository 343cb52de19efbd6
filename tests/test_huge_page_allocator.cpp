// core/huge_page_allocator.h: large blocks start on a 2 MiB boundary (so whole
// huge pages can back them), small ones come from operator new; vectors with
// the allocator copy, grow and move like std::vector; raw buffers hold what is
// written. Whether the kernel grants huge pages is the system's choice and is
// not asserted here.
#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>

#include "core/huge_page_allocator.h"

namespace lowbit {
namespace {

bool huge_aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % kHugePageBytes == 0; }

TEST(HugePageAllocator, LargeBlocksStartOnA2MiBBoundary) {
  for (size_t bytes : {kHugePageMin, kHugePageBytes - 1, kHugePageBytes, 3 * kHugePageBytes + 4097}) {
    HugePageVector<uint8_t> v(bytes, 7);
    EXPECT_TRUE(huge_aligned(v.data())) << bytes;
    EXPECT_EQ(v.front(), 7);
    EXPECT_EQ(v.back(), 7);
  }
}

TEST(HugePageAllocator, VectorsCopyGrowAndMove) {
  HugePageVector<uint16_t> small(1000);  // below kHugePageMin: operator new
  std::iota(small.begin(), small.end(), uint16_t{0});
  HugePageVector<uint16_t> big = small;
  big.resize(kHugePageMin);  // crosses to the huge-page path on reallocation
  EXPECT_TRUE(huge_aligned(big.data()));
  for (size_t i = 0; i < small.size(); ++i) ASSERT_EQ(big[i], small[i]) << i;
  EXPECT_EQ(big.back(), 0);
  const uint16_t* data = big.data();
  HugePageVector<uint16_t> moved = std::move(big);
  EXPECT_EQ(moved.data(), data);  // a move keeps the block
  moved.clear();
  moved.shrink_to_fit();  // frees through the matching path
  EXPECT_TRUE(moved.empty());
}

TEST(HugePageAllocator, BuffersHoldWhatIsWritten) {
  const int64_t n = 3 * (int64_t{1} << 20) + 5;  // 12 MiB of floats plus a tail
  HugePageBuffer<float> b = huge_page_buffer<float>(n);
  EXPECT_TRUE(huge_aligned(b.get()));
  for (int64_t i = 0; i < n; ++i) b[i] = static_cast<float>(i % 1000);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += b[i];
  EXPECT_EQ(sum, static_cast<double>(n / 1000) * 499500.0 + (n % 1000) * (n % 1000 - 1) / 2.0);
}

}  // namespace
}  // namespace lowbit
