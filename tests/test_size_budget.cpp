// Size-budget allocation (issue 15): the menu, the recipe a choice writes, the
// budget's range, the forward-only KLD probe, and on stories260K the whole path:
// a budget equal to the uniform w4g128-gptq file's size gives a model no larger
// with a lower KL divergence, stored to the byte, that its recipe reproduces bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "core/mapped_file.h"
#include "eval/perplexity.h"
#include "model/model_source.h"
#include "model/runtime_model.h"
#include "model_writers.h"
#include "pipeline/kld_probe.h"
#include "pipeline/size_budget.h"
#include "test_quantize_util.h"
#include "test_util.h"

namespace lowbit {
namespace {

using json = nlohmann::json;
using testing::get;

TEST(SizeMenu, BuiltinMenusParseAndEndWithFp16) {
  for (const std::string& name : builtin_size_menu_names()) {
    const SizeMenu menu = get(load_size_menu(name));
    ASSERT_FALSE(menu.candidates.empty()) << name;
    EXPECT_EQ(menu.candidates.back().name, "fp16") << name;
  }
  EXPECT_EQ(get(load_size_menu("gguf")).candidates.size(), 12u);
}

TEST(SizeMenu, GgufRtnOffersTheGgufTypesByRoundToNearest) {
  const SizeMenu gptq = get(load_size_menu("gguf"));
  const SizeMenu rtn = get(load_size_menu("gguf-rtn"));
  ASSERT_EQ(rtn.candidates.size(), gptq.candidates.size());
  for (size_t i = 0; i + 1 < rtn.candidates.size(); ++i) {
    EXPECT_EQ(rtn.candidates[i].name, gptq.candidates[i].name);
    EXPECT_EQ(rtn.candidates[i].rule.format, gptq.candidates[i].rule.format);
    EXPECT_EQ(rtn.candidates[i].rule.method, QuantMethod::kRtn) << rtn.candidates[i].name;
    EXPECT_EQ(gptq.candidates[i].rule.method, QuantMethod::kGptq) << gptq.candidates[i].name;
  }
}

TEST(SizeMenu, RefusesWhatCannotBeAllocatedPerTensor) {
  auto awq = parse_size_menu(json::parse(R"({"candidates": [{"method": "awq", "format": "int4_g128"}]})"), "m.json");
  ASSERT_FALSE(awq.ok());
  EXPECT_NE(awq.status().message().find("awq cannot be allocated per tensor"), std::string::npos)
      << awq.status().message();
  auto match = parse_size_menu(json::parse(R"({"candidates": [{"match": "x", "method": "rtn", "format": "q4_0"}]})"), "m");
  EXPECT_FALSE(match.ok());
  auto key = parse_size_menu(json::parse(R"({"candidates": [], "extra": 1})"), "m");
  ASSERT_FALSE(key.ok());
  EXPECT_NE(key.status().message().find("unknown key 'extra'"), std::string::npos);
  auto twice = parse_size_menu(
      json::parse(R"({"candidates": [{"method": "rtn", "format": "q4_0"}, {"method": "gptq", "format": "q4_0"}]})"), "m");
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.status().message().find("appears twice"), std::string::npos);
}

TEST(SizeMenu, CandidateRulesFollowShapesAndTables) {
  const SizeMenu menu = get(load_size_menu("gguf"));
  const MenuCandidate* q4k = nullptr;
  for (const MenuCandidate& c : menu.candidates) {
    if (c.name == "q4_K") q4k = &c;
  }
  ASSERT_NE(q4k, nullptr);
  // K types need rows of 256: SmolLM2's 576-wide inputs cannot take q4_K, its 1536-wide can.
  EXPECT_FALSE(get(candidate_rule(*q4k, "layers.0.q_proj", 576, 576, true)).has_value());
  const auto down = get(candidate_rule(*q4k, "layers.0.down_proj", 576, 1536, true));
  ASSERT_TRUE(down.has_value());
  EXPECT_EQ(down->method, QuantMethod::kGptq);
  // The tables take RTN: the embedding data-free, the head weighted by importance.
  const auto emb = get(candidate_rule(*q4k, "token_embedding", 49152, 1536, true));
  ASSERT_TRUE(emb.has_value());
  EXPECT_EQ(emb->method, QuantMethod::kRtn);
  EXPECT_FALSE(emb->options.importance);
  const auto head = get(candidate_rule(*q4k, "lm_head", 49152, 1536, true));
  ASSERT_TRUE(head.has_value());
  EXPECT_TRUE(head->options.importance);
  EXPECT_FALSE(candidate_rule(*q4k, "layers.0.down_proj", 576, 1536, false).ok());  // GPTQ without calibration
}

TEST(SizeMenu, RuleJsonParsesBackToTheSameRule) {
  const SizeMenu menu = get(load_size_menu("all"));
  json rules = json::array();
  std::vector<QuantRule> want;
  for (size_t k = 0; k < menu.candidates.size(); ++k) {
    const std::string name = fmt::format("layers.{}.up_proj", k);
    const auto rule = get(candidate_rule(menu.candidates[k], name, 1536, 512, true));
    ASSERT_TRUE(rule.has_value()) << menu.candidates[k].name;
    want.push_back(*rule);
    rules.push_back(candidate_rule_json(*rule, name));
  }
  const Recipe recipe = get(parse_recipe(json{{"name", "r"}, {"rules", rules}, {"default", {{"method", "none"}, {"format", "fp16"}}}}, "t"));
  for (size_t k = 0; k < want.size(); ++k) {
    const QuantRule& got = *get(recipe.rule_for(fmt::format("layers.{}.up_proj", k)));
    EXPECT_EQ(got.method, want[k].method) << k;
    EXPECT_EQ(got.format, want[k].format) << k;
    EXPECT_EQ(got.options.importance, want[k].options.importance) << k;
    EXPECT_EQ(got.options.damp, want[k].options.damp) << k;
    EXPECT_EQ(got.options.search, want[k].options.search) << k;
  }
  // The anchors keep layers.1 from matching layers.10.
  EXPECT_EQ(get(recipe.rule_for("layers.1.up_proj"))->format, want[1].format);
  EXPECT_EQ(get(recipe.rule_for("layers.10.up_proj"))->format, want[10].format);
}

// A table by hand: two tensors, three and two candidates, 100 fixed bytes.
SensitivityTable small_table() {
  SensitivityTable t;
  t.menu = "hand";
  t.fixed_bytes = 100;
  t.params = 1000;
  t.fp16_bytes = 2100;
  auto tensor = [](const std::string& name, std::vector<std::pair<uint64_t, double>> costs) {
    TensorSensitivity s;
    s.name = name;
    int k = 0;
    for (auto [bytes, kld] : costs) {
      CandidateCost c;
      c.candidate = k++;
      c.rule.method = QuantMethod::kNone;
      c.rule.format = "fp16";
      c.bytes = bytes;
      c.predicted_kld = kld;
      s.costs.push_back(c);
    }
    return s;
  };
  t.tensors.push_back(tensor("layers.0.q_proj", {{100, 0.5}, {200, 0.1}, {400, 0.0}}));
  t.tensors.push_back(tensor("layers.0.k_proj", {{50, 0.3}, {300, 0.0}}));
  return t;
}

TEST(SizeBudget, RangeAndRefusals) {
  const SensitivityTable t = small_table();
  const BudgetRange r = budget_range(t);
  EXPECT_EQ(r.min_bytes, 250u);
  EXPECT_EQ(r.max_bytes, 2100u);
  EXPECT_DOUBLE_EQ(r.min_bpw, 2.0);
  EXPECT_EQ(get(budget_bytes(t, 0.0004, std::nullopt)), 400u);
  EXPECT_EQ(get(budget_bytes(t, std::nullopt, 4.0)), 500u);  // 4 bits x 1000 parameters
  auto low = budget_bytes(t, 0.0002, std::nullopt);
  ASSERT_FALSE(low.ok());
  EXPECT_NE(low.status().message().find("--target-size 0.0002: below the smallest model"), std::string::npos);
  EXPECT_NE(low.status().message().find("0.000-0.002 MB, 2.000-16.800 bits per weight"), std::string::npos)
      << low.status().message();
  auto high = budget_bytes(t, std::nullopt, 17.0);
  ASSERT_FALSE(high.ok());
  EXPECT_NE(high.status().message().find("above the FP16 model"), std::string::npos);
  EXPECT_FALSE(budget_bytes(t, 1.0, 4.0).ok());
  EXPECT_FALSE(budget_bytes(t, std::nullopt, std::nullopt).ok());
  EXPECT_FALSE(budget_bytes(t, -1.0, std::nullopt).ok());
}

TEST(SizeBudget, AllocationMeetsTheBudgetAndMinimisesThePrediction) {
  const SensitivityTable t = small_table();
  const SizeMenu menu = get(load_size_menu("gguf"));
  // 100 fixed + 350: q_proj 100 + k_proj 50 = 150 (0.8), 200 + 50 = 250 (0.4), 100 + 300 = 400 (too big).
  const BudgetAllocation a = get(allocate_budget(t, menu, 450, "b"));
  EXPECT_EQ(a.bytes, 350u);
  EXPECT_DOUBLE_EQ(a.predicted_kld, 0.4);
  EXPECT_EQ(a.choice, (std::vector<int>{1, 0}));
  const BudgetAllocation b = get(allocate_budget(t, menu, 700, "b"));  // 200 + 300 = 500 + 100 (0.1) beats 400 + 50 + 100 (0.3)
  EXPECT_EQ(b.bytes, 600u);
  EXPECT_DOUBLE_EQ(b.predicted_kld, 0.1);
  EXPECT_EQ(b.recipe["rules"].size(), 2u);
  EXPECT_EQ(b.recipe["rules"][0]["match"], "^layers\\.0\\.q_proj$");
}

TEST(SizeBudget, UniformChoiceFallsForwardInMenuOrder) {
  const SizeMenu menu = get(load_size_menu("gguf"));
  SensitivityTable t;
  for (const auto& [name, cols] : {std::pair{"layers.0.q_proj", 576}, {"layers.0.down_proj", 1536}}) {
    TensorSensitivity s;
    s.name = name;
    for (size_t k = 0; k < menu.candidates.size(); ++k) {
      const auto rule = get(candidate_rule(menu.candidates[k], name, 576, cols, true));
      if (!rule) continue;
      CandidateCost c;
      c.candidate = static_cast<int>(k);
      c.rule = *rule;
      s.costs.push_back(c);
    }
    t.tensors.push_back(s);
  }
  const std::vector<int> choice = get(uniform_choice(t, menu, "q4_K"));
  EXPECT_EQ(t.tensors[0].costs[choice[0]].rule.format, "q5_0");  // 576 wide: the next that holds it
  EXPECT_EQ(t.tensors[1].costs[choice[1]].rule.format, "q4_K");
  EXPECT_FALSE(uniform_choice(t, menu, "q9_9").ok());
}

class SizeBudgetStories : public testing::StoriesPipelineTest {
 protected:
  double kld(const std::string& path) {
    auto base_source = get(open_model_source(model_, {}));
    LlamaModel base = get(build_runtime_model(*base_source));
    auto source = get(open_model_source(path, {}));
    LlamaModel model = get(build_runtime_model(*source));
    auto tok = get(base_source->tokenizer());
    const std::vector<int32_t> tokens = tok->encode(get(read_text_file(text_)));
    PplOptions o;
    o.ctx = 128;
    o.max_chunks = 16;
    o.bos_id = tok->bos_id();
    ThreadPool pool(2);
    return get(evaluate_perplexity(model, tokens, o, pool, &base)).kld_mean;
  }
  static uint64_t stored_bytes(const std::string& path) {
    auto source = get(open_model_source(path, {}));
    uint64_t bytes = 0;
    for (const StoredTensor& t : source->summary().tensors) bytes += t.n_bytes;
    return bytes;
  }
};

TEST_F(SizeBudgetStories, KldProbeIsZeroAtTheBaseAndQuadraticNearIt) {
  auto source = get(open_model_source(model_, {}));
  const ModelConfig& c = source->config();
  ModelWeights w;
  w.token_embedding = get(source->token_embedding());
  for (int l = 0; l < c.n_layers; ++l) w.layers.push_back(get(source->layer(l)));
  w.output_norm = get(source->output_norm());
  if (!c.tied_embeddings) w.lm_head = get(source->lm_head());
  std::vector<int32_t> tokens(2 * 32);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 37 + 11) % c.vocab_size);
  ThreadPool pool(2);
  auto probe = get(KldProbe::create(c, std::move(w), tokens, 2, 32, pool));
  const Matrix* m = get(probe->weight("layers.2.up_proj"));
  // Unchanged weights give zero up to the base log-probabilities stored as floats:
  // |Σ p δ| ≤ max|δ| ≤ 2^-24 · max|log p|, below 1e-6 while log p > -16.
  EXPECT_LE(std::fabs(get(probe->kld_with({{"layers.2.up_proj", m->data.data()}}))), 1e-6);
  // KLD(w + t·d) = ½ t² dᵀFd + O(t³): doubling t multiplies it by 4 up to O(t).
  std::mt19937 rng(5);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> d(m->data.size());
  double rms = 0.0;
  for (float v : m->data) rms += static_cast<double>(v) * v;
  rms = std::sqrt(rms / static_cast<double>(m->data.size()));
  for (float& v : d) v = n(rng) * static_cast<float>(rms);
  auto at = [&](double t) {
    std::vector<float> x = m->data;
    for (size_t i = 0; i < x.size(); ++i) x[i] += static_cast<float>(t) * d[i];
    return get(probe->kld_with({{"layers.2.up_proj", x.data()}}));
  };
  const double k1 = at(0.01), k2 = at(0.02);
  EXPECT_GT(k1, 0.0);
  EXPECT_NEAR(k2 / k1, 4.0, 0.2) << k1 << " " << k2;
  EXPECT_FALSE(probe->kld_with({{"layers.99.up_proj", m->data.data()}}).ok());
}

