// Recipes: the built-in table, rule resolution (first match wins, default,
// implicit FP16 for lm_head / token_embedding), bits per weight on known shapes,
// and errors that name the recipe and the rule.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "model_writers.h"
#include "pipeline/recipe.h"
#include "test_quantize_util.h"

namespace lowbit {
namespace {

using json = nlohmann::json;

Recipe parse_ok(const std::string& text) {
  auto r = parse_recipe(json::parse(text), "test.json");
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? std::move(r).value() : Recipe();
}

using testing::get;

std::string parse_error(const std::string& text) {
  auto r = parse_recipe(json::parse(text), "bad.json");
  EXPECT_FALSE(r.ok()) << "accepted: " << text;
  return r.ok() ? std::string() : r.status().message();
}

TEST(Recipe, BuiltinsParseAndCoverTheIssueList) {
  std::set<std::string> names;
  for (const BuiltinRecipe& b : builtin_recipes()) {
    auto r = load_recipe(b.name);
    ASSERT_TRUE(r.ok()) << b.name << ": " << r.status().message();
    EXPECT_EQ(r->name, b.name);
    EXPECT_FALSE(r->description.empty()) << b.name;
    names.insert(b.name);
  }
  for (const char* required : {"fp32", "bf16", "w8", "w4g128-rtn", "w4g128-gptq", "w4g128-awq", "w4g128-easyquant",
                               "w3g128-rtn", "w3g128-gptq", "w3g128-gptq-lorc", "w2g64-gptq", "nvfp4", "mxfp4"}) {
    EXPECT_EQ(names.count(required), 1u) << required;
  }
}

TEST(Recipe, CalibrationNeedFollowsTheMethod) {
  const ModelConfig c = smollm2_135m_config();
  for (const char* name : {"w4g128-gptq", "w4g128-awq", "w3g128-gptq", "w3g128-gptq-lorc", "w2g64-gptq"}) {
    EXPECT_TRUE(load_recipe(name)->needs_calibration(c)) << name;
  }
  for (const char* name : {"fp32", "bf16", "w8", "w4g128-rtn", "w4g128-easyquant", "w3g128-rtn", "nvfp4", "mxfp4"}) {
    EXPECT_FALSE(load_recipe(name)->needs_calibration(c)) << name;
  }
  // A rule naming one layer decides for the whole model.
  const Recipe r = parse_ok(R"({"name": "x", "rules": [{"match": "^layers\\.29\\.down_proj$", "method": "gptq",
                                "format": "int4_g128"}], "default": {"method": "rtn", "format": "int4_g128"}})");
  EXPECT_TRUE(r.needs_calibration(c));
  ModelConfig shallow = c;
  shallow.n_layers = 29;
  EXPECT_FALSE(r.needs_calibration(shallow));
}

TEST(Recipe, FirstMatchingRuleWinsThenDefault) {
  const Recipe r = parse_ok(R"({"name": "mixed",
      "rules": [{"match": "down_proj", "method": "rtn", "format": "int8_pc"},
                {"match": "^layers\\.0\\.", "method": "gptq", "format": "int3_g128",
                 "options": {"damp": 0.1, "act_order": true, "lorc_rank": 4, "lorc_format": "fp16"}},
                {"match": "^lm_head$", "method": "rtn", "format": "int8_pc"}],
      "default": {"method": "rtn", "format": "int4_g128_asym", "options": {"search": "mse"}}})");
  EXPECT_EQ(r.rule_for("layers.0.down_proj").index, 0);  // rule 0 before rule 1
  EXPECT_EQ(r.rule_for("layers.0.q_proj").index, 1);
  EXPECT_EQ(r.rule_for("layers.0.q_proj").method, QuantMethod::kGptq);
  EXPECT_FLOAT_EQ(r.rule_for("layers.0.q_proj").options.damp, 0.1f);
  EXPECT_TRUE(r.rule_for("layers.0.q_proj").options.act_order);
  EXPECT_EQ(r.rule_for("layers.0.q_proj").options.lorc_rank, 4);
  EXPECT_EQ(r.rule_for("layers.10.q_proj").index, -1);  // "^layers\.0\." does not match layer 10
  EXPECT_EQ(r.rule_for("layers.10.q_proj").format, "int4_g128_asym");
  EXPECT_EQ(r.rule_for("layers.10.q_proj").options.search, ScaleSearch::kMseClip);
  EXPECT_EQ(r.rule_for("lm_head").format, "int8_pc");
  // Not named: the embedding keeps FP16, not the default.
  EXPECT_TRUE(r.rule_for("token_embedding").implicit);
  EXPECT_EQ(r.rule_for("token_embedding").format, "fp16");
  EXPECT_EQ(r.rule_for("token_embedding").method, QuantMethod::kNone);
}

