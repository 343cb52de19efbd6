// GGUF reader: every metadata value type, alignment, tensor bounds, and a sweep
// over every truncation of a valid file (each must fail cleanly or, at full
// length, succeed).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "core/half.h"
#include "core/mapped_file.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "test_util.h"

namespace lowbit {
namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("lowbit_gguf_" + std::to_string(getpid()) + "_" + name)).string();
}

GgufValue int_value(GgufValueType t, int64_t x) {
  GgufValue v;
  v.type = t;
  if (t == GgufValueType::UINT8 || t == GgufValueType::UINT16 || t == GgufValueType::UINT32 ||
      t == GgufValueType::UINT64) {
    v.data = static_cast<uint64_t>(x);
  } else {
    v.data = x;
  }
  return v;
}

GgufWriter sample_writer(uint64_t alignment) {
  GgufWriter w(alignment);
  w.set("u8", int_value(GgufValueType::UINT8, 200));
  w.set("i8", int_value(GgufValueType::INT8, -100));
  w.set("u16", int_value(GgufValueType::UINT16, 60000));
  w.set("i16", int_value(GgufValueType::INT16, -30000));
  w.set_u32("u32", 4000000000u);
  w.set_i32("i32", -2000000000);
  w.set("u64", int_value(GgufValueType::UINT64, int64_t{1} << 40));
  w.set("i64", int_value(GgufValueType::INT64, -(int64_t{1} << 40)));
  w.set_f32("f32", 0.25f);
  GgufValue f64;
  f64.type = GgufValueType::FLOAT64;
  f64.data = 1.0 / 3.0;
  w.set("f64", f64);
  w.set_bool("flag", true);
  w.set_string("name", "lowbit ünïcode");
  w.set_string_array("strings", {"a", "", "ccc"});
  w.set_i32_array("ints", {1, -2, 3});
  // Nested array: an array of arrays of i32.
  GgufValue inner;
  inner.type = GgufValueType::ARRAY;
  inner.element_type = GgufValueType::INT32;
  inner.data = std::make_shared<GgufArray>(GgufArray{int_value(GgufValueType::INT32, 7)});
  GgufValue outer;
  outer.type = GgufValueType::ARRAY;
  outer.element_type = GgufValueType::ARRAY;
  outer.data = std::make_shared<GgufArray>(GgufArray{inner, inner});
  w.set("nested", outer);
  EXPECT_TRUE(w.add_f32_tensor("vector", {3}, {1.0f, -2.0f, 3.5f}).ok());
  std::vector<uint8_t> f16(2 * 4);
  const float f16_values[] = {0.5f, -1.0f, 65504.0f, 5.960464477539063e-08f};  // incl. smallest subnormal
  for (int i = 0; i < 4; ++i) {
    const uint16_t h = float_to_fp16(f16_values[i]);
    std::memcpy(&f16[2 * i], &h, 2);
  }
  EXPECT_TRUE(w.add_tensor("matrix", {2, 2}, static_cast<uint32_t>(GgmlType::F16), f16).ok());
  return w;
}

TEST(GgufReader, ReadsEveryValueTypeAndTensor) {
  for (uint64_t alignment : {32u, 64u}) {
    const std::string path = temp_path("all_types.gguf");
    ASSERT_TRUE(sample_writer(alignment).write(path).ok());
    auto file = GgufFile::open(path);
    ASSERT_TRUE(file.ok()) << file.status().message();
    const GgufFile& g = file.value();
    EXPECT_EQ(g.version(), 3u);
    EXPECT_EQ(g.alignment(), alignment);
    EXPECT_EQ(g.get_int("u8").value(), 200);
    EXPECT_EQ(g.get_int("i8").value(), -100);
    EXPECT_EQ(g.get_int("u16").value(), 60000);
    EXPECT_EQ(g.get_int("i16").value(), -30000);
    EXPECT_EQ(g.get_int("u32").value(), 4000000000ll);
    EXPECT_EQ(g.get_int("i32").value(), -2000000000);
    EXPECT_EQ(g.get_int("u64").value(), int64_t{1} << 40);
    EXPECT_EQ(g.get_int("i64").value(), -(int64_t{1} << 40));
    EXPECT_EQ(g.get_float("f32").value(), 0.25);
    EXPECT_EQ(g.get_float("f64").value(), 1.0 / 3.0);
    EXPECT_EQ(g.get_int("flag").value(), 1);
    EXPECT_EQ(g.get_string("name").value(), "lowbit ünïcode");
    EXPECT_EQ(g.get_string_array("strings").value(), (std::vector<std::string>{"a", "", "ccc"}));
    EXPECT_EQ(g.get_int_array("ints").value(), (std::vector<int64_t>{1, -2, 3}));
    ASSERT_EQ(g.find("nested")->as_array().size(), 2u);
    EXPECT_EQ(g.find("nested")->as_array()[1].as_array()[0].as_int(), 7);
    EXPECT_FALSE(g.get_string("u8").ok());
    EXPECT_FALSE(g.get_int("missing").ok());

    const GgufTensorInfo* v = g.find_tensor("vector");
    ASSERT_NE(v, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(v->data) % alignment, 0u);
    EXPECT_EQ(g.dequantize(*v).value(), (std::vector<float>{1.0f, -2.0f, 3.5f}));
    const GgufTensorInfo* m = g.find_tensor("matrix");
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->dims, (std::vector<int64_t>{2, 2}));
    EXPECT_EQ(g.dequantize(*m).value(), (std::vector<float>{0.5f, -1.0f, 65504.0f, 5.960464477539063e-08f}));
    std::filesystem::remove(path);
  }
}

TEST(GgufReader, EveryTruncationFailsCleanly) {
  const std::string image = sample_writer(32).serialize();
  const std::string path = temp_path("truncated.gguf");
  for (size_t length = 0; length < image.size(); ++length) {
    ASSERT_TRUE(write_file_atomic(path, image.substr(0, length)).ok());
    auto file = GgufFile::open(path);
    // The padding after the last tensor is not needed: only cuts into data must fail.
    if (file.ok()) {
      ASSERT_NE(file->find_tensor("matrix"), nullptr);
      EXPECT_GE(length, image.size() - 32 + 8) << "accepted a file cut at " << length;
    } else {
      EXPECT_NE(file.status().message().find(path), std::string::npos) << file.status().message();
    }
  }
  std::filesystem::remove(path);
}

TEST(GgufReader, RejectsCorruptCounts) {
  std::string image = sample_writer(32).serialize();
  // Tensor count field (offset 8) set absurdly high.
  const uint64_t huge = uint64_t{1} << 60;
  std::memcpy(&image[8], &huge, 8);
  const std::string path = temp_path("counts.gguf");
  ASSERT_TRUE(write_file_atomic(path, image).ok());
  auto file = GgufFile::open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find("more than the file holds"), std::string::npos) << file.status().message();
  std::filesystem::remove(path);
}

TEST(GgufReader, Stories260KMetadata) {
  LB_REQUIRE_SHARED(path, "models/stories260K/stories260K.gguf");
  auto file = GgufFile::open(path);
  ASSERT_TRUE(file.ok()) << file.status().message();
  EXPECT_EQ(file->get_string("general.architecture").value(), "llama");
  EXPECT_EQ(file->get_int("llama.embedding_length").value(), 64);
  EXPECT_EQ(file->get_int("llama.block_count").value(), 5);
  EXPECT_EQ(file->get_string_array("tokenizer.ggml.tokens").value().size(), 512u);
}

}  // namespace
}  // namespace lowbit
