// The lowbit executable end to end: malformed inputs fail with one line and a
// non-zero exit code; bad flags are rejected; JSON reports carry the contract fields.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "test_util.h"

namespace {

using lowbit::testing::CommandResult;
using lowbit::testing::count_lines;
using lowbit::testing::run_lowbit;

std::string temp_file(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("lowbit_cli_test_" + std::to_string(getpid()) + "_" + name)).string();
}

TEST(Cli, EveryMalformedInputFailsWithOneLine) {
  const std::filesystem::path folder = lowbit::testing::source_path("tests/data/malformed");
  int cases = 0;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    if (entry.path().filename() == "valid") continue;
    const CommandResult r = run_lowbit("info '" + entry.path().string() + "'");
    EXPECT_EQ(r.exit_code, 1) << entry.path() << " was accepted or crashed:\n" << r.output;
    EXPECT_EQ(count_lines(r.output), 1u) << entry.path() << " printed:\n" << r.output;
    EXPECT_EQ(r.output.rfind("lowbit: error: ", 0), 0u) << r.output;
    EXPECT_NE(r.output.find(entry.path().filename().string()), std::string::npos)
        << "error does not name the file: " << r.output;
    ++cases;
  }
  EXPECT_GE(cases, 17);
}

// Fuzzer finds (issue 18): sizes whose products overflow or outgrow the file used to
// abort on bad_alloc or be accepted; each now fails naming the field or tensor.
TEST(Cli, OversizedCountsAndShapesFailNamingTheField) {
  const struct {
    const char* file;
    const char* message;
  } cases[] = {
      {"huge_block_count.gguf", "huge_block_count.gguf: n_layers is 2147483647, above lowbit's limit of 65536"},
      {"block_count_past_tensors.gguf",
       "block_count_past_tensors.gguf: metadata 'llama.block_count' is 2 but tensor 'blk.1.attn_norm.weight' is "
       "missing"},
      {"huge_heads.gguf", "huge_heads.gguf: q_dim (n_heads x head_dim) is 4294967296, above lowbit's limit of 1048576"},
      {"huge_tensor_dims.gguf",
       "huge_tensor_dims.gguf: tensor 'huge.weight' has 1099511627776 x 1099511627776 x 1099511627776 x "
       "1099511627776 elements, more than 2^63"},
      {"huge_tensor_bytes.gguf",
       "huge_tensor_bytes.gguf: tensor 'huge.weight' (1099511627776 x 4194304 f32) needs more than 2^64 bytes"},
  };
  for (const auto& c : cases) {
    const std::string path = lowbit::testing::source_path(std::string("tests/data/malformed/") + c.file);
    const CommandResult r = run_lowbit("info '" + path + "'");
    EXPECT_EQ(r.exit_code, 1) << c.file << ": " << r.output;
    EXPECT_EQ(count_lines(r.output), 1u) << r.output;
    EXPECT_EQ(r.output.rfind("lowbit: error: ", 0), 0u) << r.output;
    EXPECT_NE(r.output.find(c.message), std::string::npos) << "expected: " << c.message << "\ngot: " << r.output;
  }
}

