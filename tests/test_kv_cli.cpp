// `--kv` on the command line: spec errors name the bad part, the JSON reports
// carry the cache's bytes per token beside the FP32 figure, --kv leaves --base on
// the FP32 cache, and a tuned/calibrated configuration saved with --kv-save runs
// again as `--kv FILE`.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace {

using lowbit::testing::CommandResult;
using lowbit::testing::count_lines;
using lowbit::testing::run_lowbit;

std::string temp_file(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("lowbit_kv_cli_" + std::to_string(getpid()) + "_" + name))
      .string();
}

TEST(KvCli, BadSpecFailsWithOneLineNamingThePart) {
  LB_REQUIRE_SHARED(model, "models/stories260K/stories260K.gguf");
  const CommandResult r = run_lowbit("generate " + model + " --prompt a -n 2 --kv k4v4-kivvi");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(count_lines(r.output), 1u) << r.output;
  EXPECT_NE(r.output.find("--kv"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("'kivvi'"), std::string::npos) << r.output;
  const CommandResult nuq = run_lowbit("generate " + model + " --prompt a -n 2 --kv k3v3-nuq");
  EXPECT_NE(nuq.exit_code, 0);
  EXPECT_NE(nuq.output.find("--kv-calib"), std::string::npos) << nuq.output;
}

TEST(KvCli, PplReportsBytesAndKeepsTheBaseOnFp32) {
  LB_REQUIRE_SHARED(model, "models/stories260K/stories260K.gguf");
  LB_REQUIRE_SHARED(text, "data/tinystories/tinystories_validation_head.txt");
  const std::string json = temp_file("ppl.json");
  const std::string common = "ppl " + model + " --text " + text + " --ctx 128 --chunks 2 --no-progress --base " + model;
  CommandResult r = run_lowbit(common + " --kv k4v4-kivi-r16 --json " + json);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  nlohmann::json p = nlohmann::json::parse(std::ifstream(json));
  // stories260K: 5 layers x 32 channels; keys 2 x 32 x 4 bytes over 32 tokens + 16, values 16 + 4 x 4.
  EXPECT_DOUBLE_EQ(p["kv_bytes_per_token"].get<double>(), 5 * ((32 * 32 / 2 + 32 * 4) / 32.0 + 16 + 16));
  EXPECT_DOUBLE_EQ(p["kv_bytes_per_token_fp32"].get<double>(), 5 * 2 * 32 * 4);
  EXPECT_GT(p["kv_bytes_allocated"].get<double>(), 0);
  EXPECT_GT(p["peak_rss_bytes"].get<double>(), 0);
  EXPECT_EQ(p["kv"], "k4v4-kivi-r16");
  EXPECT_GT(p["kld_mean"].get<double>(), 1e-4);  // the quantized cache against the FP32 base
  // FP32 storage behind the quantized cache (rotated, pre-RoPE) matches the base.
  r = run_lowbit(common + " --kv k32v32-rot-prerope --json " + json);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  p = nlohmann::json::parse(std::ifstream(json));
  EXPECT_LT(p["kld_mean"].get<double>(), 1e-8);
  EXPECT_NEAR(p["base_ppl"].get<double>(), p["ppl"].get<double>(), 1e-5);
  std::filesystem::remove(json);
}

TEST(KvCli, TunedConfigurationRunsAgainFromItsFile) {
  LB_REQUIRE_SHARED(model, "models/stories260K/stories260K.gguf");
  LB_REQUIRE_SHARED(text, "data/tinystories/tinystories_validation_head.txt");
  const std::string config = temp_file("kv.json");
  const std::string json = temp_file("gen.json");
  CommandResult r = run_lowbit("generate " + model + " --prompt 'Once upon a time' -n 4 --kv k4v4-nuq-sink1" +
                               " --kv-calib " + text + " --kv-calib-samples 1 --kv-calib-len 64 --kv-tune 3" +
                               " --kv-save " + config + " --json " + json);
  ASSERT_NE(r.exit_code, 0) << "NUQ specs are not tuned";
  r = run_lowbit("generate " + model + " --prompt 'Once upon a time' -n 4 --kv k4v4-sink1 --kv-calib " + text +
                 " --kv-calib-samples 1 --kv-calib-len 64 --kv-tune 3 --kv-save " + config + " --json " + json);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  nlohmann::json saved = nlohmann::json::parse(std::ifstream(config));
  ASSERT_EQ(saved["layers"].size(), 5u);
  double bits = 0;
  for (const auto& l : saved["layers"]) bits += l["k_bits"].get<int>() + l["v_bits"].get<int>();
  EXPECT_LE(bits / 10, 3.0);
  EXPECT_TRUE(saved["calibration"].contains("sensitivity"));
  const nlohmann::json first = nlohmann::json::parse(std::ifstream(json));
  EXPECT_DOUBLE_EQ(first["kv_average_bits"].get<double>(), bits / 10);

  r = run_lowbit("generate " + model + " --prompt 'Once upon a time' -n 4 --kv " + config + " --json " + json);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json again = nlohmann::json::parse(std::ifstream(json));
  EXPECT_EQ(again["tokens"], first["tokens"]);
  EXPECT_EQ(again["kv_bytes_per_token"], first["kv_bytes_per_token"]);

  // NUQ codebooks fitted on the fly, saved, and loaded back.
  r = run_lowbit("generate " + model + " --prompt 'Once upon a time' -n 4 --kv k3v3-nuq --kv-calib " + text +
                 " --kv-calib-samples 1 --kv-calib-len 64 --kv-save " + config + " --json " + json);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  saved = nlohmann::json::parse(std::ifstream(config));
  ASSERT_EQ(saved["codebooks"].size(), 5u);
  EXPECT_EQ(saved["codebooks"][0]["key"].size(), 8u);
  const nlohmann::json nuq = nlohmann::json::parse(std::ifstream(json));
  r = run_lowbit("generate " + model + " --prompt 'Once upon a time' -n 4 --kv " + config + " --json " + json);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(nlohmann::json::parse(std::ifstream(json))["tokens"], nuq["tokens"]);
  std::filesystem::remove(config);
  std::filesystem::remove(json);
}

// -reorder's key channel order and -qnorm's codebooks are fitted on --kv-calib,
// saved with --kv-save ("key_order", "codebooks") and give the same scores when
// the file is passed to --kv; a file whose order is not a permutation fails with
// one line naming the entry.
TEST(KvCli, ReorderedQNormConfigurationRunsAgainFromItsFile) {
  LB_REQUIRE_SHARED(model, "models/stories260K/stories260K.gguf");
  LB_REQUIRE_SHARED(text, "data/tinystories/tinystories_validation_head.txt");
  const std::string config = temp_file("reorder.json");
  const std::string json = temp_file("reorder_ppl.json");
  const std::string common = "ppl " + model + " --text " + text + " --ctx 128 --chunks 2 --no-progress";
  CommandResult r = run_lowbit(common + " --kv k2v2-rot-reorder");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("-reorder needs calibration data"), std::string::npos) << r.output;
  r = run_lowbit(common + " --kv k3v3-nuq-qnorm-rotg2-reorder --kv-calib " + text +
                 " --kv-calib-samples 1 --kv-calib-len 64 --kv-save " + config + " --json " + json);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  nlohmann::json saved = nlohmann::json::parse(std::ifstream(config));
  EXPECT_EQ(saved["spec"], "k3v3-nuq-qnorm-rotg2-reorder");
  ASSERT_EQ(saved["key_order"].size(), 5u);
  EXPECT_EQ(saved["key_order"][0].size(), 32u);
  ASSERT_EQ(saved["codebooks"].size(), 5u);
  const nlohmann::json first = nlohmann::json::parse(std::ifstream(json));
  r = run_lowbit(common + " --kv " + config + " --json " + json);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json again = nlohmann::json::parse(std::ifstream(json));
  EXPECT_EQ(again["ppl"], first["ppl"]);

  saved["key_order"][3][5] = saved["key_order"][3][6];
  std::ofstream(config) << saved.dump();
  r = run_lowbit(common + " --kv " + config);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(count_lines(r.output), 1u) << r.output;
  EXPECT_NE(r.output.find("key_order[3]: not a permutation"), std::string::npos) << r.output;
  std::filesystem::remove(config);
  std::filesystem::remove(json);
}

