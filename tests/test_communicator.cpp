// The communicator (core/communicator.h) and the sharded statistics built on it
// (docs/MPI.md): a single process's collectives leave the data as it is; a job
// opened under `mpirun -np 2` (CTest Mpi.CommunicatorTwoRanks runs this file so)
// sums in rank order with the same bits on every rank; ActivationStats summed in
// shards equals the shard sums added in order, and known answers on exact data;
// RowSampler shards concatenate to one process's rows; the shard plan.
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "core/communicator.h"
#include "pipeline/activation_capture.h"
#include "pipeline/activation_stats.h"
#include "pipeline/calibration_shards.h"

namespace lowbit {
namespace {

TEST(Communicator, SingleProcessLeavesDataAsItIs) {
  SingleProcess comm;
  EXPECT_EQ(comm.rank(), 0);
  EXPECT_EQ(comm.size(), 1);
  std::vector<double> d = {1.5, -2.0};
  std::vector<float> f = {3.0f, -4.0f};
  std::vector<int64_t> i = {7, 8};
  ASSERT_TRUE(comm.allreduce_sum(d.data(), 2).ok());
  ASSERT_TRUE(comm.allreduce_sum(f.data(), 2).ok());
  ASSERT_TRUE(comm.allreduce_sum(i.data(), 2).ok());
  ASSERT_TRUE(comm.allreduce_max(f.data(), 2).ok());
  EXPECT_EQ(d, (std::vector<double>{1.5, -2.0}));
  EXPECT_EQ(f, (std::vector<float>{3.0f, -4.0f}));
  EXPECT_EQ(i, (std::vector<int64_t>{7, 8}));
  auto all = comm.allgather({1.0f, 2.0f, 3.0f});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, (std::vector<float>{1.0f, 2.0f, 3.0f}));
  int v = 42;
  ASSERT_TRUE(comm.broadcast(&v, sizeof v, 0).ok());
  EXPECT_EQ(v, 42);
}

// Rank r contributes x_r; the sum must be ((x_0 + x_1) + …) in rank order, bit for
// bit. Element 1 tells orders apart from 3 ranks on: ((1 + 1e16) − 1e16) = 0, while
// (1 + (1e16 − 1e16)) and ((−1e16 + 1e16) + 1) are 1.
std::vector<double> contribution(int rank) {
  const double tell = rank == 0 ? 1.0 : rank == 1 ? 1e16 : rank == 2 ? -1e16 : 0.25;
  return {1.0 + rank, tell, 0.1 * (rank + 1)};
}

TEST(Communicator, JobSumsInRankOrderOnEveryRank) {
  auto opened = open_communicator();
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  Communicator& comm = **opened;
  if (launcher_world_size() > 0) {
    EXPECT_EQ(comm.size(), launcher_world_size());
  }
  const int p = comm.size();
  const int r = comm.rank();
  std::vector<double> x = contribution(r);
  ASSERT_TRUE(comm.allreduce_sum(x.data(), 3).ok());
  std::vector<double> expect = contribution(0);
  for (int q = 1; q < p; ++q) {
    const std::vector<double> y = contribution(q);
    for (size_t i = 0; i < expect.size(); ++i) expect[i] = expect[i] + y[i];
  }
  for (size_t i = 0; i < expect.size(); ++i) EXPECT_EQ(std::memcmp(&x[i], &expect[i], sizeof(double)), 0) << i;

  std::vector<float> m = {static_cast<float>(r), -static_cast<float>(r)};
  ASSERT_TRUE(comm.allreduce_max(m.data(), 2).ok());
  EXPECT_EQ(m, (std::vector<float>{static_cast<float>(p - 1), 0.0f}));
  std::vector<int64_t> n = {r + 1};
  ASSERT_TRUE(comm.allreduce_sum(n.data(), 1).ok());
  EXPECT_EQ(n[0], static_cast<int64_t>(p) * (p + 1) / 2);

  // Rank r sends r + 1 values equal to r: rank order, sizes kept.
  auto all = comm.allgather(std::vector<float>(static_cast<size_t>(r + 1), static_cast<float>(r)));
  ASSERT_TRUE(all.ok());
  std::vector<float> want;
  for (int q = 0; q < p; ++q) want.insert(want.end(), static_cast<size_t>(q + 1), static_cast<float>(q));
  EXPECT_EQ(*all, want);

  int64_t v = r == p - 1 ? 1234 : -1;
  ASSERT_TRUE(comm.broadcast(&v, sizeof v, p - 1).ok());
  EXPECT_EQ(v, 1234);
}

// rows [n, in] of small integers: every sum below is exact, so the known answers hold in any order.
TEST(ShardedStats, KnownAnswerOnExactData) {
  // Shard 0: (1, 2), (3, 4); shard 1: (-1, 0), (2, 2).
  const std::vector<float> x = {1, 2, 3, 4, -1, 0, 2, 2};
  for (int calls : {1, 2, 4}) {  // one call straddling the shard start, one per shard, one per token
    ActivationStats stats({.hessian = HessianPrecision::kFp64, .names = {}}, {2});
    const int64_t per = 4 / calls;
    for (int c = 0; c < calls; ++c) stats.observe("l", x.data() + c * per * 2, per, 2);
    SingleProcess single;
    ASSERT_TRUE(stats.reduce(single).ok());
    const InputStats* s = stats.find("l");
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->n_tokens, 4);
    EXPECT_EQ(s->hessian(), (std::vector<double>{15, 18, 18, 24})) << calls << " calls";
    EXPECT_EQ(s->abs_sum, (std::vector<double>{7, 8}));
    EXPECT_EQ(s->abs_max, (std::vector<float>{3, 4}));
  }
}

