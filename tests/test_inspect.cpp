// `lowbit inspect` (issue 5) on stories260K: the layer-by-layer run (rotation and
// SmoothQuant leave the FP function unchanged, so rotation-invariant statistics
// match the plain run) and the command end to end (JSON, plots, rejected flags).
// The statistics themselves: test_inspect_stats.cpp.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "model/loader.h"
#include "model_writers.h"
#include "pipeline/inspect_report.h"
#include "pipeline/inspect_variants.h"
#include "test_util.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::count_lines;
using testing::run_lowbit;

class InspectStories : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = testing::shared_path("models/stories260K/stories260K.gguf");
    text_ = testing::shared_path("data/tinystories/tinystories_validation_head.txt");
    if (model_.empty() || text_.empty()) GTEST_SKIP() << "shared test material missing (stories260K, tinystories)";
  }
  std::string model_;
  std::string text_;
};

// Rotation and SmoothQuant leave the FP function unchanged, and the hidden state
// after rotation is h·Q: the RMS of the residual stream (rotation invariant) and
// of the down_proj input (rotated by the online Hadamard) match the plain run;
// SmoothQuant leaves the residual stream itself unchanged.
TEST_F(InspectStories, TransformedRunsComputeTheSameFunction) {
  auto loaded = load_model(model_, {});
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  CalibrationOptions co;
  co.n_samples = 3;
  co.seq_len = 48;
  co.seed = 2;
  auto windows = load_calibration(text_, *loaded->tokenizer, co);
  ASSERT_TRUE(windows.ok()) << windows.status().message();
  ThreadPool pool(2);
  InspectOptions o;
  o.top_k = 4;
  const ModelConfig& c = loaded->config;
  auto plain = inspect_plain(c, loaded->weights, *windows, o, pool);
  ASSERT_TRUE(plain.ok()) << plain.status().message();
  std::vector<std::string> notes;
  auto rot = inspect_rotated(c, loaded->weights, RotationSpec{}, *windows, o, pool, notes);
  ASSERT_TRUE(rot.ok()) << rot.status().message();
  EXPECT_EQ(notes.size(), 1u);  // ffn 172 has no Hadamard matrix: random orthogonal
  auto smooth = inspect_smoothed(c, loaded->weights, plain->result, 0.5f, *windows, o, pool);
  ASSERT_TRUE(smooth.ok()) << smooth.status().message();

  const ModelInspection& a = plain->result;
  ASSERT_EQ(a.layers.size(), 5u);
  ASSERT_EQ(a.residual.size(), 6u);
  for (int i = 0; i <= c.n_layers; ++i) {
    const MatrixStats& h = a.residual[static_cast<size_t>(i)];
    EXPECT_EQ(h.n_tokens, 3 * 48);
    EXPECT_NEAR(rot->result.residual[i].rms, h.rms, 1e-4 * h.rms) << "layer " << i;
    EXPECT_NEAR(smooth->result.residual[i].absmax, h.absmax, 1e-4 * h.absmax) << "layer " << i;
    EXPECT_NEAR(smooth->result.residual[i].kurtosis, h.kurtosis, 1e-3 * h.kurtosis) << "layer " << i;
  }
  for (int i = 0; i < c.n_layers; ++i) {
    const auto& in = a.layers[static_cast<size_t>(i)].inputs;
    const auto& r = rot->result.layers[static_cast<size_t>(i)].inputs;
    EXPECT_EQ(in[3].channels, c.ffn_dim);
    EXPECT_NEAR(r[3].rms, in[3].rms, 1e-4 * in[3].rms) << "down_in, layer " << i;
    EXPECT_NEAR(r[1].absmax, in[1].absmax, 1e-4 * in[1].absmax) << "o_in is not rotated, layer " << i;
    // The rotation spreads the down_proj input: its largest channel shrinks.
    EXPECT_LT(r[3].max_median_ratio, in[3].max_median_ratio) << "layer " << i;
  }
}

