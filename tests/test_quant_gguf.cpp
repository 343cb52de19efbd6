// RTN, GPTQ and AWQ on llama.cpp's block types (quant/weight_format.h), for every
// type of formats/gguf_blocks.h's table:
//  - Diagonal H: GPTQ has nothing to propagate and every block's header is chosen
//    from the unmodified weights, so its bytes equal gguf_quantize's without
//    importance (in order, act-order, static groups, several lazy-batch widths).
//  - GPTQ's proxy error tr(ΔW H ΔWᵀ) below RTN's on correlated inputs, with the
//    error GptqStats reports equal to the one of the stored bytes.
//  - RTN (with and without importance) is gguf_quantize bit for bit; the stored
//    bytes decode, through WeightFormat and through the GGUF reader's reference
//    decoder (io/ggml_types.h), to the same floats.
//  - AWQ's search runs on a GGUF type and α = 0 is plain RTN.
//  - A shape a type cannot hold is refused by every quantizer, naming type and shape.
//  - The ColumnScales of a scaled format reproduce RTN's bytes (the shared GPTQ path).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>

#include "formats/gguf_blocks.h"
#include "io/ggml_types.h"
#include "quant/quantizers.h"
#include "quant/weight_format.h"
#include "test_quant_util.h"
#include "test_quantize_util.h"

namespace lowbit {
namespace {

using testing::dequantized;
using testing::gaussian;
using testing::get;
using testing::least_squares;
using testing::Problem;

std::vector<double> diagonal_hessian(int64_t cols) {
  std::vector<double> h(static_cast<size_t>(cols * cols), 0.0);
  for (int64_t j = 0; j < cols; ++j) h[j * cols + j] = 1.0 + 0.01 * static_cast<double>(j % 97);
  return h;
}

// Two blocks of every type (256-blocks for the K types).
int64_t test_cols(const GgufBlockType& t) { return 2 * std::max<int64_t>(t.block_size, 256); }

TEST(WeightFormat, FindsBothFamiliesAndNamesThemInErrors) {
  const WeightFormat scaled = get(WeightFormat::find("int4_g128_asym"));
  ASSERT_NE(scaled.block_format(), nullptr);
  EXPECT_EQ(scaled.gguf_type(), nullptr);
  EXPECT_EQ(scaled.col_multiple(), 1);
  EXPECT_TRUE(scaled.check_shape(3, 7).ok());
  ASSERT_FALSE(gguf_block_types().empty());
  for (const GgufBlockType& t : gguf_block_types()) {
    SCOPED_TRACE(t.name);
    auto f = WeightFormat::find(t.name);
    ASSERT_TRUE(f.ok()) << f.status().message();
    ASSERT_EQ(f->gguf_type(), &t);
    EXPECT_EQ(f->name(), t.name);
    EXPECT_EQ(f->col_multiple(), t.block_size);
    // Bytes and bits of a [3, 2 blocks] matrix: 6 blocks, nothing else.
    EXPECT_EQ(get(f->stored_bytes(3, 2 * t.block_size)), 6 * t.bytes_per_block);
    EXPECT_DOUBLE_EQ(get(f->bits_per_element(3, 2 * t.block_size)),
                     8.0 * static_cast<double>(t.bytes_per_block) / static_cast<double>(t.block_size));
    const Status bad = f->check_shape(3, t.block_size + 1);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.message().find(t.name), std::string::npos) << bad.message();
    EXPECT_NE(bad.message().find(fmt::format("[3, {}]", t.block_size + 1)), std::string::npos) << bad.message();
  }
  auto unknown = WeightFormat::find("q4_K_M");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("q4_K_M"), std::string::npos);
  EXPECT_NE(unknown.status().message().find("int4_g128"), std::string::npos) << unknown.status().message();
  EXPECT_NE(unknown.status().message().find(gguf_block_types()[0].name), std::string::npos);
}