TEST(Recipe, BitsPerWeightOnKnownShapes) {
  // int4_g128_asym: 4-bit codes + FP16 scale and minimum per group of 128 (partial last group).
  const Recipe r = get(load_recipe("w4g128-rtn"));
  auto bpw = [&](int64_t rows, int64_t cols) { return get(rule_bits_per_weight(r.default_rule, rows, cols)); };
  EXPECT_DOUBLE_EQ(bpw(576, 576), 8.0 * (288 + 5 * 4) / 576);  // 576 = 4 full groups + 64
  EXPECT_DOUBLE_EQ(bpw(576, 1536), 8.0 * (768 + 12 * 4) / 1536);
  EXPECT_DOUBLE_EQ(bpw(64, 64), 8.0 * (32 + 4) / 64);  // stories260K: one partial group of 64
  // SmolLM2-135M: q,o [576,576], k,v [192,576], gate,up [1536,576], down [576,1536].
  const double cols576 = 576.0 * 576 * 2 + 192.0 * 576 * 2 + 1536.0 * 576 * 2;
  const double cols1536 = 576.0 * 1536;
  const double expected = (cols576 * bpw(576, 576) + cols1536 * bpw(576, 1536)) / (cols576 + cols1536);
  const RecipeSize size = get(recipe_size(r, smollm2_135m_config()));
  EXPECT_NEAR(size.linear_bpw, expected, 1e-12);
  EXPECT_NEAR(get(recipe_size(get(load_recipe("fp32")), smollm2_135m_config())).model_bpw, 32.0, 1e-12);
  // LoRC rank 8 with INT8 per-row factors: U [576, 8] and V [8, 576] add their own bits.
  const Recipe lorc = get(load_recipe("w3g128-gptq-lorc"));
  const double base = get(rule_bits_per_weight(get(load_recipe("w3g128-gptq")).default_rule, 576, 576));
  const double u_bits = 576.0 * (8 * 8 + 32);  // per row: 8 INT8 codes + FP32 scale
  const double v_bits = 8.0 * (576 * 8 + 32);
  EXPECT_NEAR(get(rule_bits_per_weight(lorc.default_rule, 576, 576)), base + (u_bits + v_bits) / (576.0 * 576), 1e-12);
}

TEST(Recipe, ErrorsNameTheRecipeAndTheRule) {
  const std::string tail = R"(, "default": {"method": "rtn", "format": "int4_g128"}})";
  std::string e = parse_error(R"({"name": "x", "rules": [{"match": "q_proj", "method": "rtn", "format": "int4_g128"},
                                  {"match": "([", "method": "rtn", "format": "int4_g128"}])" +
                              tail);
  EXPECT_NE(e.find("bad.json"), std::string::npos) << e;
  EXPECT_NE(e.find("rule 1"), std::string::npos) << e;
  EXPECT_NE(e.find("regex"), std::string::npos) << e;

  e = parse_error(R"({"name": "x", "rules": [{"match": "q", "method": "rtn", "format": "int5_g7"}])" + tail);
  EXPECT_NE(e.find("rule 0"), std::string::npos) << e;
  EXPECT_NE(e.find("int5_g7"), std::string::npos) << e;

  e = parse_error(R"({"name": "x", "rules": [{"match": "q", "method": "smoothquant", "format": "int4_g128"}])" + tail);
  EXPECT_NE(e.find("rule 0"), std::string::npos) << e;
  EXPECT_NE(e.find("smoothquant"), std::string::npos) << e;

  e = parse_error(R"({"name": "x", "default": {"method": "gptq", "format": "int4_g128", "options": {"dmap": 0.1}}})");
  EXPECT_NE(e.find("default"), std::string::npos) << e;
  EXPECT_NE(e.find("dmap"), std::string::npos) << e;

  e = parse_error(R"({"name": "x", "default": {"method": "gptq", "format": "int4_g128", "options": {"damp": 0}}})");
  EXPECT_NE(e.find("damp"), std::string::npos) << e;
  e = parse_error(R"({"name": "x", "default": {"method": "gptq", "format": "int4_g128",
                      "options": {"block_size": 1.5}}})");
  EXPECT_NE(e.find("block_size"), std::string::npos) << e;
  e = parse_error(R"({"name": "x", "default": {"method": "easyquant", "format": "int4_g128",
                      "options": {"outlier_fraction": 0.9}}})");
  EXPECT_NE(e.find("outlier_fraction"), std::string::npos) << e;

  // Method/format combinations.
  EXPECT_NE(parse_error(R"({"name": "x", "default": {"method": "none", "format": "int4_g128"}})").find("none"),
            std::string::npos);
  EXPECT_NE(parse_error(R"({"name": "x", "default": {"method": "rtn", "format": "fp32"}})").find("fp32"),
            std::string::npos);
  EXPECT_NE(parse_error(R"({"name": "x", "default": {"method": "gptq", "format": "int4_g128",
                            "options": {"importance": true}}})")
                .find("importance"),
            std::string::npos);
  // lm_head takes data-free methods only.
  e = parse_error(R"({"name": "x", "rules": [{"match": "head", "method": "gptq", "format": "int4_g128"}])" + tail);
  EXPECT_NE(e.find("lm_head"), std::string::npos) << e;
  EXPECT_NE(e.find("rule 0"), std::string::npos) << e;
  // Structure.
  EXPECT_NE(parse_error(R"({"name": "x"})").find("default"), std::string::npos);
  EXPECT_NE(parse_error(R"({"name": "x", "defualt": {}})").find("defualt"), std::string::npos);
  EXPECT_NE(parse_error(R"({"default": {"method": "rtn", "format": "int4_g128"}})").find("name"), std::string::npos);
  EXPECT_NE(parse_error(R"({"name": "x", "rules": [{"method": "rtn", "format": "int4_g128"}])" + tail).find("match"),
            std::string::npos);
}

TEST(Recipe, LoadsFilesAndNamesBadOnes) {
  testing::ScopedTempDir dir("recipe");
  const std::string good = dir.file("good.json");
  std::ofstream(good) << R"({"name": "mine", "default": {"method": "rtn", "format": "nvfp4"}})";
  auto r = load_recipe(good);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->name, "mine");
  EXPECT_EQ(r->source, good);

  const std::string broken = dir.file("broken.json");
  std::ofstream(broken) << R"({"name": "mine", "default": )";
  r = load_recipe(broken);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(broken), std::string::npos) << r.status().message();

  r = load_recipe("w5g17-magic");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("w5g17-magic"), std::string::npos);
  EXPECT_NE(r.status().message().find("built-in"), std::string::npos);
}

}  // namespace
}  // namespace lowbit