// NaN or Inf in the FP32 weights: quantizing would write NaN scales; the error
// names the tensor and counts the bad values.
TEST(Cli, QuantizeRejectsNonFiniteWeightsNamingTheTensor) {
  const std::string path = lowbit::testing::source_path("tests/data/malformed/nan_weight.gguf");
  const std::string out = temp_file("nan.lowbit");
  const CommandResult r = run_lowbit("quantize '" + path + "' -r w8 --no-progress -o " + out);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(count_lines(r.output), 1u) << r.output;
  EXPECT_EQ(r.output.rfind("lowbit: error: ", 0), 0u) << r.output;
  EXPECT_NE(r.output.find("nan_weight.gguf: tensor 'layers.0.up_proj': 1 NaN/Inf value in the weights (the first, "
                          "nan, at index 64)"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(Cli, ValidControlModelLoads) {
  const std::string path = lowbit::testing::source_path("tests/data/malformed/valid/tiny.gguf");
  const CommandResult r = run_lowbit("info '" + path + "'");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(Cli, RejectsUnknownFlagsAndBadValues) {
  const std::string model = lowbit::testing::source_path("tests/data/malformed/valid/tiny.gguf");
  for (const std::string& args : {"info " + model + " --no-such-flag", "generate " + model + " --prompt a -n 0",
                                 "generate " + model + " --prompt a --temp -1",
                                 "ppl " + model + " --text " + model + " --protocol wiki",
                                 "ppl " + model + " --text /no/such/file", std::string("frobnicate")}) {
    const CommandResult r = run_lowbit(args);
    EXPECT_NE(r.exit_code, 0) << "accepted: " << args;
    EXPECT_FALSE(r.output.empty()) << "no message for: " << args;
  }
}

TEST(Cli, GenerateAndPplJsonContract) {
  LB_REQUIRE_SHARED(model, "models/stories260K/stories260K.gguf");
  LB_REQUIRE_SHARED(text, "data/tinystories/tinystories_validation_head.txt");
  const std::string gen_json = temp_file("gen.json");
  CommandResult r = run_lowbit("generate " + model + " --prompt 'Once upon a time' -n 12 --json " + gen_json);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  nlohmann::json g = nlohmann::json::parse(std::ifstream(gen_json));
  EXPECT_EQ(g["prompt_tokens"], nlohmann::json({1, 403, 407, 261, 378}));
  EXPECT_EQ(g["tokens"].size(), 12u);
  EXPECT_EQ(g["tokens"][0], 432);  // "," after "Once upon a time", from the golden greedy run
  EXPECT_TRUE(g["text"].is_string());
  EXPECT_GT(g["tokens_per_s"].get<double>(), 0.0);

  const std::string ppl_json = temp_file("ppl.json");
  r = run_lowbit("ppl " + model + " --text " + text + " --ctx 128 --chunks 3 --no-progress --base " + model +
                 " --json " + ppl_json);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  nlohmann::json p = nlohmann::json::parse(std::ifstream(ppl_json));
  for (const char* key : {"ppl", "ppl_stderr", "nll", "tokens_scored", "kld_mean", "kld_stderr", "kld_p99",
                          "kld_max", "top1_agree"}) {
    EXPECT_TRUE(p.contains(key)) << key;
  }
  EXPECT_EQ(p["tokens_scored"], 3 * 63);  // llamacpp protocol: second half of each chunk, minus the last
  EXPECT_GT(p["ppl"].get<double>(), 1.0);
  EXPECT_LT(p["ppl"].get<double>(), 20.0);
  EXPECT_NEAR(p["kld_mean"].get<double>(), 0.0, 1e-9);  // the model against itself
  EXPECT_EQ(p["top1_agree"], 1.0);
  std::filesystem::remove(gen_json);
  std::filesystem::remove(ppl_json);
}

// bench --shape runs a recipe's dynamic activation spec as ppl would (the integer
// kernel where one is exact, else the simulation) and refuses static thresholds,
// which need calibration data.
TEST(Cli, BenchShapeRunsTheRecipeActivationSpec) {
  const std::string json = temp_file("bench.json");
  CommandResult r = run_lowbit("bench --shape stories260k --recipe w8a8-dyn -p 8 -n 4 --reps 1 --no-bandwidth --json " +
                               json);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  nlohmann::json b = nlohmann::json::parse(std::ifstream(json));
  EXPECT_NE(b["kernels"].get<std::string>().find("activations w8a8/"), std::string::npos) << b["kernels"];
  EXPECT_GT(b["pp_tps"].get<double>(), 0.0);
  r = run_lowbit("bench --shape stories260k --recipe fp8 -p 8 -n 4 --reps 1 --no-bandwidth --json " + json);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  b = nlohmann::json::parse(std::ifstream(json));
  EXPECT_NE(b["kernels"].get<std::string>().find("simulated act fp8_e4m3"), std::string::npos) << b["kernels"];
  r = run_lowbit("bench --shape stories260k --recipe w8a8 -p 8 -n 4 --reps 1 --no-bandwidth");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("static activations"), std::string::npos) << r.output;
  r = run_lowbit("bench --shape stories260k --recipe w8a8-dyn --act int8 -p 8 -n 4 --reps 1 --no-bandwidth");
  EXPECT_NE(r.exit_code, 0) << "--act with a recipe that quantizes activations must be refused";
  std::filesystem::remove(json);
}

// bench --shape stores random codes in a calibrated recipe's formats (GPTQ changes
// the codes, not the bytes read per token) and runs its rotation's online
// Hadamard on down_proj; recipes whose runtime parts come from data (LoRC
// factors) are refused.
TEST(Cli, BenchShapeRunsACalibratedRecipesFormatsAndOnlineRotation) {
  const std::string json = temp_file("bench_rot.json");
  const std::string recipe = temp_file("bench_rot_recipe.json");
  std::ofstream(recipe) << R"({"name": "t", "rotation": {"seed": 1, "online_down": true},
    "default": {"method": "gptq", "format": "int4_g32_asym"}})";
  const std::string shape = "--shape dim=64,layers=2,heads=4,kv_heads=4,ffn=128,vocab=256";
  CommandResult r = run_lowbit("bench " + shape + " --recipe " + recipe + " -p 8 -n 4 --reps 1 --no-bandwidth --json " + json);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  nlohmann::json b = nlohmann::json::parse(std::ifstream(json));
  EXPECT_TRUE(b["online_rotation"].get<bool>()) << b;
  EXPECT_NE(r.output.find("online Hadamard on down_proj"), std::string::npos) << r.output;
  EXPECT_GT(b["tg_tps"].get<double>(), 0.0);
  r = run_lowbit("bench " + shape + " --recipe w4g128-rtn -p 8 -n 4 --reps 1 --no-bandwidth --json " + json);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(nlohmann::json::parse(std::ifstream(json))["online_rotation"].get<bool>());
  std::ofstream(recipe) << R"({"name": "t", "default": {"method": "rtn", "format": "int4_g32_asym", "options": {"lorc_rank": 4}}})";
  r = run_lowbit("bench " + shape + " --recipe " + recipe + " -p 8 -n 4 --reps 1 --no-bandwidth");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("LoRC"), std::string::npos) << r.output;
  std::filesystem::remove(json);
  std::filesystem::remove(recipe);
}

