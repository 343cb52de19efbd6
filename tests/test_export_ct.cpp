// Hugging Face exports (pipeline/hf_export.h): the streamed safetensors writer,
// compressed-tensors packing and format mapping (pipeline/ct_linear.h), and whole
// models: stories260K quantized with small recipes and a SmolLM2-shaped random
// model, exported, read back by lowbit's HF loader and by an independent Python
// reader (tests/python/ct_reader.py), bit for bit.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/half.h"
#include "formats/element_format.h"
#include "io/compressed_tensors.h"
#include "io/safetensors_writer.h"
#include "model/loader.h"
#include "model_writers.h"
#include "pipeline/ct_linear.h"
#include "pipeline/hf_export.h"
#include "pipeline/quantize_pipeline.h"
#include "pipeline/recipe.h"
#include "test_model_shapes.h"
#include "test_quantize_util.h"
#include "test_util.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using Dt = SafetensorsDtype;
using testing::get;
using testing::ScopedTempDir;

std::vector<float> gaussian(int64_t n, uint32_t seed, float sigma = 0.05f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b, std::string* where) {
  if (a.size() != b.size()) {
    *where = fmt::format("sizes {} and {}", a.size(), b.size());
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (float_to_bits(a[i]) != float_to_bits(b[i])) {
      *where = fmt::format("element {}: {} vs {}", i, a[i], b[i]);
      return false;
    }
  }
  return true;
}

// ---------------------------------------------------------------- writer

TEST(SafetensorsStreamWriter, WritesEveryDtypeInOrderAndReadsBack) {
  ScopedTempDir dir("st_stream");
  const std::string path = dir.file("x.safetensors");
  const std::vector<SafetensorsEntry> entries = {{"packed", Dt::kI32, {2, 3}},
                                                 {"fp8", Dt::kF8_E4M3, {5}},
                                                 {"shape", Dt::kI64, {2}},
                                                 {"bytes", Dt::kU8, {3, 1}},
                                                 {"scalar", Dt::kF32, {}}};
  auto w = SafetensorsStreamWriter::create(path, entries, {{"format", "pt"}});
  ASSERT_TRUE(w.ok()) << w.status().message();
  std::vector<std::vector<uint8_t>> data;
  for (const auto& e : entries) {
    std::vector<uint8_t> b(static_cast<size_t>(e.byte_size().value()));
    for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(i * 37 + b.size());
    data.push_back(b);
  }
  EXPECT_EQ(w->next_name(), "packed");
  // Out of order or of the wrong size: refused, naming the tensor.
  Status wrong = w->append("fp8", data[1]);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.message().find("'packed'"), std::string::npos) << wrong.message();
  Status short_data = w->append("packed", std::span<const uint8_t>(data[0]).first(4));
  ASSERT_FALSE(short_data.ok());
  EXPECT_NE(short_data.message().find("24"), std::string::npos) << short_data.message();
  for (size_t i = 0; i < entries.size(); ++i) ASSERT_TRUE(w->append(entries[i].name, data[i]).ok());
  EXPECT_FALSE(fs::exists(path));  // only the temporary name until finish()
  ASSERT_TRUE(w->finish().ok());
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  auto f = SafetensorsFile::open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->metadata().at("format"), "pt");
  for (size_t i = 0; i < entries.size(); ++i) {
    const SafetensorsTensor* t = f->find(entries[i].name);
    ASSERT_NE(t, nullptr) << entries[i].name;
    EXPECT_EQ(t->dtype, entries[i].dtype);
    EXPECT_EQ(t->shape, entries[i].shape);
    ASSERT_EQ(t->n_bytes, data[i].size());
    EXPECT_EQ(std::memcmp(t->data, data[i].data(), data[i].size()), 0) << entries[i].name;
  }
}

TEST(SafetensorsStreamWriter, UnfinishedWriterLeavesNoFile) {
  ScopedTempDir dir("st_abandon");
  const std::string path = dir.file("x.safetensors");
  {
    auto w = SafetensorsStreamWriter::create(path, {{"a", Dt::kF32, {2}}, {"b", Dt::kF32, {1}}});
    ASSERT_TRUE(w.ok());
    const float a[2] = {1, 2};
    ASSERT_TRUE(w->append("a", std::span(reinterpret_cast<const uint8_t*>(a), 8)).ok());
    Status early = w->finish();
    ASSERT_FALSE(early.ok());
    EXPECT_NE(early.message().find("'b'"), std::string::npos) << early.message();
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  auto dup = SafetensorsStreamWriter::create(path, {{"a", Dt::kF32, {1}}, {"a", Dt::kI32, {1}}});
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.status().message().find("'a'"), std::string::npos);
}

