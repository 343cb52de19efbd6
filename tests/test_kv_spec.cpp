// The --kv grammar, the KV configuration file and the codebook serialisation:
// parsed fields for each documented example, and errors that quote the bad part.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kvcache/kv_codebooks.h"
#include "kvcache/kv_config_file.h"
#include "kvcache/kv_fused_attention.h"
#include "kvcache/kv_spec.h"
#include "kvcache/quantized_kv_cache.h"
#include "test_kv_util.h"

namespace lowbit {
namespace {

KvSpec parse_ok(const std::string& text) { return testing::parse_kv_spec_ok(text); }

TEST(KvSpec, Fp32IsThePlainCache) {
  EXPECT_TRUE(parse_ok("fp32").is_fp32());
  EXPECT_TRUE(parse_ok("k32v32").is_fp32());
  EXPECT_FALSE(parse_ok("k32v32-rot").is_fp32());
  EXPECT_FALSE(parse_ok("k32v32-prerope").is_fp32());
}

TEST(KvSpec, Fp16IsHalfStorageWithoutParts) {
  for (const char* text : {"fp16", "f16"}) {
    const KvSpec s = parse_ok(text);
    ASSERT_EQ(s.layers.size(), 1u);
    for (const KvTensorSpec& t : {s.layers[0].key, s.layers[0].value}) {
      EXPECT_EQ(t.element, KvElement::kFloat16);
      EXPECT_EQ(t.bits, 16);
      EXPECT_TRUE(t.quantized());
    }
    EXPECT_FALSE(s.is_fp32());
    EXPECT_DOUBLE_EQ(s.average_bits(30), 16.0);
    EXPECT_EQ(s.describe(), text);
    // One-token attention reads it back to FP32 first.
    EXPECT_EQ(fused_attention_blocker(s, 0), "FP16 keys");
  }
  auto parts = parse_kv_spec("fp16-rot");
  ASSERT_FALSE(parts.ok());
  EXPECT_NE(parts.status().message().find("fp32 or fp16"), std::string::npos) << parts.status().message();
  // No per-layer bits to choose (a configuration file or --kv-tune).
  auto bits = kv_tensor_with_bits(parse_ok("fp16").layers[0].key, 8, "layer 0 keys");
  ASSERT_FALSE(bits.ok());
  EXPECT_NE(bits.status().message().find("layer 0 keys: the fp16 cache"), std::string::npos)
      << bits.status().message();
}

TEST(KvSpec, PlainIntegerPerToken) {
  const KvSpec s = parse_ok("k4v2");
  ASSERT_EQ(s.layers.size(), 1u);
  EXPECT_EQ(s.layers[0].key.element, KvElement::kInteger);
  EXPECT_EQ(s.layers[0].key.bits, 4);
  EXPECT_EQ(s.layers[0].value.bits, 2);
  EXPECT_EQ(s.layers[0].key.granularity, KvGranularity::kPerToken);
  EXPECT_EQ(s.layers[0].key.group, 0);
  EXPECT_EQ(s.residual, 0);
  EXPECT_EQ(s.sinks, 0);
  EXPECT_FALSE(s.rotate || s.pre_rope);
  EXPECT_DOUBLE_EQ(s.average_bits(30), 3.0);
}

TEST(KvSpec, KiviResidual) {
  const KvSpec s = parse_ok("k2v2-kivi-r128");
  EXPECT_EQ(s.layers[0].key.granularity, KvGranularity::kPerChannel);
  EXPECT_EQ(s.layers[0].key.token_block, 32);
  EXPECT_EQ(s.layers[0].value.granularity, KvGranularity::kPerToken);
  EXPECT_EQ(s.residual, 128);
  EXPECT_EQ(parse_ok("k2v2-kivi-b64-g16").layers[0].key.token_block, 64);
  EXPECT_EQ(parse_ok("k2v2-kivi-b64-g16").layers[0].value.group, 16);
}

TEST(KvSpec, NuqSparseSinks) {
  const KvSpec s = parse_ok("k3v3-nuq-sparse1-sink4");
  EXPECT_EQ(s.layers[0].key.element, KvElement::kCodebook);
  EXPECT_EQ(s.layers[0].value.element, KvElement::kCodebook);
  EXPECT_DOUBLE_EQ(s.sparse_percent, 1.0);
  EXPECT_EQ(s.sinks, 4);
  EXPECT_TRUE(s.uses_codebooks());
  EXPECT_DOUBLE_EQ(parse_ok("k4v4-sparse0.5").sparse_percent, 0.5);
}

TEST(KvSpec, RotationPreRopeAndMinifloats) {
  const KvSpec r = parse_ok("k4v4-rot-prerope");
  EXPECT_TRUE(r.rotate);
  EXPECT_EQ(r.rotate_group, 1);
  EXPECT_TRUE(r.pre_rope);
  const KvSpec g = parse_ok("k2v2-kivi-r128-prerope-rotg3");
  EXPECT_TRUE(g.rotate);
  EXPECT_EQ(g.rotate_group, 3);
  EXPECT_EQ(parse_ok("k4v4-rotg1").rotate_group, 1);
  EXPECT_EQ(parse_ok("k8v8-fp8").layers[0].key.element, KvElement::kFp8E4M3);
  EXPECT_EQ(parse_ok("k8v8-e5m2").layers[0].value.element, KvElement::kFp8E5M2);
  EXPECT_EQ(parse_ok("k4v4-fp4").layers[0].key.element, KvElement::kFp4E2M1);
  // A 32-bit side stays FP32 under any element family.
  EXPECT_EQ(parse_ok("k8v32-fp8").layers[0].value.element, KvElement::kFloat32);
}

TEST(KvSpec, ErrorsNameTheBadPart) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"k4v4-foo", "'foo'"},
      {"x4v4", "'x4v4'"},
      {"k4", "'k4'"},
      {"k1v4", "bits must be 2..16"},
      {"k4v17", "got 17"},
      {"k4v4-fp8", "'fp8' needs 8-bit"},
      {"k8v4-fp8", "values (v4)"},
      {"k8v8-fp4", "'fp4' needs 4-bit"},
      {"k16v16-nuq", "'nuq' needs at most 8"},
      {"k4v4-rot-rot", "'rot' repeats"},
      {"k4v4-rot-rotg3", "'rotg3' repeats"},
      {"k4v4-rotg0", "'rotg0'"},
      {"k4v4-r8-r16", "'r16' repeats"},
      {"k4v4-nuq-fp8", "conflicts"},
      {"k4v4-b64", "add -kivi"},
      {"k4v4-sparse0", "'sparse0'"},
      {"k4v4-sparse101", "(0, 100]"},
      {"k4v4-g0", "'g0'"},
      {"k4v4--rot", "empty part"},
      {"k4v4-r", "'r'"},
  };
  for (const auto& [text, needle] : cases) {
    auto s = parse_kv_spec(text);
    ASSERT_FALSE(s.ok()) << text << " was accepted";
    EXPECT_NE(s.status().message().find(needle), std::string::npos) << text << ": " << s.status().message();
    EXPECT_NE(s.status().message().find("'" + text + "'"), std::string::npos) << s.status().message();
  }
}

