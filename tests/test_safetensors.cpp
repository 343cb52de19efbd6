// Safetensors writer -> reader round trips and a set of malformed files that must
// fail with an error naming the file and tensor.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/half.h"
#include "core/mapped_file.h"
#include "io/safetensors.h"
#include "model_writers.h"

namespace lowbit {
namespace {

using testing::ScopedTempDir;
using Dt = SafetensorsDtype;

std::vector<float> ramp(size_t n, float scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * (static_cast<float>(i) - static_cast<float>(n) / 3.0f);
  return v;
}

// A file with the given header text (length prefix added) and `data_bytes` zero bytes.
std::string raw_file(const std::string& header, size_t data_bytes) {
  std::string out(8, '\0');
  const uint64_t len = header.size();
  std::memcpy(out.data(), &len, 8);
  out += header;
  out.append(data_bytes, '\0');
  return out;
}

// Opens a file made from `contents` and returns the error message ("" if it opened).
std::string open_error(const ScopedTempDir& dir, const std::string& contents) {
  const std::string path = dir.file("bad.safetensors");
  EXPECT_TRUE(write_file_atomic(path, contents).ok());
  Expected<SafetensorsFile> f = SafetensorsFile::open(path);
  return f.ok() ? std::string() : f.status().message();
}

TEST(Safetensors, RoundTripF32ExactAwkwardShapes) {
  ScopedTempDir dir("st_f32");
  // Sizes 1, 3*7, 33, 0 and a scalar: the reader must agree on every offset.
  const std::vector<std::vector<int64_t>> shapes = {{1}, {3, 7}, {33}, {0, 5}, {}};
  std::vector<std::vector<float>> values;
  std::vector<SafetensorsWriteTensor> tensors;
  for (size_t i = 0; i < shapes.size(); ++i) {
    size_t n = 1;
    for (int64_t d : shapes[i]) n *= static_cast<size_t>(d);
    values.push_back(ramp(n, 0.37f + static_cast<float>(i)));
  }
  for (size_t i = 0; i < shapes.size(); ++i) {
    tensors.push_back({"t" + std::to_string(i), Dt::kF32, shapes[i], values[i].data()});
  }
  const std::string path = dir.file("a.safetensors");
  ASSERT_TRUE(write_safetensors(path, tensors, {{"format", "pt"}, {"note", "x"}}).ok());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

  Expected<SafetensorsFile> f = SafetensorsFile::open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(f->metadata().at("note"), "x");
  ASSERT_EQ(f->tensors().size(), shapes.size());
  for (size_t i = 0; i < shapes.size(); ++i) {
    const SafetensorsTensor* t = f->find("t" + std::to_string(i));
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->shape, shapes[i]);
    EXPECT_EQ(t->dtype, Dt::kF32);
    Expected<std::vector<float>> back = f->to_f32(*t);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, values[i]) << t->name;
  }
  // The data buffer starts 8-byte aligned.
  uint64_t header_len = 0;
  MappedFile raw = std::move(MappedFile::open(path)).value();
  std::memcpy(&header_len, raw.data(), 8);
  EXPECT_EQ((8 + header_len) % 8, 0u);
  EXPECT_EQ(f->find("missing"), nullptr);
}

TEST(Safetensors, RoundTripHalfTypesRoundLikeReferenceCodec) {
  ScopedTempDir dir("st_half");
  // Exact in both formats, then values that need rounding (ties, subnormal, overflow).
  const std::vector<float> v = {0.0f, -0.0f, 1.0f, -2.5f, 0.15625f, 1.0f + 1.0f / 256, 3.14159265f,
                                1e-6f, 70000.0f, -1e-30f, 65504.0f};
  const std::vector<SafetensorsWriteTensor> tensors = {
      {"bf16", Dt::kBF16, {static_cast<int64_t>(v.size())}, v.data()},
      {"f16", Dt::kF16, {static_cast<int64_t>(v.size())}, v.data()},
  };
  const std::string path = dir.file("h.safetensors");
  ASSERT_TRUE(write_safetensors(path, tensors).ok());
  Expected<SafetensorsFile> f = SafetensorsFile::open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_TRUE(f->metadata().empty());
  std::vector<float> bf = std::move(f->to_f32(*f->find("bf16"))).value();
  std::vector<float> hf = std::move(f->to_f32(*f->find("f16"))).value();
  ASSERT_EQ(bf.size(), v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    EXPECT_EQ(float_to_bits(bf[i]), float_to_bits(bf16_to_float(float_to_bf16(v[i])))) << i;
    EXPECT_EQ(float_to_bits(hf[i]), float_to_bits(fp16_to_float(float_to_fp16(v[i])))) << i;
  }
  EXPECT_EQ(bf[2], 1.0f);
  EXPECT_EQ(hf[3], -2.5f);
  EXPECT_EQ(hf[5], 1.0f + 1.0f / 256);   // exact in f16 (10 mantissa bits)
  EXPECT_EQ(bf[5], 1.0f);                // tie in bf16 (7 bits) rounds to even
  EXPECT_TRUE(std::isinf(hf[8]));        // 70000 overflows f16
  EXPECT_EQ(hf[10], 65504.0f);
  EXPECT_EQ(f->find("bf16")->n_bytes, 2 * v.size());
}