TEST(SafetensorsShards, SplitAtTheLimitWithHuggingFaceNames) {
  const std::vector<SafetensorsEntry> e = {
      {"a", Dt::kF32, {10}}, {"b", Dt::kF32, {10}}, {"c", Dt::kF32, {30}}, {"d", Dt::kU8, {1}}};
  auto shards = plan_safetensors_shards(e, 80);  // 40, 40, 120, 1 bytes
  ASSERT_TRUE(shards.ok());
  ASSERT_EQ(shards->size(), 3u);
  EXPECT_EQ((*shards)[0], (std::vector<size_t>{0, 1}));
  EXPECT_EQ((*shards)[1], (std::vector<size_t>{2}));  // larger than the limit: alone
  EXPECT_EQ((*shards)[2], (std::vector<size_t>{3}));
  EXPECT_EQ(safetensors_shard_name(0, 1), "model.safetensors");
  EXPECT_EQ(safetensors_shard_name(1, 3), "model-00002-of-00003.safetensors");
}

// ---------------------------------------------------------------- packing

uint32_t word(const std::vector<uint8_t>& b, size_t i) {
  uint32_t w;
  std::memcpy(&w, b.data() + 4 * i, 4);
  return w;
}

TEST(CtPacking, GoldenWordLayouts) {
  // 4 bits: 8 codes a word, the first in the low nibble.
  std::vector<uint8_t> c4(16);
  for (int i = 0; i < 16; ++i) c4[i] = static_cast<uint8_t>(i);
  const auto p4 = ct_pack_rows(c4.data(), 1, 16, 4);
  ASSERT_EQ(p4.size(), 8u);
  EXPECT_EQ(word(p4, 0), 0x76543210u);
  EXPECT_EQ(word(p4, 1), 0xFEDCBA98u);
  // 9 codes: a second word holding one code, the rest zero.
  const auto p4b = ct_pack_rows(c4.data(), 1, 9, 4);
  ASSERT_EQ(p4b.size(), 8u);
  EXPECT_EQ(word(p4b, 1), 0x8u);
  // 8 bits: 4 codes a word; 2 bits: 16 codes a word; rows start on words.
  const uint8_t c8[6] = {0x01, 0x80, 0xff, 0x7f, 0x10, 0x20};
  const auto p8 = ct_pack_rows(c8, 2, 3, 8);
  ASSERT_EQ(p8.size(), 8u);
  EXPECT_EQ(word(p8, 0), 0x00ff8001u);
  EXPECT_EQ(word(p8, 1), 0x0020107fu);
  std::vector<uint8_t> c2(16, 0);
  c2[0] = 3;
  c2[15] = 1;
  EXPECT_EQ(word(ct_pack_rows(c2.data(), 1, 16, 2), 0), 0x40000003u);
  // Along the rows (zero points): column j's 8 rows of 4 bits make word (0, j).
  std::vector<uint8_t> zp(16);  // [8 rows, 2 cols]
  for (int r = 0; r < 8; ++r) {
    zp[r * 2] = static_cast<uint8_t>(r);
    zp[r * 2 + 1] = static_cast<uint8_t>(15 - r);
  }
  const auto pz = ct_pack_columns(zp.data(), 8, 2, 4);
  ASSERT_EQ(pz.size(), 8u);
  EXPECT_EQ(word(pz, 0), 0x76543210u);
  EXPECT_EQ(word(pz, 1), 0x89ABCDEFu);
}

TEST(CtPacking, Fp8AndFp4DecodeAsLowbitsElementFormatsForEveryCode) {
  const ElementFormat* e4m3 = get(find_element_format("fp8_e4m3"));
  for (int c = 0; c < 256; ++c) {
    const float a = ct_fp8_e4m3_to_float(static_cast<uint8_t>(c));
    const float b = e4m3->codec->decode(static_cast<uint32_t>(c));
    if (std::isnan(a) || std::isnan(b)) {
      EXPECT_TRUE(std::isnan(a) && std::isnan(b)) << "code " << c;
    } else {
      EXPECT_EQ(float_to_bits(a), float_to_bits(b)) << "code " << c;
    }
  }
  EXPECT_EQ(ct_fp8_e4m3_to_float(0x7e), 448.0f);
  EXPECT_EQ(ct_fp8_e4m3_to_float(0x01), std::ldexp(1.0f, -9));
  const ElementFormat* e2m1 = get(find_element_format("fp4_e2m1"));
  for (int c = 0; c < 16; ++c) {
    EXPECT_EQ(float_to_bits(ct_fp4_e2m1_to_float(static_cast<uint8_t>(c))),
              float_to_bits(e2m1->codec->decode(static_cast<uint32_t>(c))))
        << "code " << c;
  }
}

// ---------------------------------------------------------------- formats

struct Converted {
  CtScheme scheme;
  CtConvertedLinear linear;
};

Expected<Converted> convert(const QuantizedWeight& q, bool exact) {
  LB_ASSIGN_OR_RETURN(const BlockFormat* f, find_block_format(q.format));
  Converted c;
  LB_ASSIGN_OR_RETURN(c.scheme, ct_scheme_for_format(*f, q.rows(), q.cols(), "w"));
  CtConvertOptions o;
  o.exact = exact;
  LB_ASSIGN_OR_RETURN(c.linear, ct_convert_linear(q, c.scheme, "m", "w", o));
  return c;
}

QuantizedWeight quantized(const std::string& format, const std::vector<float>& x, int64_t rows, int64_t cols) {
  QuantizedWeight q;
  q.format = format;
  q.tensor = get(quantize_matrix(format, x.data(), rows, cols));
  return q;
}