TEST(QuantGguf, RtnIsGgufQuantizeAndDecodesLikeTheGgufReader) {
  for (const GgufBlockType& t : gguf_block_types()) {
    SCOPED_TRACE(t.name);
    const int64_t rows = 5, cols = test_cols(t);
    const std::vector<float> w = testing::heavy_tailed(rows, cols, 17, 29, 6.0f);
    std::vector<float> importance(static_cast<size_t>(cols));
    for (int64_t j = 0; j < cols; ++j) importance[j] = 0.1f + static_cast<float>((j * 13) % 7);
    for (bool weighted : {false, true}) {
      RtnOptions o;
      if (weighted) o.importance = importance;
      const QuantizedWeight q = get(quantize_rtn(t, w.data(), rows, cols, o));
      const QuantizedTensor want = get(gguf_quantize(t, w.data(), rows, cols, o.importance));
      EXPECT_EQ(q.format, t.name);
      EXPECT_EQ(q.tensor.codes, want.codes);
      EXPECT_TRUE(q.tensor.scales.empty() && q.tensor.mins.empty());
      EXPECT_EQ(q.storage_bytes(), static_cast<uint64_t>(rows * cols / t.block_size) * t.bytes_per_block);
      // The GGUF reader's reference decoder, block by block, gives dequantize_weight's floats.
      const GgmlTypeTraits* reader = find_ggml_type(t.type_id);
      ASSERT_NE(reader, nullptr);
      std::vector<float> read(static_cast<size_t>(rows * cols));
      reader->dequantize(q.tensor.codes.data(), read.data(), rows * cols / t.block_size);
      const std::vector<float> got = dequantized(q);
      EXPECT_EQ(std::memcmp(read.data(), got.data(), got.size() * sizeof(float)), 0);
    }
  }
}

TEST(QuantGguf, GptqWithDiagonalHessianIsRtnByteForByte) {
  for (const GgufBlockType& t : gguf_block_types()) {
    SCOPED_TRACE(t.name);
    const int64_t rows = 7, cols = test_cols(t);
    const std::vector<float> w = gaussian(rows, cols, 3);
    const std::vector<double> h = diagonal_hessian(cols);
    const QuantizedTensor want = get(gguf_quantize(t, w.data(), rows, cols));
    for (bool act_order : {false, true}) {
      for (bool static_groups : {false, true}) {
        for (int block : {128, 50}) {
          SCOPED_TRACE(::testing::Message() << "act_order " << act_order << " static " << static_groups << " block "
                                            << block);
          GptqOptions o;
          o.act_order = act_order;
          o.static_groups = static_groups;
          o.block_size = block;
          auto g = quantize_gptq(t, w.data(), rows, cols, h, o);
          ASSERT_TRUE(g.ok()) << g.status().message();
          EXPECT_EQ(g->format, t.name);
          EXPECT_EQ(g->tensor.codes, want.codes);
        }
      }
    }
  }
}

TEST(QuantGguf, GptqBeatsRtnOnCorrelatedInputs) {
  for (const GgufBlockType& t : gguf_block_types()) {
    for (bool act_order : {false, true}) {
      SCOPED_TRACE(::testing::Message() << t.name << " act_order " << act_order);
      const Problem p = least_squares(16, test_cols(t), 5);
      GptqOptions o;
      o.act_order = act_order;
      GptqStats stats;
      auto g = quantize_gptq(t, p.w.data(), p.rows, p.cols, p.h, o, &stats);
      auto r = quantize_rtn(t, p.w.data(), p.rows, p.cols, {});
      ASSERT_TRUE(g.ok() && r.ok()) << g.status().message();
      const double gptq = hessian_proxy_error(p.w.data(), dequantized(*g).data(), p.rows, p.cols, p.h);
      const double rtn = hessian_proxy_error(p.w.data(), dequantized(*r).data(), p.rows, p.cols, p.h);
      // The error GPTQ fed back is the error of the bytes it returns.
      EXPECT_DOUBLE_EQ(stats.proxy_error, gptq);
      // Measured 0.57-0.77 of RTN's over the types (q2_K the least gain): a band, so a
      // regression and an unexplained gain both show.
      EXPECT_GT(gptq / rtn, 0.45) << "gptq " << gptq << " rtn " << rtn;
      EXPECT_LT(gptq / rtn, 0.85) << "gptq " << gptq << " rtn " << rtn;
    }
  }
}

TEST(QuantGguf, GptqWithWeightedHeadersReportsTheStoredError) {
  // With importance the header search is weighted by H_jj; the columns are still
  // quantized with the stored headers, so the reported error is the bytes' error.
  for (const GgufBlockType& t : gguf_block_types()) {
    SCOPED_TRACE(t.name);
    const Problem p = least_squares(16, test_cols(t), 9);
    GptqOptions o;
    o.importance = true;
    GptqStats stats;
    auto g = quantize_gptq(t, p.w.data(), p.rows, p.cols, p.h, o, &stats);
    ASSERT_TRUE(g.ok()) << g.status().message();
    EXPECT_DOUBLE_EQ(stats.proxy_error, hessian_proxy_error(p.w.data(), dequantized(*g).data(), p.rows, p.cols, p.h));
    auto r = quantize_rtn(t, p.w.data(), p.rows, p.cols, {});
    EXPECT_LT(stats.proxy_error, hessian_proxy_error(p.w.data(), dequantized(*r).data(), p.rows, p.cols, p.h));
  }
}

