// The lowbit model file: the container (blobs, index, footer; atomic write; a
// truncated or unfinished file rejected by name), QuantizedWeight round trips with
// every side table, and stories260K quantized by the pipeline, reloaded, giving
// the logits of the same model quantized in memory.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "formats/gguf_blocks.h"
#include "io/lowbit_container.h"
#include "model/loader.h"
#include "model/lowbit_file.h"
#include "model/quantized_linear.h"
#include "model_writers.h"
#include "pipeline/quantize_pipeline.h"
#include "quant/quantizers.h"
#include "test_quant_util.h"
#include "test_quantize_util.h"
#include "test_util.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

using testing::get;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// lowbit.config is JSON from the file: every field is type-checked, and a wrong
// one is a one-line error naming the file and field (issue 18; get<int>() on
// 1e30 was an undefined cast, on "8" an exception naming nothing).
TEST(LowbitFile, ConfigFieldsOfTheWrongTypeNameTheField) {
  ModelConfig good;
  good.architecture = "llama";
  good.n_layers = 2;
  good.dim = 64;
  good.n_heads = 4;
  good.n_kv_heads = 2;
  good.head_dim = 16;
  good.ffn_dim = 128;
  good.vocab_size = 100;
  good.max_seq_len = 256;
  const json base = config_to_json(good);
  auto round_trip = config_from_json(base, "m.lowbit");
  ASSERT_TRUE(round_trip.ok()) << round_trip.status().message();
  EXPECT_EQ(config_to_json(*round_trip), base);
  const struct {
    const char* key;
    json value;
    const char* message;
  } cases[] = {
      {"n_layers", "8", "m.lowbit: lowbit.config: 'n_layers' is \"8\", expected an integer in [-2^31, 2^31)"},
      {"dim", 1e30, "m.lowbit: lowbit.config: 'dim' is 1e+30, expected an integer in [-2^31, 2^31)"},
      {"vocab_size", uint64_t{1} << 40,
       "m.lowbit: lowbit.config: 'vocab_size' is 1099511627776, expected an integer in [-2^31, 2^31)"},
      {"head_dim", -(int64_t{1} << 40),
       "m.lowbit: lowbit.config: 'head_dim' is -1099511627776, expected an integer in [-2^31, 2^31)"},
      {"norm_eps", 1e300, "m.lowbit: lowbit.config: 'norm_eps' is 1e+300, expected a finite 32-bit float"},
      {"rope_theta", "x", "m.lowbit: lowbit.config: 'rope_theta' is \"x\", expected a finite number"},
      {"architecture", 7, "m.lowbit: lowbit.config: 'architecture' is 7, expected a string"},
      {"rope_layout", json::array(), "m.lowbit: lowbit.config: 'rope_layout' is an array of 0 elements, expected a string"},
      {"tied_embeddings", 1, "m.lowbit: lowbit.config: 'tied_embeddings' is 1, expected true or false"},
      {"rope_scaling", 3, "m.lowbit: lowbit.config: 'rope_scaling' is 3, expected an object"},
  };
  for (const auto& c : cases) {
    json j = base;
    j[c.key] = c.value;
    auto parsed = config_from_json(j, "m.lowbit");
    ASSERT_FALSE(parsed.ok()) << c.key;
    EXPECT_EQ(parsed.status().message().rfind(c.message, 0), 0u) << parsed.status().message();
  }
  json nested = base;
  nested["rope_scaling"]["original_max_position"] = 0.5;
  auto parsed = config_from_json(nested, "m.lowbit");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(),
            "m.lowbit: lowbit.config.rope_scaling: 'original_max_position' is 0.5, expected an integer in "
            "[-2^63, 2^63)");
  json missing = base;
  missing.erase("ffn_dim");
  parsed = config_from_json(missing, "m.lowbit");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(), "m.lowbit: lowbit.config: missing 'ffn_dim'");
  parsed = config_from_json(json::array({1, 2}), "m.lowbit");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message().rfind("m.lowbit: lowbit.config: is an array", 0), 0u)
      << parsed.status().message();
}