// Decodes converted tensors with the reader of io/compressed_tensors.h.
std::vector<float> decode(const Converted& c, int64_t rows, int64_t cols) {
  std::vector<SafetensorsTensor> v(c.linear.entries.size());
  CtModuleTensors m;
  for (size_t i = 0; i < v.size(); ++i) {
    v[i] = {c.linear.entries[i].name, c.linear.entries[i].dtype, c.linear.entries[i].shape,
            c.linear.bytes[i].data(), c.linear.bytes[i].size()};
    const std::string& n = v[i].name;
    if (n == "m.weight") m.weight = &v[i];
    if (n == "m.weight_packed") m.weight_packed = &v[i];
    if (n == "m.weight_scale") m.weight_scale = &v[i];
    if (n == "m.weight_zero_point") m.weight_zero_point = &v[i];
    if (n == "m.weight_shape") m.weight_shape = &v[i];
    if (n == "m.weight_global_scale") m.weight_global_scale = &v[i];
  }
  return get(ct_dequantize(c.scheme, m, rows, cols, "m"));
}

TEST(CtFormats, SymmetricAndFp8FormatsAreBitExactAtAwkwardShapes) {
  // 576 columns: int4_g128 has a partial last group, written as groups of 64.
  const struct {
    const char* format;
    int64_t rows, cols;
    const char* ct_format;
    CtStrategy strategy;
    int64_t group;
  } cases[] = {
      {"int4_g128", 24, 576, kCtFormatPacked, CtStrategy::kGroup, 64},
      {"int4_g128", 3, 1536, kCtFormatPacked, CtStrategy::kGroup, 128},
      {"int8_pc", 7, 33, kCtFormatPacked, CtStrategy::kChannel, 0},
      {"mxint8", 5, 96, kCtFormatPacked, CtStrategy::kGroup, 32},
      {"fp8_e4m3", 9, 31, kCtFormatFloat, CtStrategy::kChannel, 0},
      {"fp8_e4m3_b128", 130, 257, kCtFormatFloat, CtStrategy::kBlock, 0},
  };
  for (const auto& k : cases) {
    SCOPED_TRACE(k.format);
    const std::vector<float> x = gaussian(k.rows * k.cols, 7);
    const QuantizedWeight q = quantized(k.format, x, k.rows, k.cols);
    auto c = convert(q, true);
    ASSERT_TRUE(c.ok()) << c.status().message();
    EXPECT_EQ(c->scheme.format, k.ct_format);
    EXPECT_EQ(c->scheme.weights.strategy, k.strategy);
    EXPECT_EQ(c->scheme.weights.group_size, k.group);
    EXPECT_TRUE(c->linear.exact);
    std::vector<float> want(x.size());
    ASSERT_TRUE(dequantize_weight(q, want.data()).ok());
    std::string where;
    EXPECT_TRUE(same_bits(decode(*c, k.rows, k.cols), want, &where)) << where;
  }
}

TEST(CtFormats, Nvfp4IsExactOrWithinAnUlpOfTheBlockScale) {
  for (uint32_t seed = 1; seed <= 6; ++seed) {
    std::vector<float> x = gaussian(8 * 64, seed, 0.02f * static_cast<float>(seed));
    const bool pow2 = seed % 2 == 0;
    if (pow2) {  // amax = 6 * 448 * 2^-12: the tensor scale amax / (6 * 448) is a power of two
      float amax = 0;
      for (float v : x) amax = std::max(amax, std::abs(v));
      for (float& v : x) v *= 2688.0f * 0x1p-12f / amax;
      x[0] = 2688.0f * 0x1p-12f;
    }
    const QuantizedWeight q = quantized("nvfp4", x, 8, 64);
    auto c = convert(q, false);
    ASSERT_TRUE(c.ok()) << c.status().message();
    EXPECT_EQ(c->scheme.format, kCtFormatNvfp4);
    std::vector<float> want(x.size());
    ASSERT_TRUE(dequantize_weight(q, want.data()).ok());
    const std::vector<float> got = decode(*c, 8, 64);
    std::string where;
    if (pow2) {
      EXPECT_TRUE(c->linear.exact) << "tensor scale " << q.tensor.tensor_scale;
    }
    if (c->linear.exact) {
      EXPECT_TRUE(same_bits(got, want, &where)) << where;
      continue;
    }
    // fl(d / g) and fl(d * t) differ by at most an ulp (2^-23 relative), and each
    // product with the element rounds once more: |got - want| <= |want| * 2^-22.
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_LE(std::abs(got[i] - want[i]), std::abs(want[i]) * 0x1p-22f) << i;
    }
    EXPECT_GT(c->linear.rms_error, 0.0);
    EXPECT_NE(c->linear.note.find("global scale"), std::string::npos) << c->linear.note;
    auto strict = convert(q, true);
    ASSERT_FALSE(strict.ok());
    EXPECT_NE(strict.status().message().find("'w'"), std::string::npos) << strict.status().message();
  }
}