TEST_F(SizeBudgetStories, BudgetOfTheUniformFileBeatsItAndItsRecipeReproducesIt) {
  const testing::ScopedTempDir dir("size_budget");
  const std::string uniform = dir.file("uniform.lowbit");
  get(quantize_model(get(load_recipe("w4g128-gptq")), pipeline_options(uniform)));
  const uint64_t target = stored_bytes(uniform);

  const SizeMenu menu = get(load_size_menu("all"));
  SensitivityOptions so;
  so.mode = SensitivityMode::kHutchinson;
  so.kld_len = 64;
  const SensitivityTable table = get(measure_sensitivity(menu, pipeline_options(""), so));
  for (const TensorSensitivity& t : table.tensors) {
    EXPECT_TRUE(std::isfinite(t.fisher_trace) && t.fisher_trace > 0.0) << t.name;
  }
  // The table read back from its JSON is the same table, and is refused for other calibration windows.
  const std::string table_path = dir.file("sensitivity.json");
  ASSERT_TRUE(write_file_atomic(table_path, table.to_json().dump()).ok());
  const SensitivityTable back = get(sensitivity_table(table_path, menu, pipeline_options(""), so));
  ASSERT_EQ(back.tensors.size(), table.tensors.size());
  for (size_t i = 0; i < table.tensors.size(); ++i) {
    ASSERT_EQ(back.tensors[i].costs.size(), table.tensors[i].costs.size());
    for (size_t k = 0; k < table.tensors[i].costs.size(); ++k) {
      EXPECT_EQ(back.tensors[i].costs[k].bytes, table.tensors[i].costs[k].bytes);
      EXPECT_EQ(back.tensors[i].costs[k].predicted_kld, table.tensors[i].costs[k].predicted_kld);
      EXPECT_EQ(back.tensors[i].costs[k].rule.format, table.tensors[i].costs[k].rule.format);
    }
  }
  PipelineOptions other = pipeline_options("");
  other.calibration.seed = 4;
  auto refused = sensitivity_table(table_path, menu, other, so);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("measured with calibration"), std::string::npos);
  EXPECT_FALSE(sensitivity_table(table_path, get(load_size_menu("gguf")), pipeline_options(""), so).ok());

  const BudgetAllocation a = get(allocate_budget(table, menu, target, "budget"));
  EXPECT_LE(a.bytes, target);
  const std::string allocated = dir.file("allocated.lowbit");
  get(quantize_model(get(parse_recipe(a.recipe, "allocation")), pipeline_options(allocated)));
  EXPECT_EQ(stored_bytes(allocated), a.bytes);  // the budget holds to the byte

  const double kld_uniform = kld(uniform), kld_allocated = kld(allocated);
  EXPECT_LT(kld_allocated, kld_uniform) << "allocated " << a.bytes << " B vs uniform " << target << " B";

  // The written recipe reproduces the file bit for bit.
  const std::string recipe_path = dir.file("budget.recipe.json");
  ASSERT_TRUE(write_file_atomic(recipe_path, a.recipe.dump(1)).ok());
  const std::string again = dir.file("again.lowbit");
  get(quantize_model(get(load_recipe(recipe_path)), pipeline_options(again)));
  EXPECT_EQ(get(read_text_file(again)), get(read_text_file(allocated)));
}