TEST(LowbitContainer, BlobsRoundTripAndTheFileAppearsOnlyWhenFinished) {
  testing::ScopedTempDir dir("container");
  const std::string path = dir.file("m.lbq");
  std::vector<std::string> blobs = {"", "x", std::string(100, 'a'), std::string(1000, '\x7f')};
  json refs = json::array();
  {
    GgufWriter header;
    header.set_string("test.key", "value");
    auto writer = get(ContainerWriter::create(path, std::move(header)));
    for (const std::string& b : blobs) {
      const BlobRef ref = get(writer.append(b.data(), b.size()));
      EXPECT_EQ(ref.offset % kLowbitBlobAlignment, 0u);
      refs.push_back(blob_json(ref));
    }
    EXPECT_FALSE(fs::exists(path));  // only the temporary name exists until finish()
    EXPECT_TRUE(fs::exists(writer.temp_path()));
    ASSERT_TRUE(writer.finish(json{{"blobs", refs}}).ok());
    EXPECT_FALSE(fs::exists(path + ".tmp"));
  }
  ASSERT_TRUE(fs::exists(path));
  const ContainerReader reader = get(ContainerReader::open(path));
  EXPECT_TRUE(is_lowbit_container(reader.header()));
  EXPECT_EQ(get(reader.header().get_string("test.key")), "value");
  ASSERT_EQ(reader.index()["blobs"].size(), blobs.size());
  for (size_t i = 0; i < blobs.size(); ++i) {
    const std::span<const uint8_t> bytes = get(reader.blob(reader.index()["blobs"][i], "blob"));
    EXPECT_EQ(std::string(bytes.begin(), bytes.end()), blobs[i]) << i;
  }
  // A reference outside the data section (into the index, or past the end) is refused.
  auto bad = reader.blob(json{{"offset", reader.file_size()}, {"bytes", 1}}, "bad blob");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("bad blob"), std::string::npos) << bad.status().message();
}

TEST(LowbitContainer, AbandonedWriterLeavesNoFile) {
  testing::ScopedTempDir dir("container_abandon");
  const std::string path = dir.file("m.lbq");
  {
    auto writer = get(ContainerWriter::create(path, GgufWriter()));
    ASSERT_TRUE(writer.append("abc", 3).ok());
  }  // an error path returns without finish()
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(LowbitContainer, TruncatedOrDamagedFilesAreRejectedByName) {
  testing::ScopedTempDir dir("container_trunc");
  const std::string path = dir.file("m.lbq");
  {
    auto writer = get(ContainerWriter::create(path, GgufWriter()));
    ASSERT_TRUE(writer.append(std::string(500, 'z').data(), 500).ok());
    ASSERT_TRUE(writer.finish(json{{"k", 1}}).ok());
  }
  const std::string bytes = read_bytes(path);
  const std::string cut_path = dir.file("cut.lbq");
  for (size_t cut : {size_t{0}, size_t{7}, size_t{39}, bytes.size() / 2, bytes.size() - 41, bytes.size() - 1}) {
    write_bytes(cut_path, bytes.substr(0, cut));
    auto r = ContainerReader::open(cut_path);
    ASSERT_FALSE(r.ok()) << "accepted a file cut at " << cut;
    EXPECT_NE(r.status().message().find("cut.lbq"), std::string::npos) << r.status().message();
  }
  write_bytes(cut_path, bytes.substr(0, bytes.size() - 1));
  EXPECT_NE(ContainerReader::open(cut_path).status().message().find("truncated"), std::string::npos);
  // A newer container version is named.
  std::string newer = bytes;
  newer[newer.size() - 16] = 9;  // u32 version at footer + 24
  write_bytes(cut_path, newer);
  EXPECT_NE(ContainerReader::open(cut_path).status().message().find("version 9"), std::string::npos);
}

ModelConfig tiny_config() {
  ModelConfig c;
  c.n_layers = 1;
  c.dim = 32;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.ffn_dim = 48;
  c.vocab_size = 64;
  c.qkv_bias = true;
  return c;
}

std::vector<float> ramp(int64_t n, float scale) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = scale * static_cast<float>((i * 37) % 101 - 50);
  return v;
}