TEST(CtFormats, AsymmetricMinimumIsAZeroPointOnlyWhenAnIntegerMultiple) {
  // Groups spanning [-5 s, 10 s] with s = 2^-6: m = -5 s exactly, z = 5.
  const int64_t rows = 4, cols = 256;
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::ldexp(static_cast<float>(static_cast<int>(i % 16) - 5), -6);
  auto exact = convert(quantized("int4_g128_asym", x, rows, cols), true);
  ASSERT_TRUE(exact.ok()) << exact.status().message();
  EXPECT_TRUE(exact->linear.exact);
  EXPECT_FALSE(exact->scheme.weights.symmetric);
  EXPECT_EQ(exact->linear.entries[2].name, "m.weight_zero_point");
  EXPECT_EQ(exact->linear.entries[2].shape, (std::vector<int64_t>{1, 2}));  // 4 rows of 4 bits in one word
  std::string where;
  EXPECT_TRUE(same_bits(decode(*exact, rows, cols), x, &where)) << where;

  // Gaussian groups: minima are not multiples of the scale.
  const std::vector<float> g = gaussian(rows * cols, 11);
  const QuantizedWeight q = quantized("int4_g128_asym", g, rows, cols);
  auto strict = convert(q, true);
  ASSERT_FALSE(strict.ok());
  EXPECT_NE(strict.status().message().find("'w'"), std::string::npos) << strict.status().message();
  EXPECT_NE(strict.status().message().find("int4_g128_asym"), std::string::npos);
  auto loose = convert(q, false);
  ASSERT_TRUE(loose.ok()) << loose.status().message();
  EXPECT_FALSE(loose->linear.exact);
  EXPECT_NE(loose->linear.note.find("integer zero points"), std::string::npos) << loose->linear.note;
  // Round to nearest on a grid of the block range / 15 adds at most half a step:
  // the step is (max - min) / 15 <= 2 amax / 15 per group.
  std::vector<float> lowbit(g.size());
  ASSERT_TRUE(dequantize_weight(q, lowbit.data()).ok());
  float amax = 0;
  for (float v : lowbit) amax = std::max(amax, std::abs(v));
  EXPECT_GT(loose->linear.max_error, 0.0);
  EXPECT_LE(loose->linear.max_error, amax / 15.0 * 1.01);
  const std::vector<float> got = decode(*loose, rows, cols);
  double sum = 0;
  for (size_t i = 0; i < got.size(); ++i) sum += (got[i] - lowbit[i]) * static_cast<double>(got[i] - lowbit[i]);
  EXPECT_NEAR(std::sqrt(sum / got.size()), loose->linear.rms_error, 1e-9);
}

TEST(CtFormats, SideTablesAreRequantizedOrRefused) {
  const std::vector<float> x = gaussian(4 * 64, 5);
  QuantizedWeight q = quantized("int8_pc", x, 4, 64);
  q.outliers = {{1, 2, 3.0f}};
  auto strict = convert(q, true);
  ASSERT_FALSE(strict.ok());
  EXPECT_NE(strict.status().message().find("outliers"), std::string::npos) << strict.status().message();
  auto loose = convert(q, false);
  ASSERT_TRUE(loose.ok()) << loose.status().message();
  EXPECT_FALSE(loose->linear.exact);
  EXPECT_NE(loose->linear.note.find("requantized to int8_pc"), std::string::npos) << loose->linear.note;
  // The outlier, requantized with its row: within half a step of the row's new scale (3/127).
  EXPECT_NEAR(decode(*loose, 4, 64)[66], 3.0f, 3.0f / 127 / 2 * 1.001f);
}

TEST(CtFormats, UnsupportedFormatsAreRefusedNamingTensorAndFormat) {
  for (const char* name : {"nf4_g64", "mxfp4", "int3_g128", "fp8_e5m2", "mxfp8_e4m3", "bf16", "posit8_1"}) {
    auto f = find_block_format(name);
    if (!f.ok()) continue;  // not in this build's table
    auto s = ct_scheme_for_format(**f, 8, 128, "layers.2.up_proj");
    ASSERT_FALSE(s.ok()) << name;
    EXPECT_NE(s.status().message().find("layers.2.up_proj"), std::string::npos) << s.status().message();
    EXPECT_NE(s.status().message().find(name), std::string::npos) << s.status().message();
  }
  auto nv = ct_scheme_for_format(*get(find_block_format("nvfp4")), 8, 172, "layers.0.down_proj");
  ASSERT_FALSE(nv.ok());
  EXPECT_NE(nv.status().message().find("172"), std::string::npos) << nv.status().message();
}