TEST(KvSpec, ShapeChecksNameTheProblem) {
  const KvCacheShape shape{2, 16, 3, 48};
  auto bad_group = check_kv_spec(parse_ok("k4v4-g32"), shape);
  ASSERT_FALSE(bad_group.ok());
  EXPECT_NE(bad_group.message().find("must divide head_dim 48"), std::string::npos) << bad_group.message();
  // Hadamard orders 2^k·m: 48 = 4·12 per head, 144 = 4·36 for a group of 3 heads; 10 has none.
  EXPECT_TRUE(check_kv_spec(parse_ok("k4v4-g16-rot"), shape).ok());
  EXPECT_TRUE(check_kv_spec(parse_ok("k4v4-g16-rotg3"), shape).ok());
  auto rot = check_kv_spec(parse_ok("k4v4-rot"), KvCacheShape{2, 16, 3, 10});
  ASSERT_FALSE(rot.ok());
  EXPECT_NE(rot.message().find("no Hadamard rotation"), std::string::npos) << rot.message();
  auto rotg = check_kv_spec(parse_ok("k4v4-g16-rotg2"), shape);
  ASSERT_FALSE(rotg.ok());
  EXPECT_NE(rotg.message().find("does not divide the model's 3 KV heads"), std::string::npos) << rotg.message();
  auto nuq = check_kv_spec(parse_ok("k3v3-nuq-g16"), shape);
  ASSERT_FALSE(nuq.ok());
  EXPECT_NE(nuq.message().find("--kv-calib"), std::string::npos) << nuq.message();
  EXPECT_TRUE(check_kv_spec(parse_ok("k4v4-g16"), shape).ok());
}

