// CUDA's host conversion functions (cuda_fp8.h, cuda_fp6.h, cuda_fp4.h, CUDA >= 12.8)
// as an independent oracle, compiled by the host C++ compiler (no GPU, no nvcc,
// no libcudart: the conversions are inline host code). The test needs only the
// CUDA include directory on the include path; without it every test skips.
//
// Which CUDA mode matches lowbit's documented policy:
//   - E4M3: __NV_SATFINITE (saturate, inf -> 448, NaN -> 0x7F): every input equal.
//   - E5M2: __NV_NOSAT (IEEE: overflow -> inf): equal, except that CUDA's NaN is
//     0x7F where lowbit's canonical NaN is 0x7E (both NaN).
//   - FP6 E2M3/E3M2, FP4 E2M1 with cudaRoundNearest (saturating): equal, except
//     NaN input, which CUDA sends to +max and lowbit to +0 (the formats have no NaN).
//   - E8M0: CUDA rounds only toward zero or +inf and takes |x|; lowbit's RNE
//     result must be one of the two for x > 0, and both are equal on powers of two.
#include <random>

#include "test_element_util.h"

#if __has_include(<cuda_fp8.h>) && __has_include(<cuda_fp6.h>) && __has_include(<cuda_fp4.h>)
#include <cuda_fp4.h>
#include <cuda_fp6.h>
#include <cuda_fp8.h>
#define LOWBIT_HAVE_CUDA_FP_HEADERS 1
#endif

namespace lowbit {
namespace {

#ifdef LOWBIT_HAVE_CUDA_FP_HEADERS

enum class Kind { kE4M3, kE5M2, kE2M3, kE3M2, kE2M1 };

float cuda_decode(Kind kind, uint32_t code) {
  __half_raw h{};
  switch (kind) {
    case Kind::kE4M3: h = __nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(code), __NV_E4M3); break;
    case Kind::kE5M2: h = __nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(code), __NV_E5M2); break;
    case Kind::kE2M3: h = __nv_cvt_fp6_to_halfraw(static_cast<__nv_fp6_storage_t>(code), __NV_E2M3); break;
    case Kind::kE3M2: h = __nv_cvt_fp6_to_halfraw(static_cast<__nv_fp6_storage_t>(code), __NV_E3M2); break;
    case Kind::kE2M1: h = __nv_cvt_fp4_to_halfraw(static_cast<__nv_fp4_storage_t>(code), __NV_E2M1); break;
  }
  return fp16_to_float(h.x);  // every FP8/FP6/FP4 value is exact in FP16
}

uint32_t cuda_encode(Kind kind, float x) {
  switch (kind) {
    case Kind::kE4M3: return __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3);
    case Kind::kE5M2: return __nv_cvt_float_to_fp8(x, __NV_NOSAT, __NV_E5M2);
    case Kind::kE2M3: return __nv_cvt_float_to_fp6(x, __NV_E2M3, cudaRoundNearest);
    case Kind::kE3M2: return __nv_cvt_float_to_fp6(x, __NV_E3M2, cudaRoundNearest);
    case Kind::kE2M1: return __nv_cvt_float_to_fp4(x, __NV_E2M1, cudaRoundNearest);
  }
  return 0;
}

struct CudaFormat {
  const char* name;
  Kind kind;
};
const CudaFormat kFormats[] = {{"fp8_e4m3", Kind::kE4M3}, {"fp8_e5m2", Kind::kE5M2}, {"fp6_e2m3", Kind::kE2M3},
                               {"fp6_e3m2", Kind::kE3M2}, {"fp4_e2m1", Kind::kE2M1}};

// Every value, its 3 neighbours either side, every midpoint and its neighbours,
// specials, and one float32 in every 256 consecutive bit patterns.
std::vector<float> probes(const ElementFormat& f) {
  std::vector<float> xs{0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, 1e-45f, 3.4028235e38f, -3.4028235e38f};
  std::vector<float> finite;
  for (float v : decode_table(f)) {
    if (std::isfinite(v)) finite.push_back(v);
  }
  std::sort(finite.begin(), finite.end());
  for (size_t i = 0; i < finite.size(); ++i) {
    float lo = finite[i], hi = finite[i];
    xs.push_back(lo);
    for (int k = 0; k < 3; ++k) {
      xs.push_back(lo = std::nextafter(lo, -INFINITY));
      xs.push_back(hi = std::nextafter(hi, INFINITY));
    }
    if (i + 1 < finite.size()) {
      const auto mid = static_cast<float>((static_cast<double>(finite[i]) + finite[i + 1]) / 2);
      xs.insert(xs.end(), {mid, std::nextafter(mid, -INFINITY), std::nextafter(mid, INFINITY)});
    }
  }
  std::mt19937 rng(5);
  for (uint64_t base = 0; base < (uint64_t{1} << 32); base += 256) {
    xs.push_back(bits_to_float(static_cast<uint32_t>(base + (rng() & 255u))));
  }
  return xs;
}