TEST(CtConfig, SchemeMatchingFollowsTargetsAndIgnore) {
  const nlohmann::json qc = nlohmann::json::parse(R"({
    "quant_method": "compressed-tensors", "format": "mixed-precision",
    "config_groups": {
      "a": {"targets": ["re:.*self_attn\\.(q|k)_proj$"], "format": "float-quantized",
            "weights": {"num_bits": 8, "type": "float", "strategy": "channel", "symmetric": true}},
      "b": {"targets": ["Linear"], "format": "pack-quantized",
            "weights": {"num_bits": 4, "type": "int", "group_size": 128, "symmetric": false}}},
    "ignore": ["lm_head", "re:.*layers\\.1\\.mlp.*"]})");
  auto c = parse_ct_config(qc, "config.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  auto scheme = [&](const std::string& m) { return get(c->scheme_for(m)); };
  ASSERT_NE(scheme("model.layers.0.self_attn.q_proj"), nullptr);
  EXPECT_EQ(scheme("model.layers.0.self_attn.q_proj")->format, kCtFormatFloat);
  EXPECT_EQ(scheme("model.layers.0.self_attn.v_proj")->format, kCtFormatPacked);
  EXPECT_EQ(scheme("model.layers.0.self_attn.v_proj")->weights.strategy, CtStrategy::kGroup);
  EXPECT_EQ(scheme("lm_head"), nullptr);
  EXPECT_EQ(scheme("model.layers.1.mlp.up_proj"), nullptr);
  // What lowbit cannot decode is refused when the config is read, naming the group.
  nlohmann::json bad = qc;
  bad["config_groups"]["b"]["weights"]["num_bits"] = 3;
  auto e = parse_ct_config(bad, "config.json");
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("config_groups.b"), std::string::npos) << e.status().message();
  bad = qc;
  bad["quant_method"] = "gptq";
  EXPECT_FALSE(parse_ct_config(bad, "config.json").ok());
}

// ---------------------------------------------------------------- models

// Runs the independent Python reader on an exported folder against a plain F32
// export of what lowbit reads from it. Fails (never skips) when python3 or numpy
// is missing: scripts/install_deps.sh installs them.
void expect_python_reader_agrees(const std::string& ct_dir, const std::string& scratch) {
  auto src = ExportSource::open(ct_dir);
  ASSERT_TRUE(src.ok()) << src.status().message();
  HfExportOptions o;
  o.out_dir = scratch;
  o.dtype = Dt::kF32;
  auto r = export_safetensors(**src, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const std::string cmd = fmt::format("python3 {} --ct {} --ref {} 2>&1", testing::source_path("tests/python/ct_reader.py"),
                                      ct_dir, scratch);
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  const int status = pclose(pipe);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << cmd << "\n" << out;
  EXPECT_NE(out.find(" 0 failed"), std::string::npos) << out;
}

// Every linear of `ct_dir` as lowbit loads it equals the lowbit model's
// dequantization (q/k rows in the half-split order the export stores).
// `tokenizer`: for folders exported without tokenizer files (GGUF sources).
void expect_readback_equals(const LoadedModel& lowbit, const std::string& ct_dir, bool exact_dense,
                            const std::string& tokenizer = "") {
  LoadOptions lo;
  lo.tokenizer_path = tokenizer;
  auto back = load_model(ct_dir, lo);
  ASSERT_TRUE(back.ok()) << back.status().message();
  const ModelConfig& c = lowbit.config;
  EXPECT_EQ(back->config.rope_layout, RopeLayout::kHalfSplit);
  const bool permute = c.rope_layout == RopeLayout::kAdjacentPairs;
  std::string where;
  for (int i = 0; i < c.n_layers; ++i) {
    for (const char* s : {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}) {
      const Matrix& a = linear_matrix(lowbit.weights.layers[i], s);
      const Matrix& b = linear_matrix(back->weights.layers[i], s);
      std::vector<float> want = a.data;
      const std::string suffix = s;
      if (permute && (suffix == "q_proj" || suffix == "k_proj")) {
        const std::vector<int64_t> order =
            half_split_row_order(suffix == "q_proj" ? c.n_heads : c.n_kv_heads, c.head_dim);
        for (size_t r = 0; r < order.size(); ++r) {
          std::copy_n(a.data.begin() + order[r] * a.cols, a.cols, want.begin() + static_cast<int64_t>(r) * a.cols);
        }
      }
      EXPECT_TRUE(same_bits(b.data, want, &where)) << "layers." << i << "." << s << ": " << where;
    }
    if (exact_dense) {
      EXPECT_TRUE(same_bits(back->weights.layers[i].attn_norm, lowbit.weights.layers[i].attn_norm, &where)) << where;
    }
  }
  if (exact_dense) {
    EXPECT_TRUE(same_bits(back->weights.token_embedding, lowbit.weights.token_embedding, &where)) << where;
  }
}

// Quantizes `model_path` with a data-free recipe (JSON text) into `out`.
Status quantize_with(const std::string& model_path, const std::string& recipe_json, const std::string& out) {
  LB_ASSIGN_OR_RETURN(Recipe recipe, parse_recipe(nlohmann::json::parse(recipe_json), "test recipe"));
  PipelineOptions po;
  po.model_path = model_path;
  po.output_path = out;
  po.progress = false;
  return quantize_model(recipe, po).status();
}

// Exports `model_path` as compressed-tensors into `out_dir`.
Expected<HfExportReport> export_ct(const std::string& model_path, const std::string& out_dir, Dt dtype, bool exact) {
  LB_ASSIGN_OR_RETURN(std::unique_ptr<ExportSource> source, ExportSource::open(model_path));
  HfExportOptions o;
  o.out_dir = out_dir;
  o.dtype = dtype;
  o.exact = exact;
  return export_compressed_tensors(*source, o);
}

class ExportOnStories : public testing::StoriesPipelineTest {
 protected:
  std::string quantize(const std::string& recipe_json, const std::string& out) {
    EXPECT_TRUE(quantize_with(model_, recipe_json, out).ok());
    return out;
  }
};

// One scheme per linear kind, every one exact in compressed-tensors.
constexpr const char* kExactMixed = R"({"name": "ct-exact", "rules": [
    {"match": "q_proj$", "method": "rtn", "format": "int4_g128"},
    {"match": "k_proj$", "method": "rtn", "format": "int8_pc"},
    {"match": "v_proj$", "method": "rtn", "format": "fp8_e4m3"},
    {"match": "o_proj$", "method": "rtn", "format": "fp8_e4m3_b128"},
    {"match": "down_proj$", "method": "rtn", "format": "int8_pc"},
    {"match": "lm_head", "method": "rtn", "format": "int8_pc"}],
  "default": {"method": "rtn", "format": "int4_g128"}})";

