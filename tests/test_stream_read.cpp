// The bandwidth probe's read kernel (kernels/stream_read.h): every variant returns
// the generic (wrapping) sum, over lengths that leave every kind of tail.
#include <gtest/gtest.h>

#include <vector>

#include "kernels/stream_read.h"

namespace lowbit {
namespace {

TEST(StreamRead, VariantsReturnTheSameSum) {
  for (int64_t n : {0, 1, 3, 31, 32, 33, 255, 4097}) {
    std::vector<uint64_t> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[i] = 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(i + 1);  // wraps
    uint64_t want = 0;
    for (uint64_t x : v) want += x;
    EXPECT_EQ(sum_words_generic(v.data(), n), want) << n;
    if (isa_supported(Isa::kAvx2, detect_cpu_features())) EXPECT_EQ(sum_words_avx2(v.data(), n), want) << n;
    if (isa_supported(Isa::kAvx512, detect_cpu_features())) EXPECT_EQ(sum_words_avx512(v.data(), n), want) << n;
    EXPECT_EQ(sum_words_kernel(active_isa())(v.data(), n), want) << n;
  }
}

}  // namespace
}  // namespace lowbit