std::vector<float> gaussian(int64_t n, int64_t in, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n * in));
  for (float& v : x) v = normal(rng) * (1.0f + 100.0f * (rng() % 17 == 0));
  return x;
}

// Windows of 37 tokens: 7 windows in 3 shards (2, 2, 3 windows): the sharded sums
// are the shard sums, each from zero in window order, added in shard order.
TEST(ShardedStats, ShardSumsAddedInOrder) {
  const int64_t len = 37, in = 24, windows = 7;
  const std::vector<float> x = gaussian(windows * len, in, 5);
  std::vector<int64_t> starts;
  for (int s = 1; s < 3; ++s) starts.push_back(shard_begin(windows, 3, s) * len);
  ASSERT_EQ(starts, (std::vector<int64_t>{2 * len, 4 * len}));
  ActivationStats sharded({.hessian = HessianPrecision::kFp64, .names = {}}, starts);
  ActivationStats plain({.hessian = HessianPrecision::kFp64, .names = {}});
  for (int64_t w = 0; w < windows; ++w) {
    sharded.observe("l", x.data() + w * len * in, len, in);
    plain.observe("l", x.data() + w * len * in, len, in);
  }
  SingleProcess single;
  ASSERT_TRUE(sharded.reduce(single).ok());
  std::vector<double> h_expect, abs_expect;
  const std::vector<int64_t> bounds = {0, 2, 4, 7};
  for (int s = 0; s < 3; ++s) {
    ActivationStats part({.hessian = HessianPrecision::kFp64, .names = {}});
    for (int64_t w = bounds[s]; w < bounds[s + 1]; ++w) part.observe("l", x.data() + w * len * in, len, in);
    const InputStats* p = part.find("l");
    const std::vector<double> h = p->hessian();
    if (s == 0) {
      h_expect = h;
      abs_expect = p->abs_sum;
      continue;
    }
    for (size_t i = 0; i < h.size(); ++i) h_expect[i] = h_expect[i] + h[i];
    for (size_t i = 0; i < abs_expect.size(); ++i) abs_expect[i] = abs_expect[i] + p->abs_sum[i];
  }
  const InputStats* s = sharded.find("l");
  EXPECT_EQ(std::memcmp(s->hessian().data(), h_expect.data(), h_expect.size() * sizeof(double)), 0);
  EXPECT_EQ(std::memcmp(s->abs_sum.data(), abs_expect.data(), abs_expect.size() * sizeof(double)), 0);
  EXPECT_EQ(s->abs_max, plain.find("l")->abs_max);
  EXPECT_EQ(s->n_tokens, windows * len);
  // The grouping changes only the rounding: within n·Σ|x_j||x_k|·eps of the one-shard sum.
  const std::vector<double> h_plain = plain.find("l")->hessian();
  const std::vector<double> h_sharded = s->hessian();
  int differ = 0;
  for (int64_t j = 0; j < in; ++j) {
    for (int64_t k = 0; k < in; ++k) {
      double bound = 0.0;
      for (int64_t t = 0; t < windows * len; ++t) bound += std::fabs(x[t * in + j] * x[t * in + k]);
      bound *= static_cast<double>(windows * len) * 1.2e-16;
      EXPECT_LE(std::fabs(h_sharded[j * in + k] - h_plain[j * in + k]), bound) << j << "," << k;
      differ += h_sharded[j * in + k] != h_plain[j * in + k];
    }
  }
  EXPECT_GT(differ, 0) << "no element rounded differently: the test data does not exercise the grouping";
}