TEST_F(ExportOnStories, ExactRecipeReadsBackBitForBitAndMatchesTheIndependentReader) {
  ScopedTempDir dir("export_ct_exact");
  const std::string lb = quantize(kExactMixed, dir.file("m.lowbit"));
  auto source = ExportSource::open(lb);
  ASSERT_TRUE(source.ok()) << source.status().message();
  HfExportOptions o;
  o.out_dir = dir.file("ct");
  o.dtype = Dt::kF32;
  o.exact = true;
  auto r = export_compressed_tensors(**source, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->quantized_linears, 5 * 7 + 1);
  EXPECT_EQ(r->requantized_linears, 0);
  EXPECT_EQ(r->dense_linears, 0);
  EXPECT_TRUE(fs::exists(dir.file("ct/config.json")));
  EXPECT_TRUE(fs::exists(dir.file("ct/generation_config.json")));
  EXPECT_FALSE(fs::exists(dir.file("ct") + fmt::format(".tmp-{}", ::getpid())));
  const auto config = nlohmann::json::parse(get(read_text_file(dir.file("ct/config.json"))));
  const auto& qc = config["quantization_config"];
  EXPECT_EQ(qc["format"], "mixed-precision");
  EXPECT_EQ(qc["quantization_status"], "compressed");
  // int4 groups of 64 (q/gate/up: 64 columns), INT8 per channel (k, down, lm_head), FP8 per channel (v), FP8 blocks (o).
  EXPECT_EQ(qc["config_groups"].size(), 4u);
  EXPECT_EQ(config["bos_token_id"], 1);

  const LoadedModel lowbit = get(load_model(lb, LoadOptions{}));
  expect_readback_equals(lowbit, dir.file("ct"), true);
  expect_python_reader_agrees(dir.file("ct"), dir.file("ref"));

  // The same model's logits through both files: same weights, RoPE pairs in
  // another order (sums over head dims reassociate).
  auto loaded = load_model(dir.file("ct"), LoadOptions{});
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  const LoadedModel& back = *loaded;
  const std::vector<int32_t> tokens = {1, 45, 300, 12, 7, 99, 250, 3};
  const auto a = get(testing::forward_logits(lowbit, tokens));
  const auto b = get(testing::forward_logits(back, tokens));
  const auto d = testing::max_abs_diff(a, b);
  EXPECT_LT(d.value, 1e-4f) << "at " << d.index;

  // An existing folder needs force; a refused export leaves the old one as it was.
  auto again = export_compressed_tensors(**source, o);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("--force"), std::string::npos) << again.status().message();
  o.force = true;
  o.dtype = Dt::kBF16;
  ASSERT_TRUE(export_compressed_tensors(**source, o).ok());
  expect_readback_equals(lowbit, dir.file("ct"), false);
  expect_python_reader_agrees(dir.file("ct"), dir.file("ref_bf16"));
}

TEST_F(ExportOnStories, MixedRecipeWithAsymmetricAndNvfp4WarnsOrRefusesUnderExact) {
  ScopedTempDir dir("export_ct_mixed");
  const std::string lb = quantize(R"({"name": "ct-mixed", "rules": [
      {"match": "gate_proj$", "method": "rtn", "format": "nvfp4"},
      {"match": "up_proj$", "method": "rtn", "format": "int4_g128_asym"}],
    "default": {"method": "rtn", "format": "int8_pc"}})",
                                  dir.file("m.lowbit"));
  auto source = ExportSource::open(lb);
  ASSERT_TRUE(source.ok());
  HfExportOptions o;
  o.out_dir = dir.file("ct");
  o.exact = true;
  auto strict = export_compressed_tensors(**source, o);
  ASSERT_FALSE(strict.ok());
  EXPECT_NE(strict.status().message().find("up_proj"), std::string::npos) << strict.status().message();
  EXPECT_FALSE(fs::exists(dir.file("ct")));
  EXPECT_FALSE(fs::exists(dir.file("ct") + fmt::format(".tmp-{}", ::getpid())));
  o.exact = false;
  auto r = export_compressed_tensors(**source, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_GE(r->requantized_linears, 5);  // every up_proj
  int up_warnings = 0;
  for (const std::string& w : r->warnings) up_warnings += w.find("up_proj' (int4_g128_asym)") != std::string::npos;
  EXPECT_EQ(up_warnings, 5);
  expect_python_reader_agrees(dir.file("ct"), dir.file("ref"));
}

