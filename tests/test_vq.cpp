// Residual vector quantization (formats/vq_code.h, quant/vq_kmeans.h,
// quant/vq_quantize.h, GPTQ's 8-column joint step): k-means on planted
// clusters, exact encoding of centroid sums, the bits-per-weight arithmetic,
// GPTQ with H = I against RTN, the .lowbit round trip and a hostile record,
// names and shapes refused with one-line errors, stories260K through w2-vq.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <set>
#include <vector>

#include "core/half.h"
#include "core/thread_pool.h"
#include "model/llama_model.h"
#include "model_writers.h"
#include "model/loader.h"
#include "model/lowbit_file.h"
#include "model/quantized_linear.h"
#include "pipeline/quantize_pipeline.h"
#include "pipeline/recipe.h"
#include "quant/quantizers.h"
#include "quant/vq_kmeans.h"
#include "quant/vq_quantize.h"
#include "quant/weight_format.h"
#include "test_quant_util.h"
#include "test_quantize_util.h"
#include "test_util.h"

namespace lowbit {
namespace {

using testing::get;

VqParams params(int stages, int group) {
  VqParams p;
  p.stages = stages;
  p.group = group;
  return p;
}

// A codebook stage whose 256 centroids are the corners of the cube [-h, h]^8:
// centroid k has +h in coordinate j when bit j of k is set. Distinct, exact in FP16.
void cube_stage(float h, float* stage) {
  for (int k = 0; k < kVqCentroids; ++k) {
    for (int j = 0; j < kVqDim; ++j) stage[k * kVqDim + j] = ((k >> j) & 1) != 0 ? h : -h;
  }
}

TEST(VqKmeans, RecoversPlantedCentroidsExactly) {
  // 256 distinct centers, each repeated 3 times: k-means++ draws a point at distance
  // > 0 each time, so it seeds one centroid per center, and Lloyd keeps them.
  const int k = kVqCentroids, d = kVqDim, copies = 3;
  std::vector<float> centers(static_cast<size_t>(k * d));
  for (int c = 0; c < k; ++c) {
    for (int j = 0; j < d; ++j) centers[c * d + j] = static_cast<float>((c * 37 + j * 11) % 29) - 14.0f + 0.25f * j;
  }
  std::vector<float> points;
  for (int r = 0; r < copies; ++r) points.insert(points.end(), centers.begin(), centers.end());
  KmeansOptions o;
  const KmeansResult km = get(weighted_kmeans(points.data(), nullptr, k * copies, d, o));
  EXPECT_EQ(km.error, 0.0);
  std::set<std::vector<float>> want, got;
  for (int c = 0; c < k; ++c) {
    want.insert(std::vector<float>(centers.begin() + c * d, centers.begin() + (c + 1) * d));
    got.insert(std::vector<float>(km.centroids.begin() + c * d, km.centroids.begin() + (c + 1) * d));
  }
  EXPECT_EQ(got, want);
  for (int i = 0; i < k * copies; ++i) EXPECT_EQ(km.assign[i], km.assign[i % k]) << i;
}

TEST(VqKmeans, FindsNoisyClustersAtTheirWeightedMeans) {
  // Four clusters 20 apart with noise of at most 0.5 per coordinate: every point is
  // nearer its own center than any other, so the optimum is each cluster's weighted mean.
  const int d = kVqDim, per = 40;
  std::vector<float> points, weights;
  std::vector<std::vector<double>> num(4, std::vector<double>(d)), den(4, std::vector<double>(d));
  for (int c = 0; c < 4; ++c) {
    for (int i = 0; i < per; ++i) {
      for (int j = 0; j < d; ++j) {
        const float noise = static_cast<float>((i * 13 + j * 7 + c * 5) % 21 - 10) / 20.0f;
        const float x = (j == c ? 20.0f : 0.0f) + noise;
        const float w = 1.0f + static_cast<float>((i + j) % 3);
        points.push_back(x);
        weights.push_back(w);
        num[c][j] += static_cast<double>(w) * x;
        den[c][j] += w;
      }
    }
  }
  KmeansOptions o;
  o.centroids = 4;
  o.seed = 7;
  ThreadPool pool(2);
  o.pool = &pool;
  const KmeansResult km = get(weighted_kmeans(points.data(), weights.data(), 4 * per, d, o));
  for (int c = 0; c < 4; ++c) {
    const int32_t a = km.assign[c * per];
    for (int i = 0; i < per; ++i) EXPECT_EQ(km.assign[c * per + i], a) << "cluster " << c << " point " << i;
    for (int j = 0; j < d; ++j) {
      // The centroid is one division of sums of 160 float products accumulated in double:
      // a few float ulps of |x| <= 20.5.
      EXPECT_NEAR(km.centroids[a * d + j], num[c][j] / den[c][j], 1e-5) << "cluster " << c << " coordinate " << j;
    }
  }
  std::set<int32_t> used(km.assign.begin(), km.assign.end());
  EXPECT_EQ(used.size(), 4u);
  // Bad inputs are errors, not crashes.
  EXPECT_FALSE(weighted_kmeans(points.data(), nullptr, 0, d, o).ok());
  weights[3] = -1.0f;
  EXPECT_FALSE(weighted_kmeans(points.data(), weights.data(), 4 * per, d, o).ok());
}

TEST(VqQuant, CentroidSumsEncodeExactly) {
  // Stage 0: cube corners at ±4 (8 apart); stage 1: ±1/4 (norm sqrt(8)/4 < 4, half the
  // stage-0 spacing), stage 2: ±1/32. Greedy finds every stage exactly, the refinement
  // keeps it, and the decoded sum is x bit for bit (all values dyadic, exact in float).
  for (int stages : {1, 2, 3}) {
    const VqParams p = params(stages, 16);
    std::vector<float> cb(static_cast<size_t>(stages * kVqCentroids * kVqDim));
    const float halves[] = {4.0f, 0.25f, 1.0f / 32};
    for (int s = 0; s < stages; ++s) cube_stage(halves[s], cb.data() + s * kVqCentroids * kVqDim);
    std::vector<float> x(16);
    const uint8_t want[2][3] = {{0, 255, 17}, {200, 3, 128}};
    for (int v = 0; v < 2; ++v) vq_decode_vector(p, cb.data(), want[v], 0.5f, x.data() + v * kVqDim);
    std::vector<uint8_t> codes(static_cast<size_t>(2 * stages));
    const uint16_t half = float_to_fp16(0.5f);
    const VqGroupCode got =
        get(vq_encode_group(p, VqCodebooks::from_values(cb), x.data(), nullptr, 16, codes.data(), &half));
    EXPECT_EQ(got.error, 0.0) << stages << " stages";
    for (int v = 0; v < 2; ++v) {
      for (int s = 0; s < stages; ++s) EXPECT_EQ(codes[v * stages + s], want[v][s]) << "vector " << v << " stage " << s;
    }
    std::vector<float> back(16);
    vq_decode_row(p, cb.data(), codes.data(), &half, 16, back.data());
    EXPECT_EQ(back, x) << stages << " stages";
  }
}

TEST(VqQuant, ZeroGroupsAndTheAllZeroMatrixDecodeToZero) {
  const WeightFormat f = get(WeightFormat::find("vq2x8_g16"));
  std::vector<float> x = testing::gaussian(int64_t{4}, int64_t{48}, uint64_t{5});
  for (int c = 16; c < 32; ++c) x[2 * 48 + c] = 0.0f;  // row 2, group 1
  const QuantizedTensor t = get(f.quantize(x.data(), 4, 48));
  EXPECT_EQ(t.scales[2 * (2 * 3 + 1)], 0);
  EXPECT_EQ(t.scales[2 * (2 * 3 + 1) + 1], 0);
  std::vector<float> out(x.size());
  ASSERT_TRUE(f.dequantize(t, out.data()).ok());
  for (int c = 16; c < 32; ++c) EXPECT_EQ(out[2 * 48 + c], 0.0f) << c;
  const std::vector<float> zero(64, 0.0f);
  const QuantizedTensor z = get(f.quantize(zero.data(), 8, 8));
  ASSERT_TRUE(f.dequantize(z, out.data()).ok());
  for (int i = 0; i < 64; ++i) EXPECT_EQ(out[i], 0.0f) << i;
}

TEST(VqQuant, BitsPerWeightCountCodesScalesAndCodebooks) {
  const WeightFormat f = get(WeightFormat::find("vq2x8_g256"));
  ASSERT_NE(f.vq_params(), nullptr);
  EXPECT_EQ(f.name(), "vq2x8_g256");
  EXPECT_EQ(f.col_multiple(), 8);
  // [576, 1536]: 2 bits of codes + 16 / 256 of scales = 2.0625 (tcq2_g256's size), plus
  // the codebooks: 2 stages x 256 x 8 FP16 = 65536 bits over 884736 weights.
  const double want = 2.0625 + 65536.0 / (576.0 * 1536.0);
  EXPECT_NEAR(get(f.bits_per_element(576, 1536)), want, 1e-12);
  EXPECT_NEAR(f.vq_params()->bits_per_weight(576, 1536), want, 1e-12);
  EXPECT_DOUBLE_EQ(f.vq_params()->row_bits_per_weight(1536), 2.0625);
  EXPECT_DOUBLE_EQ(get(WeightFormat::find("tcq2_g256")).bits_per_element(576, 1536).value(), 2.0625);
  const WeightFormat::ArraySizes s = get(f.array_sizes(576, 1536));
  EXPECT_EQ(s.codes, 576u * 192 * 2);
  EXPECT_EQ(s.scales, 576u * 6 * 2);
  EXPECT_EQ(s.mins, 2u * 256 * 8 * 2);
  // One and three stages, a partial last group: [3, 200] with G = 64 has 4 groups per row.
  EXPECT_NEAR(get(get(WeightFormat::find("vq1x8_g64")).bits_per_element(3, 200)),
              1.0 + 16.0 * 4 / 200 + 256.0 * 8 * 16 / 600, 1e-12);
  EXPECT_NEAR(get(get(WeightFormat::find("vq3x8_g8")).bits_per_element(2, 16)), 3.0 + 2.0 + 3.0 * 256 * 8 * 16 / 32,
              1e-12);
}

TEST(VqQuant, GaussianErrorIsInsideTheRateDistortionBand) {
  // iid N(0, 1), [256, 1024]: at 2 bits per weight no code beats the Gaussian
  // distortion-rate bound 2^-4 = 0.0625 of the energy; a trained 2-stage VQ must
  // beat the best 2-bit scalar quantizer (Lloyd-Max, 0.1175). At 1 bit (vq1x8) the
  // bound is 2^-2 = 0.25 and scalar Lloyd-Max (sign times E|x|) gives 1 - 2/pi = 0.3634.
  // (The codebook bits are not counted: they are per tensor, not per weight.)
  const int64_t rows = 256, cols = 1024;
  const std::vector<float> x = testing::gaussian(int64_t{rows}, int64_t{cols}, uint64_t{11});
  double energy = 0.0;
  for (float v : x) energy += static_cast<double>(v) * v;
  ThreadPool pool(2);
  auto relative_mse = [&](const char* name) {
    const WeightFormat f = get(WeightFormat::find(name));
    const QuantizedTensor t = get(f.quantize(x.data(), rows, cols, {}, &pool));
    std::vector<float> out(x.size());
    EXPECT_TRUE(f.dequantize(t, out.data()).ok());
    double e = 0.0;
    for (size_t i = 0; i < x.size(); ++i) e += (static_cast<double>(x[i]) - out[i]) * (x[i] - out[i]);
    return e / energy;
  };
  const double vq2 = relative_mse("vq2x8_g256"), vq1 = relative_mse("vq1x8_g256");
  EXPECT_GT(vq2, 0.0625);
  EXPECT_LT(vq2, 0.1175);
  EXPECT_GT(vq1, 0.25);
  EXPECT_LT(vq1, 0.3634);
}

TEST(VqQuant, CodesDoNotDependOnThreadsOrImportanceScale) {
  const int64_t rows = 12, cols = 96;
  const std::vector<float> x = testing::gaussian(int64_t{rows}, int64_t{cols}, uint64_t{13});
  const WeightFormat f = get(WeightFormat::find("vq2x8_g32"));
  ThreadPool pool(3);
  const QuantizedTensor serial = get(f.quantize(x.data(), rows, cols));
  const QuantizedTensor threaded = get(f.quantize(x.data(), rows, cols, {}, &pool));
  EXPECT_EQ(serial.codes, threaded.codes);
  EXPECT_EQ(serial.scales, threaded.scales);
  EXPECT_EQ(serial.mins, threaded.mins);
  // Importance weights the error per column; all-equal importance is no importance at all.
  std::vector<float> ones(static_cast<size_t>(cols), 1.0f);
  QuantizeOptions o;
  o.importance = ones;
  const QuantizedTensor weighted = get(f.quantize(x.data(), rows, cols, o));
  EXPECT_EQ(weighted.codes, serial.codes);
  EXPECT_EQ(weighted.mins, serial.mins);
}

TEST(VqGptq, IdentityHessianGivesTheRtnCodes) {
  const int64_t rows = 16, cols = 256;
  const std::vector<float> w = testing::gaussian(int64_t{rows}, int64_t{cols}, uint64_t{21});
  std::vector<double> h(static_cast<size_t>(cols * cols), 0.0);
  for (int64_t i = 0; i < cols; ++i) h[i * cols + i] = 1.0;
  for (const char* name : {"vq1x8_g64", "vq2x8_g256", "vq3x8_g128"}) {
    const WeightFormat f = get(WeightFormat::find(name));
    const QuantizedWeight rtn = get(quantize_rtn(f, w.data(), rows, cols, {}));
    const QuantizedWeight gptq = get(quantize_gptq(f, w.data(), rows, cols, h, {}));
    EXPECT_EQ(gptq.tensor.codes, rtn.tensor.codes) << name;
    EXPECT_EQ(gptq.tensor.scales, rtn.tensor.scales) << name;
    EXPECT_EQ(gptq.tensor.mins, rtn.tensor.mins) << name;
  }
}

TEST(VqGptq, DiagonalHessianWithImportanceGivesTheWeightedRtnCodes) {
  // H diagonal: U is diagonal, nothing is fed forward, and with `importance` GPTQ
  // trains the codebooks and chooses scales and codes weighted by diag(H), as RTN
  // with that importance does.
  const int64_t rows = 32, cols = 128;
  const std::vector<float> w = testing::gaussian(int64_t{rows}, int64_t{cols}, uint64_t{41});
  std::vector<double> h(static_cast<size_t>(cols * cols), 0.0);
  RtnOptions ro;
  for (int64_t j = 0; j < cols; ++j) {
    h[j * cols + j] = 1.0 + static_cast<double>(j % 5);
    ro.importance.push_back(static_cast<float>(h[j * cols + j]));
  }
  GptqOptions go;
  go.importance = true;
  const WeightFormat f = get(WeightFormat::find("vq2x8_g64"));
  const QuantizedWeight rtn = get(quantize_rtn(f, w.data(), rows, cols, ro));
  const QuantizedWeight gptq = get(quantize_gptq(f, w.data(), rows, cols, h, go));
  EXPECT_EQ(gptq.tensor.codes, rtn.tensor.codes);
  EXPECT_EQ(gptq.tensor.scales, rtn.tensor.scales);
  EXPECT_EQ(gptq.tensor.mins, rtn.tensor.mins);
  // And the weighting is not a no-op: unweighted RTN trains other codebooks.
  EXPECT_NE(get(quantize_rtn(f, w.data(), rows, cols, {})).tensor.mins, rtn.tensor.mins);
}

TEST(VqGptq, FeedingTheBlockErrorForwardLowersTheProxyError) {
  // 256 x 256: 8192 vectors, 32 per centroid of a stage. (With 16 rows, 2 per centroid,
  // the codebooks memorise W0 and RTN on W0 is near exact, while GPTQ codes the updated
  // weights, which the codebooks were not trained on.)
  const int64_t rows = 256, cols = 256;
  const testing::Problem prob = testing::least_squares(rows, cols, 23);
  for (const char* name : {"vq1x8_g64", "vq2x8_g256"}) {
    const WeightFormat f = get(WeightFormat::find(name));
    const QuantizedWeight rtn = get(quantize_rtn(f, prob.w.data(), rows, cols, {}));
    const double rtn_error = hessian_proxy_error(prob.w.data(), testing::dequantized(rtn).data(), rows, cols, prob.h);
    ThreadPool pool(2);
    GptqOptions o;
    o.pool = &pool;
    GptqStats stats;
    const QuantizedWeight gptq = get(quantize_gptq(f, prob.w.data(), rows, cols, prob.h, o, &stats));
    EXPECT_NEAR(stats.proxy_error,
                hessian_proxy_error(prob.w.data(), testing::dequantized(gptq).data(), rows, cols, prob.h),
                1e-9 * stats.proxy_error);
    EXPECT_LT(stats.proxy_error, rtn_error) << name;
    const QuantizedWeight serial = get(quantize_gptq(f, prob.w.data(), rows, cols, prob.h, {}));
    EXPECT_EQ(serial.tensor.codes, gptq.tensor.codes) << name;
  }
  GptqOptions act;
  act.act_order = true;
  auto refused = quantize_gptq(get(WeightFormat::find("vq2x8_g256")), prob.w.data(), rows, cols, prob.h, act);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("act_order"), std::string::npos) << refused.status().message();
}

TEST(VqFormat, NamesShapesAndStoredSizesAreRefusedWithOneLineErrors) {
  for (const char* bad : {"vq4x8_g256", "vq0x8_g8", "vq2x4_g256", "vq2x8_g100", "vq2x8", "vq2x8_gx", "vqx8_g8", "vq"}) {
    auto f = WeightFormat::find(bad);
    ASSERT_FALSE(f.ok()) << bad;
    EXPECT_NE(f.status().message().find(std::string("'") + bad + "'"), std::string::npos) << f.status().message();
    EXPECT_EQ(f.status().message().find('\n'), std::string::npos);
  }
  const WeightFormat f = get(WeightFormat::find("vq2x8_g256"));
  for (int64_t cols : {100, 4, 0}) {
    const Status s = f.check_shape(4, cols);
    ASSERT_FALSE(s.ok()) << cols;
    EXPECT_NE(s.message().find(std::to_string(cols)), std::string::npos) << s.message();
  }
  const std::vector<float> x(4 * 100, 1.0f);
  EXPECT_FALSE(f.quantize(x.data(), 4, 100).ok());
  QuantizeOptions stochastic;
  stochastic.rounding = Rounding::kStochastic;
  EXPECT_FALSE(f.quantize(x.data(), 4, 96, stochastic).ok());
  // Stored sizes, and non-finite codebook values, are checked on dequantize.
  QuantizedTensor t = get(f.quantize(x.data(), 4, 96));
  std::vector<float> out(4 * 96);
  ASSERT_TRUE(f.dequantize(t, out.data()).ok());
  QuantizedTensor short_book = t;
  short_book.mins.pop_back();
  const Status s = f.dequantize(short_book, out.data());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("codebooks 8191"), std::string::npos) << s.message();
  QuantizedTensor inf_book = t;
  inf_book.mins[6] = 0x00;
  inf_book.mins[7] = 0x7c;  // +inf
  const Status inf = f.dequantize(inf_book, out.data());
  ASSERT_FALSE(inf.ok());
  EXPECT_NE(inf.message().find("not finite"), std::string::npos) << inf.message();
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(VqFormat, TensorsRoundTripThroughALowbitFileAndAWrongCodebookLengthIsRefused) {
  testing::ScopedTempDir dir("vq_file");
  const std::string path = dir.file("v.lbq");
  const int64_t rows = 6, cols = 80;
  const std::vector<float> w = testing::gaussian(int64_t{rows}, int64_t{cols}, uint64_t{31});
  std::vector<QuantizedWeight> stored;
  for (const char* name : {"vq1x8_g64", "vq2x8_g256", "vq3x8_g16"}) {
    stored.push_back(get(quantize_rtn(get(WeightFormat::find(name)), w.data(), rows, cols, {})));
  }
  LowbitFileInfo info;
  info.config.n_layers = 1;
  info.config.dim = 32;
  info.config.n_heads = 4;
  info.config.n_kv_heads = 2;
  info.config.head_dim = 8;
  info.config.ffn_dim = 48;
  info.config.vocab_size = 64;
  {
    auto writer = get(LowbitFileWriter::create(path, info, nullptr));
    for (const QuantizedWeight& q : stored) ASSERT_TRUE(writer.add(q.format, {rows, cols}, q, "rtn").ok()) << q.format;
    QuantizedWeight short_book = stored.front();
    short_book.tensor.mins.resize(100);
    const Status refused = writer.add("short", {rows, cols}, short_book, "rtn");
    ASSERT_FALSE(refused.ok());
    EXPECT_NE(refused.message().find("short"), std::string::npos) << refused.message();
    ASSERT_TRUE(writer.finish().ok());
  }
  {
    const LowbitModelFile file = get(LowbitModelFile::open(path));
    for (const QuantizedWeight& want : stored) {
      const QuantizedWeight got = get(file.read(want.format, {rows, cols}));
      EXPECT_EQ(got.format, want.format);
      EXPECT_EQ(got.tensor.codes, want.tensor.codes) << want.format;
      EXPECT_EQ(got.tensor.scales, want.tensor.scales) << want.format;
      EXPECT_EQ(got.tensor.mins, want.tensor.mins) << want.format;
      EXPECT_EQ(get(file.read_fp32(want.format, {rows, cols})), testing::dequantized(want)) << want.format;
      const nlohmann::json* definition = file.record_field(want.format, "vq");
      ASSERT_NE(definition, nullptr) << want.format;
      EXPECT_EQ((*definition)["stages"].get<size_t>(), want.tensor.mins.size() / 4096) << want.format;
    }
  }
  // A hostile record: the codebook blob of vq2x8_g256 (8192 bytes) claims 8190 (same
  // text length, so the offsets of the index hold). One line naming the tensor.
  std::string bytes = read_bytes(path);
  const std::string field = "\"bytes\":8192";
  const size_t at = bytes.find(field);
  ASSERT_NE(at, std::string::npos);
  ASSERT_EQ(bytes.find(field, at + 1), std::string::npos);  // the only blob of that size
  bytes[at + field.size() - 1] = '0';
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  auto file = LowbitModelFile::open(path);
  Status s = file.ok() ? file->read("vq2x8_g256", {rows, cols}).status() : file.status();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("vq2x8_g256"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find('\n'), std::string::npos) << s.message();
}

class VqPipeline : public testing::StoriesPipelineTest {};

TEST_F(VqPipeline, W2VqRoundTripsThroughALowbitFileAndRuns) {
  // stories260K: dim 64 (q/k/v/o/gate/up inputs: 8 vectors), ffn 172 (down_proj: 172 % 8 = 4, the fallback).
  testing::ScopedTempDir dir("vq_pipeline");
  const Recipe recipe = get(load_recipe("w2-vq"));
  PipelineOptions o = pipeline_options(dir.file("v.lbq"));
  o.threads = 2;
  const QuantizeReport report = get(quantize_model(recipe, o));
  const LowbitModelFile file = get(LowbitModelFile::open(dir.file("v.lbq")));
  int vq = 0;
  for (const ModuleReport& m : report.modules) {
    if (m.name == "token_embedding" || m.name == "lm_head") continue;
    const bool fits = m.cols % 8 == 0;
    EXPECT_EQ(m.format, fits ? "vq2x8_g256" : "int2_g64") << m.name;
    const QuantizedWeight q = get(file.read(m.name, {m.rows, m.cols}));
    if (fits) {
      ++vq;
      // 64 columns: 2 bits + one FP16 scale per row (16 / 64) + 65536 codebook bits.
      EXPECT_NEAR(q.bits_per_weight(), 2.25 + 65536.0 / static_cast<double>(m.rows * m.cols), 1e-9)
          << m.name;
    }
  }
  EXPECT_EQ(vq, 5 * 6);
  // The runtime keeps them as FP32 (no packed kernel) and runs the model.
  LoadedModel loaded = get(load_model(dir.file("v.lbq"), {}));
  LlamaModel model = get(LlamaModel::create(loaded.config, loaded.weights));
  ASSERT_TRUE(attach_quantized_linears(model, std::move(loaded.quantized_linears)).ok());
  const std::string described = model.find_linear("layers.1.q_proj")->describe();
  EXPECT_EQ(described.rfind("vq2x8_g256", 0), 0u) << described;
  const std::vector<int32_t> tokens = {1, 403, 407, 261, 378};
  std::unique_ptr<KvCache> cache = model.make_fp32_cache(static_cast<int>(tokens.size()));
  ThreadPool pool(1);
  std::vector<float> logits(tokens.size() * static_cast<size_t>(loaded.config.vocab_size));
  ASSERT_TRUE(model.forward(tokens.data(), static_cast<int>(tokens.size()), 0, *cache, logits.data(), pool).ok());
  for (size_t i = 0; i < logits.size(); ++i) ASSERT_TRUE(std::isfinite(logits[i])) << i;
}

}  // namespace
}  // namespace lowbit