// Two ranks' samplers started at their shards' first tokens pick one process's rows.
TEST(ShardedStats, RowSamplerShardsConcatenateToOneProcess) {
  const int64_t len = 10, in = 3, windows = 5, stride = 3;
  const std::vector<float> x = gaussian(windows * len, in, 9);
  RowSampler one({"l"}, stride, 1000);
  for (int64_t w = 0; w < windows; ++w) one.observe("l", x.data() + w * len * in, len, in);
  std::vector<float> joined;
  for (int s = 0; s < 2; ++s) {
    const int begin = shard_begin(windows, 2, s), end = shard_begin(windows, 2, s + 1);
    RowSampler part({"l"}, stride, 1000, begin * len);
    for (int64_t w = begin; w < end; ++w) part.observe("l", x.data() + w * len * in, len, in);
    joined.insert(joined.end(), part.find("l")->data.begin(), part.find("l")->data.end());
  }
  EXPECT_EQ(joined, one.find("l")->data);
  EXPECT_EQ(one.find("l")->n_rows, 17);  // tokens 0, 3, …, 48
}

// Rank 1 of 2 without MPI collectives: only the plan is asked of it.
class RankOneOfTwo final : public Communicator {
 public:
  int rank() const override { return 1; }
  int size() const override { return 2; }
  Status allreduce_sum(double*, int64_t) override { return make_error("unused"); }
  Status allreduce_sum(float*, int64_t) override { return make_error("unused"); }
  Status allreduce_sum(int64_t*, int64_t) override { return make_error("unused"); }
  Status allreduce_max(float*, int64_t) override { return make_error("unused"); }
  Expected<std::vector<float>> allgather(const std::vector<float>&) override { return make_error("unused"); }
  Status broadcast(void*, int64_t, int) override { return make_error("unused"); }
  void abort_job(int) override {}
};

TEST(ShardedStats, ShardPlan) {
  SingleProcess single;
  auto one = plan_calibration_shards(8, 64, 3, single);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->count, 3);
  EXPECT_EQ(one->begin, 0);
  EXPECT_EQ(one->end, 8);
  EXPECT_EQ(one->shard_starts, (std::vector<int64_t>{2 * 64, 5 * 64}));  // windows 0-1, 2-4, 5-7
  RankOneOfTwo rank1;
  auto r1 = plan_calibration_shards(9, 64, 0, rank1);
  ASSERT_TRUE(r1.ok());
  EXPECT_EQ(r1->begin, 4);
  EXPECT_EQ(r1->end, 9);
  EXPECT_EQ(r1->first_token, 4 * 64);
  EXPECT_EQ(r1->total_tokens, 9 * 64);
  EXPECT_TRUE(r1->shard_starts.empty());
  EXPECT_FALSE(plan_calibration_shards(9, 64, 3, rank1).ok());  // shards must be the ranks
  EXPECT_FALSE(plan_calibration_shards(2, 64, 3, single).ok());  // more shards than windows
}

}  // namespace
}  // namespace lowbit