TEST(Safetensors, WriterRejectsBadInput) {
  ScopedTempDir dir("st_wbad");
  const float x[2] = {1, 2};
  const std::string path = dir.file("w.safetensors");
  Status dup = write_safetensors(path, {{"a", Dt::kF32, {1}, x}, {"a", Dt::kF32, {1}, x + 1}});
  EXPECT_FALSE(dup.ok());
  EXPECT_NE(dup.message().find("'a'"), std::string::npos) << dup.message();
  Status i32 = write_safetensors(path, {{"ints", Dt::kI32, {2}, x}});
  EXPECT_FALSE(i32.ok());
  EXPECT_NE(i32.message().find("I32"), std::string::npos) << i32.message();
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(Safetensors, RejectsFileShorterThanLengthPrefix) {
  ScopedTempDir dir("st_short");
  const std::string msg = open_error(dir, "abc");
  EXPECT_NE(msg.find("bad.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
}

TEST(Safetensors, RejectsHeaderLengthPastEnd) {
  ScopedTempDir dir("st_hlen");
  std::string contents = raw_file("{}", 0);
  const uint64_t huge = 1000;
  std::memcpy(contents.data(), &huge, 8);
  const std::string msg = open_error(dir, contents);
  EXPECT_NE(msg.find("header length 1000"), std::string::npos) << msg;
}

TEST(Safetensors, RejectsHeaderThatIsNotJsonObject) {
  ScopedTempDir dir("st_json");
  EXPECT_NE(open_error(dir, raw_file("{\"a\": ", 0)).find("invalid JSON"), std::string::npos);
  EXPECT_NE(open_error(dir, raw_file("[1, 2]", 0)).find("does not start with"), std::string::npos);
  EXPECT_NE(open_error(dir, raw_file("", 0)).find("does not start with"), std::string::npos);
  EXPECT_NE(open_error(dir, raw_file("{\"__metadata__\": {\"k\": 1}}", 0)).find("'k'"), std::string::npos);
}

TEST(Safetensors, RejectsOffsetsPastEndOfFile) {
  ScopedTempDir dir("st_trunc");
  // 2x3 F32 = 24 bytes declared, 20 present: a truncated download.
  const std::string msg =
      open_error(dir, raw_file(R"({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}})", 20));
  EXPECT_NE(msg.find("'w'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("past the end"), std::string::npos) << msg;
}

TEST(Safetensors, RejectsOffsetsThatDisagreeWithDtypeAndShape) {
  ScopedTempDir dir("st_size");
  // BF16 [2, 3] needs 12 bytes, the offsets give 24.
  std::string msg =
      open_error(dir, raw_file(R"({"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 24]}})", 24));
  EXPECT_NE(msg.find("'w'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("needs 12"), std::string::npos) << msg;
  msg = open_error(dir, raw_file(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})", 8));
  EXPECT_NE(msg.find("end before begin"), std::string::npos) << msg;
  msg = open_error(dir, raw_file(R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 8));
  EXPECT_NE(msg.find("non-negative"), std::string::npos) << msg;
  msg = open_error(dir, raw_file(R"({"w": {"dtype": "F32", "shape": [1]}})", 8));
  EXPECT_NE(msg.find("data_offsets"), std::string::npos) << msg;
}

TEST(Safetensors, RejectsShapeWhosePartialProductOverflows) {
  ScopedTempDir dir("st_overflow");
  // 2^62 x 3 overflows int64 before the 0 makes the product 0 (fuzzer find, issue 18).
  std::string msg = open_error(
      dir, raw_file(R"({"w": {"dtype": "U8", "shape": [4611686018427387904, 3, 0], "data_offsets": [0, 0]}})", 0));
  EXPECT_NE(msg.find("bad.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("tensor 'w': shape [4611686018427387904,3,0] overflows"), std::string::npos) << msg;
  // 2^62 F32 elements fit in int64 but their byte size does not.
  msg = open_error(dir, raw_file(R"({"w": {"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 0]}})", 0));
  EXPECT_NE(msg.find("overflows"), std::string::npos) << msg;
}

TEST(Safetensors, UnknownDtypeAndUnconvertibleDtypeNameTensorAndDtype) {
  ScopedTempDir dir("st_dtype");
  std::string msg = open_error(dir, raw_file(R"({"w": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 1]}})", 1));
  EXPECT_NE(msg.find("'w'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'Q4'"), std::string::npos) << msg;

  const std::string path = dir.file("i32.safetensors");
  ASSERT_TRUE(write_file_atomic(path, raw_file(R"({"ids": {"dtype": "I32", "shape": [2], "data_offsets": [0, 8]}})",
                                               8)).ok());
  Expected<SafetensorsFile> f = SafetensorsFile::open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  Expected<std::vector<float>> v = f->to_f32(*f->find("ids"));
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find("'ids'"), std::string::npos) << v.status().message();
  EXPECT_NE(v.status().message().find("I32"), std::string::npos) << v.status().message();
}

// A tensor with a zero dimension converts to an empty vector (fuzz_safetensors
// found memcpy called with a null destination for it; UBSan reports that in the
// sanitizer run, scripts/sanitize_tests.sh).
TEST(Safetensors, ZeroElementTensorsConvertToEmpty) {
  ScopedTempDir dir("st_empty");
  const std::string path = dir.file("empty.safetensors");
  ASSERT_TRUE(write_file_atomic(path, raw_file(R"({"z": {"dtype": "F32", "shape": [0, 5], "data_offsets": [0, 0]},)"
                                               R"( "h": {"dtype": "BF16", "shape": [3, 0], "data_offsets": [0, 0]}})",
                                               0)).ok());
  Expected<SafetensorsFile> f = SafetensorsFile::open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  for (const char* name : {"z", "h"}) {
    Expected<std::vector<float>> v = f->to_f32(*f->find(name));
    ASSERT_TRUE(v.ok()) << v.status().message();
    EXPECT_TRUE(v->empty()) << name;
  }
}

}  // namespace
}  // namespace lowbit
