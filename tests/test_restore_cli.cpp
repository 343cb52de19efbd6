// `lowbit restore` (pipeline/restorative_lora.h, PTQ1.61's preprocessing) end to end on
// stories260K: quantize, restore, quantize again; and the refusals.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace lowbit {
namespace {

using testing::CommandResult;
using testing::run_lowbit;

struct Paths {
  std::string model, tokenizer, text, dir;
  std::string common() const { return " --tokenizer " + tokenizer + " --calib " + text + " --calib-samples 4 --calib-len 64 -q"; }
};

TEST(RestoreCli, TrainsOnTheQuantizedModelAndWritesTheMergedModel) {
  LB_REQUIRE_SHARED(model, "models/stories260K/stories260K.gguf");
  LB_REQUIRE_SHARED(tokenizer, "models/stories260K/tok512.bin");
  LB_REQUIRE_SHARED(text, "data/tinystories/tinystories_sample.txt");
  const std::string dir = ::testing::TempDir() + "/restore_cli";
  std::filesystem::create_directories(dir);
  const Paths p{model, tokenizer, text, dir};
  CommandResult r = run_lowbit("quantize " + model + " --recipe w2g64-gptq -o " + dir + "/q.lowbit" + p.common());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_lowbit("restore " + model + " --quantized " + dir + "/q.lowbit --steps 40 --lr 1e-3 --rank 4 -o " + dir +
                 "/m.lowbit --json " + dir + "/m.json" + p.common());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(std::ifstream(dir + "/m.json"));
  const double pre = j["loss_pretrained"], quant = j["loss_quantized"], restored = j["loss_restored"];
  // 2-bit GPTQ hurts this tiny model badly; 40 steps of rank-4 adapters win most of it back.
  EXPECT_GT(quant - pre, 1.0) << r.output;
  EXPECT_LT(restored - pre, 0.5 * (quant - pre)) << r.output;
  EXPECT_EQ(j["step_loss"].size(), 40u);
  // The merged model is an FP32 model file: it loads, scores, and quantizes again.
  r = run_lowbit("quantize " + dir + "/m.lowbit --recipe w2g64-gptq -o " + dir + "/q2.lowbit" + p.common());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = run_lowbit("info " + dir + "/m.lowbit");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("32.000 bits per weight"), std::string::npos) << r.output;
  std::filesystem::remove_all(dir);
}

TEST(RestoreCli, RefusesWhatItCannotRestore) {
  LB_REQUIRE_SHARED(model, "models/stories260K/stories260K.gguf");
  LB_REQUIRE_SHARED(tokenizer, "models/stories260K/tok512.bin");
  LB_REQUIRE_SHARED(text, "data/tinystories/tinystories_sample.txt");
  const std::string dir = ::testing::TempDir() + "/restore_cli_bad";
  std::filesystem::create_directories(dir);
  const Paths p{model, tokenizer, text, dir};
  // A model file with nothing quantized.
  CommandResult r = run_lowbit("quantize " + model + " --recipe fp32 -o " + dir + "/f.lowbit" + p.common());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_lowbit("restore " + model + " --quantized " + dir + "/f.lowbit --steps 2 -o " + dir + "/o.lowbit" + p.common());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("no quantized linear"), std::string::npos) << r.output;
  // A rotated quantization is in another basis.
  r = run_lowbit("quantize " + model + " --recipe rot -o " + dir + "/r.lowbit" + p.common());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_lowbit("restore " + model + " --quantized " + dir + "/r.lowbit --steps 2 -o " + dir + "/o.lowbit" +
                 p.common());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("rotation"), std::string::npos) << r.output;
  // Missing flags and bad values.
  r = run_lowbit("restore " + model + " -o " + dir + "/o.lowbit" + p.common());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("--quantized"), std::string::npos) << r.output;
  r = run_lowbit("restore " + model + " --quantized " + dir + "/f.lowbit --rank 0 -o " + dir + "/o.lowbit" + p.common());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--rank"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir + "/o.lowbit"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace lowbit
