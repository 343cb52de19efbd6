// The calibration shape that scales with the model (calibration_defaults,
// pipeline/quantize_pipeline.h): 32 tokens per column of the widest linear input,
// windows of min(2048, context), 8 to 128 windows; explicit values are kept.
#include <gtest/gtest.h>

#include "pipeline/quantize_pipeline.h"

namespace lowbit {
namespace {

ModelConfig shape(int dim, int n_heads, int head_dim, int ffn_dim, int context) {
  ModelConfig c;
  c.n_layers = 2;
  c.dim = dim;
  c.n_heads = n_heads;
  c.n_kv_heads = n_heads;
  c.head_dim = head_dim;
  c.ffn_dim = ffn_dim;
  c.vocab_size = 512;
  c.max_seq_len = context;
  return c;
}

CalibrationOptions automatic() {
  CalibrationOptions o;
  o.n_samples = 0;
  o.seq_len = 0;
  return o;
}

TEST(CalibrationDefaults, ScaleWithTheWidestLinearInput) {
  struct Case {
    const char* name;
    ModelConfig config;
    int widest, samples, len;
  };
  const Case cases[] = {
      // stories260K as its GGUF declares it (context 2048): 32 x 172 = 5504 tokens, under 8 windows' worth.
      {"stories260K", shape(64, 8, 8, 172, 2048), 172, 8, 2048},
      // ... and with llama2.c's training context 512: ceil(5504 / 512) = 11 windows.
      {"stories260K ctx 512", shape(64, 8, 8, 172, 512), 172, 11, 512},
      // SmolLM2-135M: 32 x 1536 = 49152 tokens = 24 windows of 2048.
      {"SmolLM2-135M", shape(576, 9, 64, 1536, 8192), 1536, 24, 2048},
      // TinyLlama-1.1B: 32 x 5632 = 180224 tokens -> 88 windows.
      {"TinyLlama", shape(2048, 32, 64, 5632, 2048), 5632, 88, 2048},
      // Llama-2-7B: 32 x 11008 = 172 windows, capped at GPTQ's 128.
      {"Llama-2-7B", shape(4096, 32, 128, 11008, 4096), 11008, 128, 2048},
  };
  for (const Case& c : cases) {
    const CalibrationDefaults d = calibration_defaults(c.config, automatic());
    EXPECT_EQ(d.widest_input, c.widest) << c.name;
    EXPECT_EQ(d.options.n_samples, c.samples) << c.name;
    EXPECT_EQ(d.options.seq_len, c.len) << c.name;
    EXPECT_TRUE(d.auto_samples && d.auto_len) << c.name;
    // The rule: at least 32 W tokens unless capped at 128 windows; never more than 8 windows past it.
    const int64_t tokens = static_cast<int64_t>(d.options.n_samples) * d.options.seq_len;
    if (d.options.n_samples < 128) {
      EXPECT_GE(tokens, 32ll * c.widest) << c.name;
    }
    if (d.options.n_samples > 8) {
      EXPECT_LT(tokens - d.options.seq_len, 32ll * c.widest) << c.name;
    }
  }
}

TEST(CalibrationDefaults, ExplicitValuesAreKept) {
  CalibrationOptions o;
  o.n_samples = 5;
  o.seq_len = 100;
  const CalibrationDefaults d = calibration_defaults(shape(64, 8, 8, 172, 512), o);
  EXPECT_EQ(d.options.n_samples, 5);
  EXPECT_EQ(d.options.seq_len, 100);
  EXPECT_FALSE(d.auto_samples || d.auto_len);
  // An explicit length changes how many windows the automatic count takes.
  o.n_samples = 0;
  o.seq_len = 128;
  EXPECT_EQ(calibration_defaults(shape(64, 8, 8, 172, 512), o).options.n_samples, 43);  // ceil(5504 / 128)
}

TEST(CalibrationDefaults, DescribedInOneLine) {
  const ModelConfig c = shape(64, 8, 8, 172, 512);
  EXPECT_EQ(describe_calibration(calibration_defaults(c, automatic()), c),
            "11 windows x 512 tokens = 5632 tokens (windows: 32 x 172 columns of the widest linear input, 8 to 128 "
            "windows; length: the model's context 512)");
  CalibrationOptions o;
  o.n_samples = 4;
  o.seq_len = 64;
  EXPECT_EQ(describe_calibration(calibration_defaults(c, o), c),
            "4 windows x 64 tokens = 256 tokens (windows: --calib-samples; length: --calib-len)");
}

}  // namespace
}  // namespace lowbit