KvCodebooks sample_codebooks() {
  KvCodebooks books;
  books.layers.push_back({{-1.0f, -0.25f, 0.3f, 0.9f}, {-0.8f, 0.0f, 0.1f, 1.0f}});
  books.layers.push_back({{-0.9f, -0.1f, 0.2f, 1.0f}, {-1.0f, -0.5f, 0.5f, 1.0f}});
  return books;
}

TEST(KvSpec, CodebookBytesRoundTrip) {
  const KvCodebooks books = sample_codebooks();
  const std::vector<uint8_t> bytes = books.to_bytes();
  EXPECT_EQ(bytes.size(), 4u + 2 * (4 + 16 + 4 + 16));
  auto back = KvCodebooks::from_bytes(bytes.data(), bytes.size(), "mem");
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, books);
  auto cut = KvCodebooks::from_bytes(bytes.data(), bytes.size() - 3, "mem");
  ASSERT_FALSE(cut.ok());
  EXPECT_NE(cut.status().message().find("layer 1"), std::string::npos) << cut.status().message();
}

TEST(KvSpec, ConfigFileRoundTripsPerLayerBitsAndCodebooks) {
  KvSpec spec = parse_ok("k2v2-nuq-kivi-r16-sink2");
  spec.layers.assign(2, spec.layers[0]);
  spec.layers[1].key.bits = 4;
  spec.codebooks = sample_codebooks();
  spec.codebooks.layers[1].key = {-1, -0.8f, -0.6f, -0.4f, -0.2f, 0, 0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f, 1};
  const std::string path =
      (std::filesystem::temp_directory_path() / ("lowbit_kv_config_" + std::to_string(getpid()) + ".json")).string();
  ASSERT_TRUE(save_kv_config(path, spec, {{"note", "test"}}).ok());
  auto back = resolve_kv_argument(path);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->layers, spec.layers);
  EXPECT_EQ(back->codebooks, spec.codebooks);
  EXPECT_EQ(back->residual, 16);
  EXPECT_EQ(back->sinks, 2);
  EXPECT_EQ(back->source, path);
  EXPECT_TRUE(check_kv_spec(*back, KvCacheShape{2, 64, 2, 16}).ok());

  // A per-layer entry that breaks the element family is named.
  nlohmann::json j = kv_config_to_json(parse_ok("k8v8-fp8"));
  j["layers"] = {{{"k_bits", 8}, {"v_bits", 8}}, {{"k_bits", 4}, {"v_bits", 8}}};
  auto bad = kv_config_from_json(j, "cfg.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("layers[1].k_bits"), std::string::npos) << bad.status().message();
  EXPECT_FALSE(kv_config_from_json(nlohmann::json{{"format", "other"}}, "cfg.json").ok());
  std::filesystem::remove(path);
}

// Fields of the wrong type are errors, not exceptions (fuzz_kv_config found
// "version": [...] aborting on nlohmann's type_error).
TEST(KvSpec, ConfigFileFieldsOfTheWrongTypeAreErrors) {
  const nlohmann::json cases[] = {
      nlohmann::json::parse(R"({"format": "lowbit-kv-config", "version": [{"k": [-0, -0.3, 0.3, 1]}]})"),
      nlohmann::json::parse(R"({"format": 7, "version": 1, "spec": "k4v4"})"),
      nlohmann::json::parse(R"({"format": "lowbit-kv-config", "version": "1", "spec": "k4v4"})"),
      nlohmann::json::parse(
          R"({"format": "lowbit-kv-config", "version": 1, "spec": "k4v4", "layers": [{"k_bits": 1099511627780, "v_bits": 4}]})"),
  };
  for (const nlohmann::json& j : cases) {
    auto spec = kv_config_from_json(j, "kv.json");
    ASSERT_FALSE(spec.ok()) << j.dump();
    EXPECT_EQ(spec.status().message().rfind("kv.json: ", 0), 0u) << spec.status().message();
  }
}

}  // namespace
}  // namespace lowbit