void expect_same_tensor(const QuantizedTensor& a, const QuantizedTensor& b) {
  EXPECT_EQ(a.rows, b.rows);
  EXPECT_EQ(a.cols, b.cols);
  EXPECT_EQ(a.codes, b.codes);
  EXPECT_EQ(a.scales, b.scales);
  EXPECT_EQ(a.mins, b.mins);
  EXPECT_EQ(a.tensor_scale, b.tensor_scale);
}

TEST(LowbitFile, QuantizedWeightsRoundTripWithSideTables) {
  testing::ScopedTempDir dir("lowbit_file");
  const std::string path = dir.file("q.lbq");
  const int64_t rows = 24, cols = 40;  // partial groups for every group size
  const std::vector<float> w = ramp(rows * cols, 0.01f);
  struct Case {
    std::string name;
    QuantizedWeight q;
  };
  std::vector<Case> cases;
  cases.push_back({"nvfp4", get(quantize_rtn(*get(find_block_format("nvfp4")), w.data(), rows, cols, {}))});
  cases.push_back({"easyquant", get(quantize_easyquant(*get(find_block_format("int4_g128_asym")), w.data(), rows, cols,
                                                       {.outlier_fraction = 0.05f}))});
  QuantizedWeight lorc = get(quantize_rtn(*get(find_block_format("int3_g128")), w.data(), rows, cols, {}));
  ASSERT_TRUE(add_lowrank_correction(lorc, w.data(), 3, "int8_pc").ok());
  cases.push_back({"lorc_int8", lorc});
  QuantizedWeight lorc32 = get(quantize_rtn(*get(find_block_format("int2_g64")), w.data(), rows, cols, {}));
  ASSERT_TRUE(add_lowrank_correction(lorc32, w.data(), 2, "fp32").ok());
  cases.push_back({"lorc_fp32", lorc32});
  // 5-, 6- and 8-bit codes of the asymmetric integer menu, per group and per row.
  for (const char* name : {"int5_g32_asym", "int6_pc_asym", "int8_g64_asym"}) {
    cases.push_back({name, get(quantize_rtn(*get(find_block_format(name)), w.data(), rows, cols, {}))});
  }
  ASSERT_FALSE(cases[1].q.outliers.empty());

  LowbitFileInfo info;
  info.config = tiny_config();
  info.recipe = {{"name", "test"}};
  {
    auto writer = get(LowbitFileWriter::create(path, info, nullptr));
    for (const Case& c : cases) ASSERT_TRUE(writer.add(c.name, {rows, cols}, c.q, "rtn").ok()) << c.name;
    const std::vector<float> norm = ramp(32, 0.1f);
    ASSERT_TRUE(writer.add_fp32("norm", {32}, norm.data()).ok());
    ASSERT_TRUE(writer.finish().ok());
  }
  const LowbitModelFile file = get(LowbitModelFile::open(path));
  EXPECT_EQ(file.info().recipe, info.recipe);
  EXPECT_EQ(file.config().n_kv_heads, 2);
  EXPECT_TRUE(file.config().qkv_bias);
  const FileSummary summary = file.summary();
  ASSERT_EQ(summary.tensors.size(), cases.size() + 1);
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].name);
    const QuantizedWeight& want = cases[i].q;
    const QuantizedWeight got = get(file.read(cases[i].name, {rows, cols}));
    EXPECT_EQ(got.format, want.format);
    expect_same_tensor(got.tensor, want.tensor);
    ASSERT_EQ(got.outliers.size(), want.outliers.size());
    for (size_t k = 0; k < got.outliers.size(); ++k) {
      EXPECT_EQ(got.outliers[k].row, want.outliers[k].row);
      EXPECT_EQ(got.outliers[k].col, want.outliers[k].col);
      EXPECT_EQ(got.outliers[k].value, want.outliers[k].value);
    }
    EXPECT_EQ(got.rank, want.rank);
    EXPECT_EQ(got.lowrank_format, want.lowrank_format);
    expect_same_tensor(got.lowrank_u, want.lowrank_u);
    expect_same_tensor(got.lowrank_v, want.lowrank_v);
    EXPECT_EQ(summary.tensors[i].n_bytes, want.storage_bytes());
    EXPECT_TRUE(file.is_quantized(cases[i].name));
  }
  EXPECT_EQ(get(file.read_fp32("norm", {32})), ramp(32, 0.1f));
  EXPECT_FALSE(file.is_quantized("norm"));
  // Shape and name mismatches are named.
  auto wrong = file.read("nvfp4", {cols, rows});
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("nvfp4"), std::string::npos);
  EXPECT_NE(file.read("absent", {1}).status().message().find("absent"), std::string::npos);
}