TEST_F(ExportOnStories, UnsupportedFormatIsRefusedBeforeWriting) {
  ScopedTempDir dir("export_ct_refuse");
  const std::string lb = quantize(R"({"name": "nf4", "default": {"method": "rtn", "format": "nf4_g64"}})",
                                  dir.file("m.lowbit"));
  auto source = ExportSource::open(lb);
  ASSERT_TRUE(source.ok());
  HfExportOptions o;
  o.out_dir = dir.file("ct");
  auto r = export_compressed_tensors(**source, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("layers.0.q_proj"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("nf4_g64"), std::string::npos) << r.status().message();
  EXPECT_FALSE(fs::exists(dir.file("ct")));
  // Activation quantization is a transform a Hugging Face folder cannot express.
  const std::string act = quantize(R"({"name": "w8a8", "default": {"method": "rtn", "format": "int8_pc",
                                       "act": {"format": "int8", "granularity": "token"}}})",
                                   dir.file("act.lowbit"));
  auto act_source = ExportSource::open(act);
  ASSERT_TRUE(act_source.ok()) << act_source.status().message();
  auto refused = export_safetensors(**act_source, o);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("activation quantization"), std::string::npos)
      << refused.status().message();
  EXPECT_FALSE(fs::exists(dir.file("ct")));
  // An FP model has nothing to write as compressed-tensors.
  auto fp = ExportSource::open(model_);
  ASSERT_TRUE(fp.ok());
  auto none = export_compressed_tensors(**fp, o);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("safetensors"), std::string::npos) << none.status().message();
}

TEST_F(ExportOnStories, PlainSafetensorsOfAGgufModelReadsBackInHalfSplitOrder) {
  ScopedTempDir dir("export_st");
  auto source = ExportSource::open(model_);
  ASSERT_TRUE(source.ok());
  HfExportOptions o;
  o.out_dir = dir.file("st");
  o.dtype = Dt::kF32;
  o.max_shard_bytes = 300'000;  // ~1 MB of weights: several shards and an index
  auto r = export_safetensors(**source, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(fs::exists(dir.file("st/model.safetensors.index.json")));
  int shards = 0;
  for (const auto& e : fs::directory_iterator(dir.file("st"))) {
    shards += e.path().filename().string().starts_with("model-0000");
  }
  EXPECT_GE(shards, 4);  // 1.18 MB in shards of at most 300 kB (a tensor larger than that alone)
  EXPECT_TRUE(fs::exists(dir.file(fmt::format("st/model-00001-of-{:05d}.safetensors", shards))));
  // tokenizer.json written from the GGUF vocabulary: the same tokens as the GGUF tokenizer.
  EXPECT_TRUE(r->warnings.empty()) << r->warnings[0];
  EXPECT_TRUE(fs::exists(dir.file("st/tokenizer.json")));
  const LoadedModel gguf = get(load_model(model_, LoadOptions{}));
  expect_readback_equals(gguf, dir.file("st"), true);
  auto folder_tokenizer = get(load_model(dir.file("st"), LoadOptions{})).tokenizer;
  ASSERT_NE(folder_tokenizer, nullptr);
  for (const char* text : {"Once upon a time, there was a little girl named Lily.", "  two  spaces\nand 42 é",
                           "The end."}) {
    EXPECT_EQ(folder_tokenizer->encode(text), gguf.tokenizer->encode(text)) << text;
  }
  EXPECT_EQ(folder_tokenizer->add_bos(), gguf.tokenizer->add_bos());
  EXPECT_EQ(folder_tokenizer->bos_id(), gguf.tokenizer->bos_id());
  // BF16: every value is the FP32 value rounded to nearest even.
  o.out_dir = dir.file("bf16");
  o.dtype = Dt::kBF16;
  ASSERT_TRUE(export_safetensors(**source, o).ok());
  auto loaded = load_model(dir.file("bf16"), LoadOptions{});
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  const LoadedModel& back = *loaded;
  const auto& want = gguf.weights.layers[2].down_proj.data;
  const auto& got = back.weights.layers[2].down_proj.data;
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], bf16_to_float(float_to_bf16(want[i]))) << i;
}