// Every subcommand takes -q/--quiet (alias --no-progress) and --progress.
TEST(Cli, EveryCommandTakesQuietAndProgress) {
  for (const char* command :
       {"info", "generate", "ppl", "bench", "formats", "quantize", "inspect", "export", "pareto", "restore"}) {
    const CommandResult r = run_lowbit(std::string(command) + " --help");
    EXPECT_EQ(r.exit_code, 0) << command << "\n" << r.output;
    EXPECT_NE(r.output.find("-q,--quiet,--no-progress"), std::string::npos) << command << "\n" << r.output;
    EXPECT_NE(r.output.find("--progress"), std::string::npos) << command;
  }
}

// Progress goes to stderr only on a terminal unless --progress forces it; the
// first line already carries a real ETA (no "ETA 0s" before any chunk is done),
// and --quiet wins over --progress.
TEST(Cli, ProgressOnlyWhenForcedOnAPipe) {
  LB_REQUIRE_SHARED(model, "models/stories260K/stories260K.gguf");
  LB_REQUIRE_SHARED(text, "data/tinystories/tinystories_validation_head.txt");
  const std::string ppl = "ppl " + model + " --text " + text + " --ctx 64 --chunks 10";
  CommandResult r = run_lowbit(ppl);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("ppl chunk"), std::string::npos) << r.output;
  r = run_lowbit(ppl + " --progress");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const size_t first = r.output.find("ppl chunk 1/10  elapsed ");
  ASSERT_NE(first, std::string::npos) << r.output;
  const std::string line = r.output.substr(first, r.output.find('\n', first) - first);
  EXPECT_NE(line.find("  ETA "), std::string::npos) << line;
  EXPECT_EQ(r.output.find("ppl chunk 0/"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("ppl chunk 10/10  elapsed "), std::string::npos) << r.output;
  r = run_lowbit(ppl + " --progress --quiet");
  EXPECT_EQ(r.output.find("ppl chunk"), std::string::npos) << r.output;
}

}  // namespace
