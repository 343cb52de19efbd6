// The bulk element kernels, every ISA this CPU runs, against the reference
// codecs bit for bit: every code decodes identically; encode agrees on every
// representable value and its neighbours, every rounding boundary, specials, and a
// stratified sample of float32 bit patterns; awkward lengths and unaligned
// pointers leave the bytes around the output untouched.
#include <random>

#include "formats/element_kernel.h"
#include "test_element_util.h"

namespace lowbit {
namespace {

std::vector<Isa> isas() {
  // AVX2 runs the generic code (CreateChecks... below).
  std::vector<Isa> out{Isa::kGeneric};
  if (isa_supported(Isa::kAvx512, detect_cpu_features())) out.push_back(Isa::kAvx512);
  return out;
}

std::vector<const ElementFormat*> kernel_formats() { return testing::all_test_formats(); }

ElementKernel kernel(const ElementFormat& f, Isa isa) {
  auto k = ElementKernel::create(f, isa);
  EXPECT_TRUE(k.ok()) << k.status().message();
  return std::move(k).value();
}

// Encodes xs with every ISA's kernel, into uint16 codes and (<= 8 bits) bytes,
// and compares with the reference codec.
void expect_encodes_like_reference(const ElementFormat& f, const std::vector<float>& xs) {
  std::vector<uint16_t> ref(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) ref[i] = static_cast<uint16_t>(f.codec->encode(xs[i]));
  for (Isa isa : isas()) {
    SCOPED_TRACE(f.name + " " + isa_name(isa));
    const ElementKernel k = kernel(f, isa);
    std::vector<uint16_t> got(xs.size());
    k.encode(xs.data(), got.data(), xs.size());
    for (size_t i = 0; i < xs.size(); ++i) {
      ASSERT_EQ(got[i], ref[i]) << "x = " << xs[i] << " (0x" << std::hex << float_to_bits(xs[i]) << ") method "
                                << k.encode_method();
    }
    if (f.bits <= 8) {
      std::vector<uint8_t> got8(xs.size());
      k.encode(xs.data(), got8.data(), xs.size());
      for (size_t i = 0; i < xs.size(); ++i) ASSERT_EQ(got8[i], ref[i]) << "x = " << xs[i];
    }
  }
}

// Inputs that exercise every rounding decision of a format.
std::vector<float> probe_inputs(const ElementFormat& f) {
  std::vector<float> xs{0.0f, -0.0f, NAN, -NAN, INFINITY, -INFINITY, 1e-45f, -1e-45f, 3.4028235e38f,
                        -3.4028235e38f, 1.17549435e-38f, bits_to_float(0x7f800001u), bits_to_float(0xffc00001u)};
  const std::vector<float> table = decode_table(f);
  std::vector<float> finite;
  for (float v : table) {
    if (std::isfinite(v)) finite.push_back(v);
  }
  std::sort(finite.begin(), finite.end());
  for (size_t i = 0; i < finite.size(); ++i) {
    float lo = finite[i], hi = finite[i];
    xs.push_back(finite[i]);
    for (int k = 0; k < 3; ++k) {
      lo = std::nextafter(lo, -INFINITY);
      hi = std::nextafter(hi, INFINITY);
      xs.push_back(lo);
      xs.push_back(hi);
    }
    if (i + 1 < finite.size()) {
      const auto mid = static_cast<float>((static_cast<double>(finite[i]) + finite[i + 1]) / 2);
      xs.insert(xs.end(), {mid, std::nextafter(mid, -INFINITY), std::nextafter(mid, INFINITY)});
    }
  }
  std::mt19937 rng(1234);
  for (int i = 0; i < 200000; ++i) xs.push_back(bits_to_float(rng()));
  std::uniform_real_distribution<float> near(-1.5f, 1.5f);
  for (int i = 0; i < 50000; ++i) xs.push_back(near(rng) * f.max_finite);
  return xs;
}

TEST(ElementKernel, DecodeEqualsReferenceForEveryCode) {
  for (const ElementFormat* format : kernel_formats()) {
    const ElementFormat& f = *format;
    const std::vector<float> ref = decode_table(f);
    std::vector<uint16_t> codes16(ref.size());
    for (uint32_t c = 0; c < ref.size(); ++c) codes16[c] = static_cast<uint16_t>(c);
    for (Isa isa : isas()) {
      SCOPED_TRACE(f.name + " " + isa_name(isa));
      const ElementKernel k = kernel(f, isa);
      std::vector<float> got(ref.size());
      k.decode(codes16.data(), got.data(), codes16.size());
      for (uint32_t c = 0; c < ref.size(); ++c) ASSERT_EQ(float_to_bits(got[c]), float_to_bits(ref[c])) << c;
      if (f.bits <= 8) {
        std::vector<uint8_t> codes8(codes16.begin(), codes16.end());
        std::fill(got.begin(), got.end(), 0.0f);
        k.decode(codes8.data(), got.data(), codes8.size());
        for (uint32_t c = 0; c < ref.size(); ++c) ASSERT_EQ(float_to_bits(got[c]), float_to_bits(ref[c])) << c;
      }
    }
  }
}

TEST(ElementKernel, EncodeEqualsReferenceOnProbes) {
  for (const ElementFormat* f : kernel_formats()) expect_encodes_like_reference(*f, probe_inputs(*f));
}

// One float32 in every 8192 consecutive bit patterns, at a random place.
TEST(ElementKernel, EncodeEqualsReferenceOnAStratifiedSweep) {
  std::vector<float> xs;
  std::mt19937 rng(42);
  for (uint64_t base = 0; base < (uint64_t{1} << 32); base += 8192) {
    xs.push_back(bits_to_float(static_cast<uint32_t>(base + (rng() & 8191u))));
  }
  for (const ElementFormat* f : kernel_formats()) {
    if (f->bits <= 8) expect_encodes_like_reference(*f, xs);  // 16-bit formats: probes above
  }
}

// Lengths around the vector width, unaligned pointers, canaries either side.
TEST(ElementKernel, AwkwardLengthsAndAlignmentsTouchOnlyTheirOutput) {
  const size_t lengths[] = {0, 1, 3, 7, 15, 16, 17, 31, 32, 33, 255, 4097};
  constexpr uint8_t kCanary = 0xA5;
  for (const char* name : {"fp8_e4m3", "fp4_e2m1", "int4", "int8", "nf4", "posit8_2", "e8m0", "bf16", "posit16_1"}) {
    const ElementFormat& f = testing::element(name);
    for (Isa isa : isas()) {
      const ElementKernel k = kernel(f, isa);
      for (size_t n : lengths) {
        for (size_t offset : {0, 1, 3}) {
          SCOPED_TRACE(::testing::Message() << name << " " << isa_name(isa) << " n=" << n << " offset=" << offset);
          std::vector<float> x(n + offset + 1);
          std::mt19937 rng(static_cast<unsigned>(n));
          std::normal_distribution<float> gauss(0.0f, f.max_finite / 3);
          for (float& v : x) v = gauss(rng);
          const float* in = x.data() + offset;  // unaligned for offset > 0
          // uint16 codes with a canary code unit either side.
          std::vector<uint16_t> c16(n + offset + 2, 0xA5A5);
          k.encode(in, c16.data() + offset + 1, n);
          EXPECT_EQ(c16[offset], 0xA5A5);
          EXPECT_EQ(c16[offset + n + 1], 0xA5A5);
          for (size_t i = 0; i < n; ++i) ASSERT_EQ(c16[offset + 1 + i], f.codec->encode(in[i])) << i;
          // Decode back into a buffer with canaries; dequantize -> requantize is the identity.
          std::vector<float> y(n + offset + 2, 12345.0f);
          k.decode(c16.data() + offset + 1, y.data() + offset + 1, n);
          EXPECT_EQ(y[offset], 12345.0f);
          EXPECT_EQ(y[offset + n + 1], 12345.0f);
          std::vector<uint16_t> again(n);
          k.encode(y.data() + offset + 1, again.data(), n);
          for (size_t i = 0; i < n; ++i) ASSERT_EQ(again[i], c16[offset + 1 + i]) << i;
          if (f.bits <= 8) {
            std::vector<uint8_t> c8(n + offset + 2, kCanary);
            k.encode(in, c8.data() + offset + 1, n);
            EXPECT_EQ(c8[offset], kCanary);
            EXPECT_EQ(c8[offset + n + 1], kCanary);
            for (size_t i = 0; i < n; ++i) ASSERT_EQ(c8[offset + 1 + i], c16[offset + 1 + i]) << i;
            std::fill(y.begin(), y.end(), 12345.0f);
            k.decode(c8.data() + offset + 1, y.data() + offset + 1, n);
            EXPECT_EQ(y[offset], 12345.0f);
            EXPECT_EQ(y[offset + n + 1], 12345.0f);
          }
        }
      }
    }
  }
}

TEST(ElementKernel, CreateChecksTheFormatAndReportsItsMethod) {
  const ElementKernel k = kernel(testing::element("fp8_e4m3"), Isa::kGeneric);
  EXPECT_EQ(k.isa(), Isa::kGeneric);
  EXPECT_STREQ(k.encode_method(), "minifloat");
  EXPECT_STREQ(ElementKernel::create(testing::element("nf4"), Isa::kGeneric)->encode_method(), "thresholds");
  EXPECT_STREQ(ElementKernel::create(testing::element("posit16_1"), Isa::kGeneric)->encode_method(), "reference");
  EXPECT_TRUE(ElementKernel::create(testing::element("int8")).ok());
  if (isa_supported(Isa::kAvx2, detect_cpu_features())) {
    EXPECT_EQ(kernel(testing::element("int8"), Isa::kAvx2).isa(), Isa::kGeneric) << "no AVX2-specific code";
  }
  if (!isa_supported(Isa::kAvx512, detect_cpu_features())) {
    EXPECT_FALSE(ElementKernel::create(testing::element("int8"), Isa::kAvx512).ok());
  }
}

}  // namespace
}  // namespace lowbit