TEST(ElementCuda, DecodeTablesMatchCudaHostConversions) {
  for (const CudaFormat& cf : kFormats) {
    SCOPED_TRACE(cf.name);
    const ElementFormat& f = testing::element(cf.name);
    for (uint32_t code = 0; code < num_codes(f); ++code) {
      EXPECT_TRUE(testing::same_value(f.codec->decode(code), cuda_decode(cf.kind, code)))
          << "code " << code << ": lowbit " << f.codec->decode(code) << ", CUDA " << cuda_decode(cf.kind, code);
    }
  }
  const ElementCodec& e8m0 = *testing::element("e8m0").codec;
  for (uint32_t code = 0; code < 256; ++code) {
    const float cuda = bf16_to_float(__nv_bfloat16_raw(__nv_cvt_e8m0_to_bf16raw(static_cast<__nv_fp8_storage_t>(code))).x);
    EXPECT_TRUE(testing::same_value(e8m0.decode(code), cuda)) << "e8m0 code " << code;
  }
}

TEST(ElementCuda, EncodeMatchesCudaHostConversions) {
  for (const CudaFormat& cf : kFormats) {
    SCOPED_TRACE(cf.name);
    const ElementFormat& f = testing::element(cf.name);
    int failures = 0;
    for (float x : probes(f)) {
      const uint32_t ours = f.codec->encode(x);
      const uint32_t cuda = cuda_encode(cf.kind, x);
      if (std::isnan(x)) {
        if (cf.kind == Kind::kE4M3) {
          EXPECT_EQ(ours, cuda);
        }
        if (cf.kind == Kind::kE5M2) {
          EXPECT_TRUE(f.codec->is_nan(ours) && f.codec->is_nan(cuda));
        }
        continue;  // FP6/FP4 have no NaN: CUDA +max, lowbit +0 (documented)
      }
      if (ours != cuda && failures++ < 10) {
        ADD_FAILURE() << "x = " << x << " (0x" << std::hex << float_to_bits(x) << "): lowbit 0x" << ours
                      << ", CUDA 0x" << cuda;
      }
    }
    EXPECT_EQ(failures, 0);
  }
}

TEST(ElementCuda, E8m0RoundsBetweenCudasDirectedRoundings) {
  const ElementCodec& e8m0 = *testing::element("e8m0").codec;
  std::mt19937 rng(11);
  for (int i = 0; i < 2000000; ++i) {
    const float x = bits_to_float(rng() & 0x7fffffffu);
    if (!(x > 0.0f) || std::isinf(x) || std::isnan(x)) continue;
    const uint32_t ours = e8m0.encode(x);
    const uint32_t down = __nv_cvt_float_to_e8m0(x, __NV_SATFINITE, cudaRoundZero);
    const uint32_t up = __nv_cvt_float_to_e8m0(x, __NV_SATFINITE, cudaRoundPosInf);
    ASSERT_TRUE(ours == down || ours == up) << "x = " << x << ": lowbit " << ours << ", CUDA rz " << down << " ru "
                                            << up;
    int exponent = 0;
    if (std::frexp(x, &exponent) == 0.5f && x >= 0x1p-127f) {
      ASSERT_EQ(down, up) << "power of two " << x;
    }
  }
  for (int e = -127; e <= 127; ++e) {
    const float x = std::ldexp(1.0f, e);
    EXPECT_EQ(e8m0.encode(x), __nv_cvt_float_to_e8m0(x, __NV_SATFINITE, cudaRoundZero)) << "2^" << e;
  }
}

#else

TEST(ElementCuda, SkippedWithoutCudaHeaders) {
  GTEST_SKIP() << "cuda_fp8.h / cuda_fp6.h / cuda_fp4.h (CUDA >= 12.8) not on the include path; "
                  "configure with the CUDA toolkit's include directory to run the CUDA oracle";
}

#endif

}  // namespace
}  // namespace lowbit
