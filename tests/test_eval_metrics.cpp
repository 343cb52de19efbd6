// Metric code: each on inputs whose answer is known in closed form.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "eval/bench.h"
#include "eval/metrics.h"
#include "eval/perplexity.h"
#include "eval/sampler.h"

namespace lowbit {
namespace {

TEST(EvalMetrics, RunningMeanAndStderr) {
  RunningMean m;
  for (double x : {1.0, 2.0, 3.0, 4.0}) m.add(x);
  EXPECT_DOUBLE_EQ(m.mean(), 2.5);
  // population variance 1.25; stderr = sqrt(1.25 / 3)
  EXPECT_NEAR(m.stderr_of_mean(), std::sqrt(1.25 / 3.0), 1e-12);
  RunningMean one;
  one.add(5.0);
  EXPECT_EQ(one.stderr_of_mean(), 0.0);
}

TEST(EvalMetrics, LogSoftmaxOfUniformAndShifted) {
  std::vector<double> logp;
  const float uniform[4] = {3.0f, 3.0f, 3.0f, 3.0f};
  log_softmax(uniform, 4, logp);
  for (double v : logp) EXPECT_NEAR(v, -std::log(4.0), 1e-12);
  const float big[2] = {1000.0f, 0.0f};  // no overflow
  log_softmax(big, 2, logp);
  EXPECT_NEAR(logp[0], 0.0, 1e-12);
  EXPECT_NEAR(logp[1], -1000.0, 1e-9);
}

TEST(EvalMetrics, KlDivergenceKnownValues) {
  // KL(P||Q) for P = (1/2, 1/2), Q = (1/4, 3/4): 0.5 ln 2 + 0.5 ln(2/3).
  const std::vector<double> p = {std::log(0.5), std::log(0.5)};
  const std::vector<double> q = {std::log(0.25), std::log(0.75)};
  EXPECT_NEAR(kl_divergence(p, q), 0.5 * std::log(2.0) + 0.5 * std::log(2.0 / 3.0), 1e-12);
  EXPECT_EQ(kl_divergence(p, p), 0.0);
}

TEST(EvalMetrics, QuantileAndMedian) {
  std::vector<double> v;
  for (int i = 0; i <= 100; ++i) v.push_back(100 - i);
  EXPECT_DOUBLE_EQ(quantile(v, 0.99), 99.0);
  EXPECT_DOUBLE_EQ(quantile(v, 0.5), 50.0);
  EXPECT_DOUBLE_EQ(quantile({1.0, 2.0}, 0.5), 1.5);
  EXPECT_DOUBLE_EQ(median({3.0, 1.0, 2.0}), 2.0);
  EXPECT_DOUBLE_EQ(median({4.0, 1.0, 2.0, 3.0}), 2.5);
}

TEST(EvalMetrics, SpearmanMonotoneAndReversed) {
  std::vector<double> x, cube, falling;
  for (int i = 0; i < 12; ++i) {
    x.push_back(i - 5.5);
    cube.push_back(std::exp(0.7 * i) + i * i * i);  // increasing, far from linear
    falling.push_back(-cube.back());
  }
  EXPECT_DOUBLE_EQ(spearman_rank_correlation(x, cube), 1.0);
  EXPECT_DOUBLE_EQ(spearman_rank_correlation(x, falling), -1.0);
}

TEST(EvalMetrics, SpearmanWithTiesByHand) {
  // a = (1, 2, 2, 3) has ranks (1, 2.5, 2.5, 4); b = (10, 30, 20, 40) has (1, 3, 2, 4).
  // Both means are 2.5; deviations (-1.5, 0, 0, 1.5) and (-1.5, 0.5, -0.5, 1.5):
  // Σ da·db = 2.25 + 2.25 = 4.5, Σ da² = 4.5, Σ db² = 5, so
  // rho = 4.5 / sqrt(4.5 · 5) = sqrt(0.9) = 0.948683... The shortcut
  // 1 − 6 Σd² / (n(n² − 1)) = 1 − 6 · 0.5 / 60 = 0.95 would be wrong here.
  EXPECT_NEAR(spearman_rank_correlation({1, 2, 2, 3}, {10, 30, 20, 40}), std::sqrt(0.9), 1e-15);
  // The same pairs in another order.
  EXPECT_NEAR(spearman_rank_correlation({2, 3, 1, 2}, {20, 40, 10, 30}), std::sqrt(0.9), 1e-15);
}

TEST(EvalMetrics, SpearmanUndefinedIsNan) {
  EXPECT_TRUE(std::isnan(spearman_rank_correlation({1, 1, 1}, {1, 2, 3})));  // constant
  EXPECT_TRUE(std::isnan(spearman_rank_correlation({1, 2, 3}, {4, 4, 4})));
  EXPECT_TRUE(std::isnan(spearman_rank_correlation({1}, {2})));  // one point
  EXPECT_TRUE(std::isnan(spearman_rank_correlation({}, {})));
  EXPECT_TRUE(std::isnan(spearman_rank_correlation({1, 2}, {1, 2, 3})));  // sizes differ
  EXPECT_TRUE(std::isnan(spearman_rank_correlation({1, std::nan(""), 3}, {1, 2, 3})));
}

TEST(EvalMetrics, SplitDocuments) {
  const auto docs = split_documents("  a b \n<|sep|>\n<|sep|>c\n", "<|sep|>");
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0], "a b");
  EXPECT_EQ(docs[1], "c");
}

TEST(EvalMetrics, ProtocolNames) {
  EXPECT_EQ(parse_ppl_protocol("gptq").value(), PplProtocol::kGptq);
  EXPECT_EQ(parse_ppl_protocol("llamacpp").value(), PplProtocol::kLlamaCpp);
  EXPECT_FALSE(parse_ppl_protocol("wikitext").ok());
}

TEST(EvalSampler, GreedyTopKTopP) {
  std::mt19937_64 rng(7);
  const float logits[5] = {0.0f, 5.0f, 4.9f, -1.0f, 5.0f};
  SamplingOptions greedy;
  EXPECT_EQ(sample_token(logits, 5, greedy, rng), 1);  // tie 1 vs 4 goes to the lowest id
  SamplingOptions top1;
  top1.temperature = 1.0f;
  top1.top_k = 1;
  for (int i = 0; i < 20; ++i) EXPECT_EQ(sample_token(logits, 5, top1, rng), 1);
  // top-p that the first candidate alone covers behaves like top-1.
  const float peaked[3] = {10.0f, 0.0f, 0.0f};
  SamplingOptions nucleus;
  nucleus.temperature = 1.0f;
  nucleus.top_p = 0.5f;
  for (int i = 0; i < 20; ++i) EXPECT_EQ(sample_token(peaked, 3, nucleus, rng), 0);
  // Temperature sampling follows the softmax: p(0) = 1/(1+e^-1) for logits {1, 0}.
  const float two[2] = {1.0f, 0.0f};
  SamplingOptions t1;
  t1.temperature = 1.0f;
  int zeros = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) zeros += sample_token(two, 2, t1, rng) == 0;
  EXPECT_NEAR(zeros / double(n), 1.0 / (1.0 + std::exp(-1.0)), 0.015);
}

TEST(EvalSampler, SameSeedSameTokens) {
  const float logits[6] = {1.0f, 0.5f, 0.2f, 0.9f, 0.1f, 0.0f};
  SamplingOptions s;
  s.temperature = 0.8f;
  s.seed = 42;
  std::mt19937_64 a(s.seed), b(s.seed);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(sample_token(logits, 6, s, a), sample_token(logits, 6, s, b));
}

}  // namespace
}  // namespace lowbit