// `stored`, written in order each under its format's name as [rows, cols], reads
// back array for array, with its byte count in the summary and its dequantization.
void expect_stored_by_format(const LowbitModelFile& file, const std::vector<QuantizedWeight>& stored, int64_t rows,
                             int64_t cols) {
  const FileSummary summary = file.summary();
  for (size_t i = 0; i < stored.size(); ++i) {
    const QuantizedWeight& want = stored[i];
    SCOPED_TRACE(want.format);
    const QuantizedWeight got = get(file.read(want.format, {rows, cols}));
    EXPECT_EQ(got.format, want.format);
    expect_same_tensor(got.tensor, want.tensor);
    EXPECT_EQ(summary.tensors[i].dtype, want.format);
    EXPECT_EQ(summary.tensors[i].n_bytes, want.storage_bytes());
    EXPECT_EQ(get(file.read_fp32(want.format, {rows, cols})), testing::dequantized(want));
  }
}

TEST(LowbitFile, GgufTypedTensorsRoundTripAndTheirDefinitionIsChecked) {
  testing::ScopedTempDir dir("lowbit_gguf");
  const std::string path = dir.file("g.lbq");
  const int64_t rows = 4, cols = 512;  // whole blocks of 32 and of 256
  const std::vector<float> w = ramp(rows * cols, 0.003f);
  std::vector<QuantizedWeight> stored;
  for (const GgufBlockType& t : gguf_block_types()) stored.push_back(get(quantize_rtn(t, w.data(), rows, cols, {})));
  QuantizedWeight lorc = stored.front();  // a LoRC correction on top of a GGUF type
  ASSERT_TRUE(add_lowrank_correction(lorc, w.data(), 2, "int8_pc").ok());
  LowbitFileInfo info;
  info.config = tiny_config();
  {
    auto writer = get(LowbitFileWriter::create(path, info, nullptr));
    for (const QuantizedWeight& q : stored) ASSERT_TRUE(writer.add(q.format, {rows, cols}, q, "rtn").ok()) << q.format;
    ASSERT_TRUE(writer.add("lorc", {rows, cols}, lorc, "rtn").ok());
    // Arrays that do not match the type's size are refused before anything is written.
    QuantizedWeight short_codes = stored.front();
    short_codes.tensor.codes.pop_back();
    auto refused = writer.add("short", {rows, cols}, short_codes, "rtn");
    ASSERT_FALSE(refused.ok());
    EXPECT_NE(refused.message().find("short"), std::string::npos) << refused.message();
    ASSERT_TRUE(writer.finish().ok());
  }
  {
    const LowbitModelFile file = get(LowbitModelFile::open(path));
    expect_stored_by_format(file, stored, rows, cols);
    for (const QuantizedWeight& want : stored) {
      const GgufBlockType& t = *find_gguf_block_type(want.format);
      EXPECT_EQ((*file.record_field(want.format, "gguf"))["type"], t.type_id) << want.format;
    }
    const QuantizedWeight got = get(file.read("lorc", {rows, cols}));
    EXPECT_EQ(got.rank, 2);
    EXPECT_EQ(get(file.read_fp32("lorc", {rows, cols})), testing::dequantized(lorc));
  }
  // A file whose GGUF type is defined differently from this build's is refused by name.
  const GgufBlockType& first = gguf_block_types().front();
  std::string bytes = read_bytes(path);
  const std::string field = fmt::format("\"bytes_per_block\":{}", first.bytes_per_block);
  const size_t at = bytes.find(field);
  ASSERT_NE(at, std::string::npos);
  bytes[at + field.size() - 1] = bytes[at + field.size() - 1] == '9' ? '8' : '9';  // same length: offsets hold
  write_bytes(path, bytes);
  const LowbitModelFile file = get(LowbitModelFile::open(path));
  auto bad = file.read(first.name, {rows, cols});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(first.name), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("differs"), std::string::npos) << bad.status().message();
}

