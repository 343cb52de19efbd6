// Helpers shared by the recipe, lowbit-file and quantization-pipeline tests.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <utility>

#include "core/status.h"
#include "pipeline/quantize_pipeline.h"
#include "test_util.h"

namespace lowbit::testing {

// The value of an Expected that must hold one; a failure records its message.
template <typename T>
T get(Expected<T> e) {
  EXPECT_TRUE(e.ok()) << e.status().message();
  return std::move(e).value();
}

// Fixture of the pipeline tests on stories260K: the model and a calibration
// text from the shared folder (the test skips when they are absent), and the
// pipeline options they share: 8 calibration windows of 64 tokens, seed 3.
class StoriesPipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = shared_path("models/stories260K/stories260K.gguf");
    text_ = shared_path("data/tinystories/tinystories_validation_head.txt");
    if (model_.empty() || text_.empty()) GTEST_SKIP() << "shared test material missing (stories260K, tinystories)";
  }

  // Options writing `out`; without calibration data when `calibrate` is false.
  PipelineOptions pipeline_options(const std::string& out, bool calibrate = true) const {
    PipelineOptions o;
    o.model_path = model_;
    o.output_path = out;
    if (calibrate) o.calib_path = text_;
    o.calibration.n_samples = 8;
    o.calibration.seq_len = 64;
    o.calibration.seed = 3;
    o.progress = false;
    return o;
  }

  std::string model_;
  std::string text_;
};

}  // namespace lowbit::testing