TEST(QuantGguf, AwqSearchRunsOnGgufTypesAndAlphaZeroIsRtn) {
  const GgufBlockType& t = gguf_block_types()[0];
  const int64_t cols = test_cols(t), n = 64;
  const std::vector<float> w1 = gaussian(12, cols, 1), w2 = gaussian(8, cols, 2);
  std::vector<float> x = gaussian(n, cols, 3);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < cols; j += 11) x[i * cols + j] *= 20.0f;  // salient channels
  }
  std::vector<float> mean_abs(static_cast<size_t>(cols), 0.0f);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < cols; ++j) mean_abs[j] += std::fabs(x[i * cols + j]) / static_cast<float>(n);
  }
  auto best = search_awq_scales(t, {w1.data(), w2.data()}, {12, 8}, cols, x.data(), n, mean_abs, AwqSearch{10});
  ASSERT_TRUE(best.ok()) << best.status().message();
  auto plain = search_awq_scales(t, {w1.data(), w2.data()}, {12, 8}, cols, x.data(), n, mean_abs, AwqSearch{1});
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->alpha, 0.0f);
  for (float s : plain->scales) ASSERT_EQ(s, 1.0f);
  EXPECT_LE(best->error, plain->error);
  EXPECT_GT(best->alpha, 0.0f) << "salient channels 20x louder: some alpha > 0 should pay";
}

TEST(QuantGguf, ShapesATypeCannotHoldAreRefusedByEveryQuantizer) {
  for (const GgufBlockType& t : gguf_block_types()) {
    SCOPED_TRACE(t.name);
    const int64_t rows = 4, cols = t.block_size + 16;
    const std::vector<float> w = gaussian(rows, cols, 1);
    const std::string shape = fmt::format("[{}, {}]", rows, cols);
    auto expect_named = [&](const Status& s) {
      ASSERT_FALSE(s.ok());
      EXPECT_NE(s.message().find(t.name), std::string::npos) << s.message();
      EXPECT_NE(s.message().find(shape), std::string::npos) << s.message();
      EXPECT_EQ(s.message().find('\n'), std::string::npos) << s.message();
    };
    expect_named(quantize_rtn(t, w.data(), rows, cols, {}).status());
    expect_named(quantize_gptq(t, w.data(), rows, cols, diagonal_hessian(cols), {}).status());
    const std::vector<float> ones(static_cast<size_t>(cols), 1.0f);
    expect_named(search_awq_scales(t, {w.data()}, {rows}, cols, w.data(), rows, ones, {}).status());
    expect_named(quantize_matrix(t.name, w.data(), rows, cols).status());
  }
}

TEST(QuantColumnScales, ScaledFormatsReproduceRtnBytes) {
  // The ColumnScales GPTQ drives, used as RTN: choose every group from W, quantize
  // every column; the bytes are the formats layer's.
  const int64_t rows = 6, cols = 300;  // partial last groups
  const std::vector<float> w = gaussian(rows, cols, 8);
  for (const char* name : {"int4_g128_asym", "int3_g128", "nvfp4", "mxfp4", "int8_pc", "fp8_e4m3"}) {
    SCOPED_TRACE(name);
    const WeightFormat f = get(WeightFormat::find(name));
    ColumnScalesOptions o;
    o.tensor_amax = testing::max_abs(w);
    auto scales = f.column_scales(rows, cols, o);
    ASSERT_TRUE(scales.ok()) << scales.status().message();
    ASSERT_TRUE((*scales)->choose(w.data(), 0, cols, {}).ok());
    std::vector<float> x(static_cast<size_t>(rows)), q(x.size()), deq(w.size());
    for (int64_t c = 0; c < cols; ++c) {
      for (int64_t r = 0; r < rows; ++r) x[r] = w[r * cols + c];
      (*scales)->quantize_column(c, x.data(), q.data());
      for (int64_t r = 0; r < rows; ++r) deq[r * cols + c] = q[r];
    }
    const QuantizedTensor got = get((*scales)->pack());
    const QuantizedTensor want = get(f.quantize(w.data(), rows, cols));
    EXPECT_EQ(got.codes, want.codes);
    EXPECT_EQ(got.scales, want.scales);
    EXPECT_EQ(got.mins, want.mins);
    EXPECT_EQ(got.tensor_scale, want.tensor_scale);
    std::vector<float> back(w.size());
    ASSERT_TRUE(f.dequantize(got, back.data()).ok());
    EXPECT_EQ(back, deq);  // quantize_column's values are the stored ones
  }
}

}  // namespace
}  // namespace lowbit