// PTQ1.61 tensors (formats/ptq161_code.h) round trip with their definition, which the
// loader checks; arrays of the wrong size are refused before anything is written.
TEST(LowbitFile, Ptq161TensorsRoundTripAndTheirDefinitionIsChecked) {
  testing::ScopedTempDir dir("lowbit_ptq161");
  const std::string path = dir.file("p.lbq");
  const int64_t rows = 6, cols = 75;
  const std::vector<float> w = ramp(rows * cols, 0.01f);
  std::vector<QuantizedWeight> stored;
  for (const char* name : {"ptq161_s125_b192", "ptq161_s250_b32"}) {
    stored.push_back(get(quantize_rtn(get(WeightFormat::find(name)), w.data(), rows, cols, {})));
  }
  LowbitFileInfo info;
  info.config = tiny_config();
  {
    auto writer = get(LowbitFileWriter::create(path, info, nullptr));
    for (const QuantizedWeight& q : stored) ASSERT_TRUE(writer.add(q.format, {rows, cols}, q, "rtn").ok()) << q.format;
    QuantizedWeight short_scales = stored.front();
    short_scales.tensor.scales.pop_back();
    ASSERT_FALSE(writer.add("short", {rows, cols}, short_scales, "rtn").ok());
    ASSERT_TRUE(writer.finish().ok());
  }
  {
    expect_stored_by_format(get(LowbitModelFile::open(path)), stored, rows, cols);
  }
  // A record whose definition differs from this build's is refused by name.
  std::string bytes = read_bytes(path);
  const std::string field = "\"salient_permille\":250";
  const size_t at = bytes.find(field);
  ASSERT_NE(at, std::string::npos);
  bytes[at + field.size() - 1] = '1';  // 251: same length, offsets hold
  write_bytes(path, bytes);
  const LowbitModelFile file = get(LowbitModelFile::open(path));
  auto bad = file.read("ptq161_s250_b32", {rows, cols});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("differs"), std::string::npos) << bad.status().message();
}

// stories260K through the pipeline with a data-free recipe and back, against the same
// model quantized in memory: every tensor the recipe names quantized the same way.
class Stories260KRoundTrip : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = testing::shared_path("models/stories260K/stories260K.gguf");
    if (model_.empty()) GTEST_SKIP() << "shared test material missing: models/stories260K/stories260K.gguf";
  }

  std::string quantize(const std::string& recipe, const std::string& out) {
    PipelineOptions o;
    o.model_path = model_;
    o.output_path = out;
    o.progress = false;
    auto r = quantize_model(get(load_recipe(recipe)), o);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return out;
  }

  std::string model_;
  std::vector<int32_t> tokens_ = {1, 403, 407, 261, 378, 432, 350, 280, 265, 273, 285, 290, 300, 310, 320, 330, 340};
};

// Rounds a table through a storage format, as the file does.
void round_trip(std::vector<float>& v, int64_t rows, int64_t cols, const std::string& format) {
  const QuantizedTensor t = get(quantize_matrix(format, v.data(), rows, cols));
  ASSERT_TRUE(dequantize_matrix(format, t, v.data()).ok());
}