TEST_F(InspectStories, CommandWritesJsonAndPlots) {
  testing::ScopedTempDir dir("inspect_cli");
  const std::string report = dir.file("inspect.json");
  const std::string plots = dir.file("plots");
  const bool have_gnuplot = std::system("command -v gnuplot >/dev/null 2>&1") == 0;
  const auto r = run_lowbit("inspect " + model_ + " --calib " + text_ +
                            " --calib-samples 2 --calib-len 32 --top 3 --no-progress --json " + report +
                            (have_gnuplot ? " --plot " + plots : std::string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("massive activations"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("comparison"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(report + ".tmp"));
  std::ifstream in(report);
  const json j = json::parse(in);
  EXPECT_EQ(j["calibration"]["n_samples"], 2);
  EXPECT_EQ(j["calibration"]["seq_len"], 32);
  for (const char* v : {"none", "rot", "smooth"}) {
    const json& variant = j["variants"][v];
    ASSERT_EQ(variant["layers"].size(), 5u) << v;
    for (const json& layer : variant["layers"]) {
      EXPECT_EQ(layer["residual"]["channel_max"].size(), 64u);
      EXPECT_EQ(layer["inputs"]["attn_in"]["channel_max"].size(), 64u);
      EXPECT_EQ(layer["inputs"]["o_in"]["channel_max"].size(), 64u);
      EXPECT_EQ(layer["inputs"]["down_in"]["channel_max"].size(), 172u);
      EXPECT_EQ(layer["inputs"]["ffn_in"]["top"].size(), 3u);
      EXPECT_EQ(layer["inputs"]["ffn_in"]["tokens"], 64);
      EXPECT_GT(layer["inputs"]["down_in"]["kurtosis"].get<double>(), 1.0);
    }
    EXPECT_TRUE(variant["massive"]["list"].is_array());
    EXPECT_EQ(variant["top_outlier_channels"].size(), 3u);
  }
  if (have_gnuplot) {
    for (const char* png : {"channel_max_down_in.png", "channel_max_attn_in.png", "channel_max_residual.png",
                            "absmax_per_layer.png", "channel_profile_down_in.png"}) {
      const std::string path = (fs::path(plots) / png).string();
      ASSERT_TRUE(fs::exists(path)) << png;
      std::ifstream f(path, std::ios::binary);
      char magic[8] = {};
      f.read(magic, 8);
      EXPECT_EQ(std::string(magic + 1, 3), "PNG") << png;
      EXPECT_FALSE(fs::exists(path + ".tmp")) << png;
    }
    EXPECT_TRUE(fs::exists(fs::path(plots) / "channel_max_down_in_rot.dat"));
    EXPECT_TRUE(fs::exists(fs::path(plots) / "inspect.gp"));
  } else {
    std::cout << "gnuplot not installed: plots not checked\n";
  }
}

TEST_F(InspectStories, AfterNoneRunsOnlyThePlainModel) {
  testing::ScopedTempDir dir("inspect_none");
  const std::string report = dir.file("r.json");
  const auto r = run_lowbit("inspect " + model_ + " --calib " + text_ +
                            " --calib-samples 1 --calib-len 16 --after none --no-progress --json " + report);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(report);
  const json j = json::parse(in);
  EXPECT_EQ(j["variants"].size(), 1u);
  EXPECT_TRUE(j["variants"].contains("none"));
}

TEST_F(InspectStories, BadFlagsFailNamingTheFlag) {
  testing::ScopedTempDir dir("inspect_bad");
  const std::string head = "inspect " + model_ + " --calib " + text_ + " ";
  const std::string base = head + "--calib-samples 1 --calib-len 16 ";
  struct Case {
    std::string args;
    std::string names;
  };
  for (const Case& c : {Case{base + "--after rotate", "--after"}, Case{base + "--top 0", "--top"},
                        Case{base + "--alpha 1.5", "--alpha"}, Case{head + "--calib-samples 0", "--calib-samples"},
                        Case{"inspect " + model_ + " --calib " + dir.file("missing.txt"), "--calib"},
                        Case{"inspect " + model_, "--calib"}, Case{base + "--frobnicate", "--frobnicate"}}) {
    const auto r = run_lowbit(c.args);
    EXPECT_NE(r.exit_code, 0) << c.args;
    EXPECT_NE(r.output.substr(0, r.output.find('\n')).find(c.names), std::string::npos) << c.args << "\n" << r.output;
  }
  // Errors from the run itself: exactly one line.
  for (const Case& c : {Case{head + "--calib-samples 1 --calib-len 100000", "--calib-len"},
                        Case{base + "--plot " + dir.file("p"), "gnuplot"}}) {
    const auto r = run_lowbit(c.args, c.names == "gnuplot" ? "PATH=/nonexistent" : "");
    EXPECT_EQ(r.exit_code, 1) << c.args << "\n" << r.output;
    EXPECT_EQ(count_lines(r.output), 1u) << r.output;
    EXPECT_NE(r.output.find(c.names), std::string::npos) << r.output;
  }
  EXPECT_FALSE(fs::exists(dir.file("p")));
}

}  // namespace
}  // namespace lowbit