TEST(ExportSmolLM2Shape, Int4GroupsOf128On576ColumnsReadBackBitForBit) {
  // SmolLM2-135M's shapes (dim 576 = 4.5 groups of 128, ffn 1536, 9 heads of 64,
  // 3 KV heads), two layers and a small vocabulary to keep it cheap; tied head;
  // a Hugging Face checkpoint, so half-split RoPE rows.
  ModelConfig c = testing::smollm2_shaped_config();
  c.vocab_size = 1024;
  c.rope_layout = RopeLayout::kHalfSplit;
  const LoadedModel m = testing::make_random_model(c, 3);
  ScopedTempDir dir("export_smol");
  const testing::SpmVocab vocab = testing::make_test_spm_vocab();
  testing::HfWriteOptions wo;
  ASSERT_TRUE(testing::write_hf_checkpoint(m, nullptr, dir.file("hf"), wo).ok());
  // A tokenizer file beside it, copied by the export from the origin folder.
  {
    std::ofstream(dir.file("hf/tokenizer.json")) << testing::spm_to_tokenizer_json(vocab);
    std::ofstream(dir.file("hf/tokenizer_config.json")) << R"({"add_bos_token": true})";
  }
  ASSERT_TRUE(quantize_with(dir.file("hf"), R"({"name": "w4", "default": {"method": "rtn", "format": "int4_g128"}})",
                            dir.file("m.lowbit"))
                  .ok());
  auto r = export_ct(dir.file("m.lowbit"), dir.file("ct"), Dt::kBF16, true);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(fs::exists(dir.file("ct/tokenizer.json")));
  EXPECT_TRUE(fs::exists(dir.file("ct/tokenizer_config.json")));
  const auto qc = nlohmann::json::parse(get(read_text_file(dir.file("ct/config.json"))))["quantization_config"];
  // q/k/v/o/gate/up read 576 columns (groups of 64), down_proj 1536 (groups of 128).
  ASSERT_EQ(qc["config_groups"].size(), 2u);
  EXPECT_EQ(qc["config_groups"]["group_0"]["weights"]["group_size"], 64);
  EXPECT_EQ(qc["config_groups"]["group_1"]["weights"]["group_size"], 128);
  EXPECT_EQ(qc["ignore"], nlohmann::json::array());
  const LoadedModel lowbit = get(load_model(dir.file("m.lowbit"), LoadOptions{}));
  expect_readback_equals(lowbit, dir.file("ct"), false);
  expect_python_reader_agrees(dir.file("ct"), dir.file("ref"));
}

TEST(ExportQwen2, BiasesStayDenseAndTheConfigSaysQwen2) {
  ModelConfig c;
  c.architecture = "qwen2";
  c.qkv_bias = true;
  c.n_layers = 1;
  c.dim = 128;
  c.ffn_dim = 256;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 32;
  c.vocab_size = 300;
  c.rope_layout = RopeLayout::kHalfSplit;
  const LoadedModel m = testing::make_random_model(c, 9);
  ScopedTempDir dir("export_qwen2");
  ASSERT_TRUE(testing::write_hf_checkpoint(m, nullptr, dir.file("hf")).ok());
  std::ofstream(dir.file("hf/tokenizer.json")) << testing::spm_to_tokenizer_json(testing::make_test_spm_vocab());
  ASSERT_TRUE(quantize_with(dir.file("hf"), R"({"name": "w8", "default": {"method": "rtn", "format": "int8_pc"}})",
                            dir.file("m.lowbit"))
                  .ok());
  auto r = export_ct(dir.file("m.lowbit"), dir.file("ct"), Dt::kF32, true);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const auto config = nlohmann::json::parse(get(read_text_file(dir.file("ct/config.json"))));
  EXPECT_EQ(config["model_type"], "qwen2");
  EXPECT_EQ(config["architectures"][0], "Qwen2ForCausalLM");
  EXPECT_EQ(config["quantization_config"]["config_groups"]["group_0"]["targets"][0], "Linear");
  const LoadedModel lowbit = get(load_model(dir.file("m.lowbit"), LoadOptions{}));
  expect_readback_equals(lowbit, dir.file("ct"), true);
  auto src = open_model_source(dir.file("ct"), LoadOptions{});
  ASSERT_TRUE(src.ok());
  const LayerWeights back = get((*src)->layer(0));
  std::string where;
  EXPECT_TRUE(same_bits(back.k_proj.bias, lowbit.weights.layers[0].k_proj.bias, &where)) << where;
  expect_python_reader_agrees(dir.file("ct"), dir.file("ref"));
}

TEST(ExportCli, CompressedTensorsAndSafetensorsTargets) {
  LB_REQUIRE_SHARED(model, "models/stories260K/stories260K.gguf");
  ScopedTempDir dir("export_cli");
  const std::string out = dir.file("st");
  auto r = testing::run_lowbit(fmt::format("export {} --to safetensors --dtype f16 -o {}", model, out));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(out + "/tokenizer.json")) << r.output;
  auto again = testing::run_lowbit(fmt::format("export {} --to safetensors -o {}", model, out));
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.output.find("--force"), std::string::npos) << again.output;
  auto bad = testing::run_lowbit(fmt::format("export {} --to safetensors --type q4_0 -o {}", model, dir.file("x")));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("q4_0"), std::string::npos) << bad.output;
  auto fp = testing::run_lowbit(fmt::format("export {} --to compressed-tensors -o {}", model, dir.file("ct")));
  EXPECT_NE(fp.exit_code, 0);
  EXPECT_NE(fp.output.find("no linear is stored in a lowbit quantized format"), std::string::npos) << fp.output;
}

}  // namespace
}  // namespace lowbit