TEST_F(Stories260KRoundTrip, ReloadedRtnModelGivesTheInMemoryLogits) {
  testing::ScopedTempDir dir("stories_rtn");
  const std::string path = quantize("w4g128-rtn", dir.file("s.lbq"));  // dim 64 < 128: one partial group per row
  LoadedModel reference = get(load_model(model_, {}));
  const BlockFormat& format = *get(find_block_format("int4_g128_asym"));
  const ModelConfig& c = reference.config;
  for (LayerWeights& l : reference.weights.layers) {
    for (Matrix* m : {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj}) {
      const QuantizedWeight q = get(quantize_rtn(format, m->data.data(), m->rows, m->cols, {}));
      ASSERT_TRUE(dequantize_weight(q, m->data.data()).ok());
    }
  }
  round_trip(reference.weights.token_embedding, c.vocab_size, c.dim, "fp16");  // implicit rule: FP16 tables
  round_trip(reference.weights.lm_head.data, c.vocab_size, c.dim, "fp16");
  const std::vector<float> want = get(testing::forward_logits(reference, tokens_));

  LoadedModel loaded = get(load_model(path, {}));
  EXPECT_EQ(loaded.summary.format, "lowbit");
  EXPECT_EQ(loaded.quantized_linears.size(), 7u * c.n_layers + 1);  // + lm_head, stored FP16
  EXPECT_EQ(loaded.quantized_linears["lm_head"].format, "fp16");
  const std::vector<float> got = get(testing::forward_logits(loaded, tokens_));
  const testing::MaxDiff d = testing::max_abs_diff(want, got);
  EXPECT_EQ(d.value, 0.0f) << "worst logit " << d.index;

  // The runtime model keeps the packed weights: QuantizedLinear layers, stored bytes.
  LlamaModel model = get(LlamaModel::create(loaded.config, loaded.weights));
  const uint64_t fp32_bytes = model.weight_bytes();
  ASSERT_TRUE(attach_quantized_linears(model, std::move(loaded.quantized_linears)).ok());
  EXPECT_EQ(model.find_linear("layers.2.down_proj")->describe().rfind("int4_g128_asym", 0), 0u)
      << model.find_linear("layers.2.down_proj")->describe();
  EXPECT_LT(model.weight_bytes(), fp32_bytes);

  // The tokenizer travels with the file.
  const std::string text = "Once upon a time, a little dog ran home.";
  LoadedModel source = get(load_model(model_, {}));
  ASSERT_NE(loaded.tokenizer, nullptr);
  EXPECT_EQ(loaded.tokenizer->encode(text), source.tokenizer->encode(text));
  EXPECT_EQ(loaded.tokenizer->bos_id(), source.tokenizer->bos_id());
}

TEST_F(Stories260KRoundTrip, Fp32RecipeIsLossless) {
  testing::ScopedTempDir dir("stories_fp32");
  const std::string path = quantize("fp32", dir.file("s.lbq"));
  const std::vector<float> want = get(testing::forward_logits(get(load_model(model_, {})), tokens_));
  const std::vector<float> got = get(testing::forward_logits(get(load_model(path, {})), tokens_));
  EXPECT_EQ(testing::max_abs_diff(want, got).value, 0.0f);
}

TEST_F(Stories260KRoundTrip, TruncatedModelIsRejectedWithItsName) {
  testing::ScopedTempDir dir("stories_trunc");
  const std::string path = quantize("w4g128-rtn", dir.file("s.lbq"));
  const std::string bytes = read_bytes(path);
  const std::string cut = dir.file("cut.lbq");
  for (size_t n : {bytes.size() / 3, bytes.size() - 100, bytes.size() - 1}) {
    write_bytes(cut, bytes.substr(0, n));
    auto m = load_model(cut, {});
    ASSERT_FALSE(m.ok()) << "accepted a file cut at " << n;
    EXPECT_NE(m.status().message().find("cut.lbq"), std::string::npos) << m.status().message();
    EXPECT_NE(m.status().message().find("truncated"), std::string::npos) << m.status().message();
  }
}

}  // namespace
}  // namespace lowbit
