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
    EXPECT_TRUE(get(load_recipe(name)->needs_calibration(c))) << name;
  }
  for (const char* name : {"fp32", "bf16", "w8", "w4g128-rtn", "w4g128-easyquant", "w3g128-rtn", "nvfp4", "mxfp4"}) {
    EXPECT_FALSE(get(load_recipe(name)->needs_calibration(c))) << name;
  }
  // A rule naming one layer decides for the whole model.
  const Recipe r = parse_ok(R"({"name": "x", "rules": [{"match": "^layers\\.29\\.down_proj$", "method": "gptq",
                                "format": "int4_g128"}], "default": {"method": "rtn", "format": "int4_g128"}})");
  EXPECT_TRUE(get(r.needs_calibration(c)));
  ModelConfig shallow = c;
  shallow.n_layers = 29;
  EXPECT_FALSE(get(r.needs_calibration(shallow)));
}

TEST(Recipe, FirstMatchingRuleWinsThenDefault) {
  const Recipe r = parse_ok(R"({"name": "mixed",
      "rules": [{"match": "down_proj", "method": "rtn", "format": "int8_pc"},
                {"match": "^layers\\.0\\.", "method": "gptq", "format": "int3_g128",
                 "options": {"damp": 0.1, "act_order": true, "lorc_rank": 4, "lorc_format": "fp16"}},
                {"match": "^lm_head$", "method": "rtn", "format": "int8_pc"}],
      "default": {"method": "rtn", "format": "int4_g128_asym", "options": {"search": "mse"}}})");
  EXPECT_EQ(get(r.rule_for("layers.0.down_proj"))->index, 0);  // rule 0 before rule 1
  EXPECT_EQ(get(r.rule_for("layers.0.q_proj"))->index, 1);
  EXPECT_EQ(get(r.rule_for("layers.0.q_proj"))->method, QuantMethod::kGptq);
  EXPECT_FLOAT_EQ(get(r.rule_for("layers.0.q_proj"))->options.damp, 0.1f);
  EXPECT_TRUE(get(r.rule_for("layers.0.q_proj"))->options.act_order);
  EXPECT_EQ(get(r.rule_for("layers.0.q_proj"))->options.lorc_rank, 4);
  EXPECT_EQ(get(r.rule_for("layers.10.q_proj"))->index, -1);  // "^layers\.0\." does not match layer 10
  EXPECT_EQ(get(r.rule_for("layers.10.q_proj"))->format, "int4_g128_asym");
  EXPECT_EQ(get(r.rule_for("layers.10.q_proj"))->options.search, ScaleSearch::kMseClip);
  EXPECT_EQ(get(r.rule_for("lm_head"))->format, "int8_pc");
  // Not named: the embedding keeps FP16, not the default.
  EXPECT_TRUE(get(r.rule_for("token_embedding"))->implicit);
  EXPECT_EQ(get(r.rule_for("token_embedding"))->format, "fp16");
  EXPECT_EQ(get(r.rule_for("token_embedding"))->method, QuantMethod::kNone);
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
  EXPECT_NE(parse_error(R"({"name": "x", "default": {"method": "awq", "format": "int4_g128",
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

TEST(Recipe, GgufTypesParseWithTheirMethodsAndFallbacks) {
  const Recipe r = parse_ok(R"({"name": "gguf",
      "rules": [{"match": "v_proj|down_proj", "method": "gptq", "format": "q6_K", "fallback": ["q8_0", "fp16"]},
                {"match": "^(token_embedding|lm_head)$", "method": "rtn", "format": "q8_0"},
                {"match": "o_proj", "method": "awq", "format": "q4_0"}],
      "default": {"method": "gptq", "format": "q4_K", "fallback": "q5_0", "options": {"importance": true}}})");
  EXPECT_EQ(get(r.rule_for("layers.3.v_proj"))->format, "q6_K");
  EXPECT_EQ(get(r.rule_for("layers.3.v_proj"))->fallback, (std::vector<std::string>{"q8_0", "fp16"}));
  EXPECT_EQ(get(r.rule_for("layers.3.q_proj"))->fallback, std::vector<std::string>{"q5_0"});
  EXPECT_TRUE(get(r.rule_for("layers.3.q_proj"))->options.importance);  // gptq: weighted header search
  EXPECT_TRUE(get(r.rule_for("token_embedding"))->fallback.empty());
  EXPECT_EQ(get(r.rule_for("lm_head"))->format, "q8_0");
  for (const char* name : {"q8_0-rtn", "q4_0-gptq", "q4_0-awq", "q4_K-gptq"}) EXPECT_TRUE(load_recipe(name).ok()) << name;
  const ModelConfig c = smollm2_135m_config();
  EXPECT_FALSE(get(load_recipe("q8_0-rtn")->needs_calibration(c)));
  EXPECT_TRUE(get(load_recipe("q4_K-gptq")->needs_calibration(c)));
}

TEST(Recipe, ResolveRuleTakesTheFirstFallbackThatHoldsTheShape) {
  const Recipe r = get(load_recipe("q4_K-gptq"));
  // SmolLM2: 576-wide inputs are not whole 256-blocks; 1536-wide ones are.
  const QuantRule q = get(resolve_rule(*get(r.rule_for("layers.0.q_proj")), "layers.0.q_proj", 576, 576));
  EXPECT_EQ(q.format, "q5_0");
  EXPECT_EQ(q.fallback_from, "q4_K");
  EXPECT_EQ(q.method, QuantMethod::kGptq);
  const QuantRule down = get(resolve_rule(*get(r.rule_for("layers.0.down_proj")), "layers.0.down_proj", 576, 1536));
  EXPECT_EQ(down.format, "q6_K");
  EXPECT_TRUE(down.fallback_from.empty());
  EXPECT_EQ(get(resolve_rule(*get(r.rule_for("layers.0.v_proj")), "layers.0.v_proj", 192, 576)).format, "q8_0");
  // stories260K's 172-wide down_proj: no 32-block type holds it; the last fallback is FP16, stored as is.
  const QuantRule odd = get(resolve_rule(*get(r.rule_for("layers.0.down_proj")), "layers.0.down_proj", 64, 172));
  EXPECT_EQ(odd.format, "fp16");
  EXPECT_EQ(odd.fallback_from, "q6_K");
  EXPECT_EQ(odd.method, QuantMethod::kNone);
  // Without a fallback the error names the tensor, the type and the shape, on one line.
  const Recipe strict = parse_ok(R"({"name": "strict", "default": {"method": "gptq", "format": "q4_K"}})");
  auto e = resolve_rule(*get(strict.rule_for("layers.4.o_proj")), "layers.4.o_proj", 576, 576);
  ASSERT_FALSE(e.ok());
  for (const char* part : {"layers.4.o_proj", "q4_K", "[576, 576]", "fallback"}) {
    EXPECT_NE(e.status().message().find(part), std::string::npos) << part << ": " << e.status().message();
  }
  EXPECT_EQ(e.status().message().find('\n'), std::string::npos);
  const Recipe short_list = parse_ok(R"({"name": "s", "default": {"method": "gptq", "format": "q4_K", "fallback": "q5_0"}})");
  auto none_fits = resolve_rule(short_list.default_rule, "layers.0.q_proj", 64, 100);  // q5_0 needs 32 | cols
  ASSERT_FALSE(none_fits.ok());
  EXPECT_NE(none_fits.status().message().find("q5_0"), std::string::npos) << none_fits.status().message();
}

TEST(Recipe, GgufBitsPerWeightOnSmolLM2) {
  // Q4_K 144 bytes per 256 (4.5 bpw), Q5_0 22 per 32 (5.5), Q6_K 210 per 256 (6.5625),
  // Q8_0 34 per 32 (8.5); SmolLM2's 576-wide inputs fall back (q4_K -> q5_0, q6_K -> q8_0).
  auto bpw = [](const char* format, int64_t rows, int64_t cols) {
    QuantRule rule;
    rule.method = QuantMethod::kRtn;
    rule.format = format;
    return get(rule_bits_per_weight(rule, rows, cols));
  };
  EXPECT_DOUBLE_EQ(bpw("q4_K", 576, 1536), 4.5);
  EXPECT_DOUBLE_EQ(bpw("q5_0", 576, 576), 5.5);
  EXPECT_DOUBLE_EQ(bpw("q6_K", 576, 1536), 6.5625);
  EXPECT_DOUBLE_EQ(bpw("q8_0", 49152, 576), 8.5);
  const RecipeSize size = get(recipe_size(get(load_recipe("q4_K-gptq")), smollm2_135m_config()));
  // Per layer: q, o, gate, up q5_0; k q5_0; v q8_0; down q6_K.
  const double bits = 5.5 * (576.0 * 576 * 2 + 1536.0 * 576 * 2 + 192.0 * 576) + 8.5 * 192.0 * 576 +
                      6.5625 * 576.0 * 1536;
  const double params = 576.0 * 576 * 2 + 1536.0 * 576 * 3 + 192.0 * 576 * 2;
  EXPECT_NEAR(size.linear_bpw, bits / params, 1e-12);
}

TEST(Recipe, GgufCombinationsThatCannotWorkAreRefused) {
  auto expect_error = [](const std::string& text, std::initializer_list<const char*> parts) {
    const std::string e = parse_error(text);
    for (const char* part : parts) EXPECT_NE(e.find(part), std::string::npos) << part << ": " << e;
  };
  expect_error(R"({"name": "x", "default": {"method": "easyquant", "format": "q4_0"}})", {"easyquant", "q4_0"});
  expect_error(R"({"name": "x", "default": {"method": "easyquant", "format": "int4_g128", "fallback": "q4_0"}})",
               {"easyquant", "q4_0"});
  expect_error(R"({"name": "x", "default": {"method": "rtn", "format": "q4_K", "fallback": "q4_L"}})",
               {"fallback", "q4_L"});
  expect_error(R"({"name": "x", "default": {"method": "rtn", "format": "q4_K", "fallback": []}})", {"fallback"});
  expect_error(R"({"name": "x", "default": {"method": "rtn", "format": "q4_K", "fallback": "q4_K"}})",
               {"fallback", "q4_K"});
  expect_error(R"({"name": "x", "default": {"method": "none", "format": "fp16", "fallback": "bf16"}})",
               {"fallback", "none"});
  expect_error(R"({"name": "x", "default": {"method": "none", "format": "q8_0"}})", {"none", "q8_0"});
  // token_embedding is data-free; lm_head may weight RTN by its input's importance.
  expect_error(R"({"name": "x", "rules": [{"match": "^token_embedding$", "method": "rtn", "format": "q8_0",
                   "options": {"importance": true}}], "default": {"method": "rtn", "format": "q4_0"}})",
               {"token_embedding", "importance"});
  expect_error(R"({"name": "x", "rules": [{"match": "^lm_head$", "method": "gptq", "format": "q8_0"}],
                   "default": {"method": "rtn", "format": "q4_0"}})",
               {"lm_head", "gptq"});
  const Recipe head = parse_ok(R"({"name": "x", "rules": [{"match": "^lm_head$", "method": "rtn", "format": "q6_K",
                                   "options": {"importance": true}}], "default": {"method": "rtn", "format": "q4_0"}})");
  ModelConfig untied = smollm2_135m_config();
  untied.tied_embeddings = false;
  EXPECT_TRUE(get(head.needs_calibration(untied)));
  EXPECT_FALSE(get(head.needs_calibration(smollm2_135m_config())));  // tied: the head is the embedding
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