TEST_F(SizeBudgetStories, CliRefusesABudgetOutsideTheRangeWithoutWritingAFile) {
  const testing::ScopedTempDir dir("size_budget_cli");
  const std::string out = dir.file("x.lowbit");
  const std::string common = " --calib " + text_ + " --calib-samples 4 --calib-len 32 --no-progress -o " + out;
  auto r = testing::run_lowbit("quantize " + model_ + " --target-size 0.01 --sensitivity proxy" + common);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("lowbit: error: --target-size 0.01: below the smallest model menu gguf can make; "
                          "achievable: "),
            std::string::npos)
      << r.output;
  EXPECT_EQ(testing::count_lines(r.output), 1u) << r.output;
  r = testing::run_lowbit("quantize " + model_ + " --target-bpw 40 --sensitivity proxy" + common);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("above the FP16 model"), std::string::npos) << r.output;
  r = testing::run_lowbit("quantize " + model_ + " --target-bpw 4 --recipe w4g128-rtn" + common);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(out + ".tmp"));
}

TEST_F(SizeBudgetStories, CliWritesTheRecipeThatReproducesTheFile) {
  const testing::ScopedTempDir dir("size_budget_cli2");
  const std::string calib = " --calib " + text_ + " --calib-samples 4 --calib-len 32 --no-progress";
  auto r = testing::run_lowbit("quantize " + model_ + " --target-bpw 8 --menu gguf --sensitivity proxy" + calib + " -o " +
                               dir.file("a.lowbit") + " --recipe-out " + dir.file("a.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("predicted KLD"), std::string::npos);
  r = testing::run_lowbit("quantize " + model_ + " --recipe " + dir.file("a.json") + calib + " -o " + dir.file("b.lowbit"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(get(read_text_file(dir.file("a.lowbit"))), get(read_text_file(dir.file("b.lowbit"))));
}

}  // namespace
}  // namespace lowbit