// `quantize --kv` stores the KV configuration in the model file (lowbit.kv); ppl
// on that file uses it without --kv (the JSON says where it came from), with the
// same bytes per token and the same scores as passing the spec explicitly, and an
// explicit --kv overrides it. A -nuq spec stores its calibrated codebooks.
TEST(KvCli, QuantizeStoresTheKvConfigurationInTheModelFile) {
  LB_REQUIRE_SHARED(model, "models/stories260K/stories260K.gguf");
  LB_REQUIRE_SHARED(text, "data/tinystories/tinystories_validation_head.txt");
  const std::string out = temp_file("kv.lowbit");
  const std::string json = temp_file("ppl_stored.json");
  const std::string config = temp_file("nuq.json");
  auto ppl = [&](const std::string& extra) {
    const CommandResult r = run_lowbit("ppl " + out + " --text " + text + " --ctx 128 --chunks 2 --no-progress --base " +
                                       out + " --json " + json + extra);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return nlohmann::json::parse(std::ifstream(json));
  };
  CommandResult r = run_lowbit("quantize " + model + " --recipe fp32 --kv k4v4-kivi --no-progress -o " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json stored = ppl("");
  const nlohmann::json given = ppl(" --kv k4v4-kivi");
  EXPECT_EQ(stored["kv_origin"], "model file");
  EXPECT_EQ(given["kv_origin"], "--kv");
  EXPECT_NE(stored["kv"].get<std::string>().find("k4v4-kivi"), std::string::npos) << stored["kv"];
  EXPECT_NE(stored["kv"].get<std::string>().find("lowbit.kv"), std::string::npos) << stored["kv"];
  EXPECT_EQ(stored["kv_bytes_per_token"], given["kv_bytes_per_token"]);
  EXPECT_LT(stored["kv_bytes_per_token"].get<double>(), stored["kv_bytes_per_token_fp32"].get<double>());
  EXPECT_EQ(stored["ppl"], given["ppl"]);  // the same cache: the same logits, bit for bit
  EXPECT_EQ(stored["kld_mean"], given["kld_mean"]);
  EXPECT_GT(stored["kld_mean"].get<double>(), 1e-5);  // the stored quantized cache is in use (the base is FP32)
  const nlohmann::json fp = ppl(" --kv fp32");  // explicit --kv overrides the stored configuration
  EXPECT_EQ(fp["kv"], "fp32");
  EXPECT_EQ(fp["kld_mean"].get<double>(), 0.0);
  // quantize without --kv stores nothing: the default FP32 cache.
  ASSERT_EQ(run_lowbit("quantize " + model + " --recipe fp32 --no-progress -o " + out).exit_code, 0);
  EXPECT_EQ(ppl("")["kv_origin"], "default");

  // NUQ: codebooks fitted at quantize time, stored, and used as the saved configuration is.
  r = run_lowbit("quantize " + model + " --recipe fp32 --kv k3v3-nuq-sink1 --kv-calib " + text +
                 " --kv-calib-samples 2 --kv-calib-len 64 --kv-save " + config + " --no-progress -o " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json saved = nlohmann::json::parse(std::ifstream(config));
  ASSERT_EQ(saved["codebooks"].size(), 5u);
  const nlohmann::json nuq_stored = ppl("");
  const nlohmann::json nuq_given = ppl(" --kv " + config);
  EXPECT_EQ(nuq_stored["kv_origin"], "model file");
  EXPECT_NE(nuq_stored["kv"].get<std::string>().find("k3v3-nuq-sink1"), std::string::npos);
  EXPECT_EQ(nuq_stored["kv_bytes_per_token"], nuq_given["kv_bytes_per_token"]);
  EXPECT_EQ(nuq_stored["ppl"], nuq_given["ppl"]);
  EXPECT_EQ(nuq_stored["kld_mean"], nuq_given["kld_mean"]);
  EXPECT_GT(nuq_stored["kld_mean"].get<double>(), 1e-5);
  // Without calibration data a -nuq spec cannot be stored.
  r = run_lowbit("quantize " + model + " --recipe fp32 --kv k3v3-nuq --no-progress -o " + out);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--kv-calib"), std::string::npos) << r.output;
  std::filesystem::remove(out);
  std::filesystem::remove(json);
  std::filesystem::remove(config);
}

// `ppl --batch B` runs each window in batches of B tokens through one cache (so
// only [B, vocab] logits are held): the scores equal the one-pass ones to float
// rounding with FP32 storage, in the FP32 cache and behind the quantized cache's
// residual window, pre-RoPE and rotation paths. With coded storage a rounding
// difference can flip a code (perplexity.h), so a coded cache is held to a
// looser band (measured: equal to 1e-4 here).
TEST(KvCli, PplInBatchesMatchesOnePass) {
  LB_REQUIRE_SHARED(model, "models/stories260K/stories260K.gguf");
  LB_REQUIRE_SHARED(text, "data/tinystories/tinystories_validation_head.txt");
  const std::string json = temp_file("ppl_batch.json");
  for (const std::string kv : {"fp32", "k32v32-r16-prerope-rot", "k4v4-kivi-b8-r16-prerope"}) {
    const double tol = kv[1] == '4' ? 1e-2 : 1e-4;
    auto run = [&](const std::string& extra) {
      const CommandResult r = run_lowbit("ppl " + model + " --text " + text + " --ctx 128 --chunks 2 --no-progress --base " +
                                         model + " --kv " + kv + " --json " + json + extra);
      EXPECT_EQ(r.exit_code, 0) << r.output;
      return nlohmann::json::parse(std::ifstream(json));
    };
    const nlohmann::json one = run("");
    const nlohmann::json batched = run(" --batch 37");
    EXPECT_EQ(batched["batch"], 37);
    EXPECT_EQ(batched["tokens_scored"], one["tokens_scored"]);
    EXPECT_NEAR(batched["ppl"].get<double>(), one["ppl"].get<double>(), tol * one["ppl"].get<double>()) << kv;
    EXPECT_NEAR(batched["kld_mean"].get<double>(), one["kld_mean"].get<double>(), tol * 0.1) << kv;
    EXPECT_EQ(batched["kv_bytes_per_token"], one["kv_bytes_per_token"]);
  }
  std::filesystem::remove(json);
}

}  // namespace
