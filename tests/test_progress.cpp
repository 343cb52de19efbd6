// The progress line (core/progress.h) against a fake clock: no ETA before one
// unit of work has finished, the ETA from the rate so far, rate limits on a
// terminal and on a pipe. Nothing here sleeps.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/progress.h"

namespace lowbit {
namespace {

struct FakeIo {
  double now = 100.0;  // any epoch
  std::vector<std::string> written;
  ProgressIo io(bool tty) {
    return ProgressIo{[this] { return now; }, [this](const std::string& s) { written.push_back(s); }, tty};
  }
};

TEST(Progress, DurationFormat) {
  EXPECT_EQ(format_duration(0.0), "0s");
  EXPECT_EQ(format_duration(-3.0), "0s");
  EXPECT_EQ(format_duration(59.6), "60s");
  EXPECT_EQ(format_duration(90.0), "90s");
  EXPECT_EQ(format_duration(91.0), "1m31s");
  EXPECT_EQ(format_duration(3599.0), "59m59s");
  EXPECT_EQ(format_duration(3600.0), "1h00m");
  EXPECT_EQ(format_duration(7380.0), "2h03m");
}

TEST(Progress, NoEtaBeforeTheFirstUnitFinishes) {
  EXPECT_EQ(format_progress("ppl chunk", 0, 10, 4.0, ""), "ppl chunk 0/10  elapsed 4s");
  EXPECT_EQ(format_progress("ppl chunk", 1, 10, 5.0, "ppl 3.1"), "ppl chunk 1/10  elapsed 5s  ETA 45s  ppl 3.1");
  EXPECT_EQ(format_progress("ppl chunk", 10, 10, 50.0, ""), "ppl chunk 10/10  elapsed 50s");
  // Weighted units: the ETA comes from the cost done, shown as a percentage.
  EXPECT_EQ(format_progress("quantize", 250, 1000, 30.0, "layer 2/5", ProgressUnits::kPercent),
            "quantize 25%  elapsed 30s  ETA 90s  layer 2/5");
  EXPECT_EQ(format_progress("quantize", 375, 1000, 75.0, "", ProgressUnits::kPercent),
            "quantize 37%  elapsed 75s  ETA 2m05s");
}

TEST(Progress, PipeGetsOneLinePerTenthAndNothingBeforeWorkIsDone) {
  FakeIo fake;
  {
    ProgressBar bar("quantize", 10, true, ProgressUnits::kCount, fake.io(false));
    bar.update(0);  // nothing finished: no line (it could only say "ETA 0s")
    EXPECT_TRUE(fake.written.empty());
    fake.now += 5.0;
    bar.update(1);
    fake.now += 0.1;
    bar.update(1);  // same tenth: no new line
    fake.now += 4.9;
    bar.update(2, "x");
    fake.now += 40.0;
    bar.update(10);
  }
  const std::vector<std::string> want = {"quantize 1/10  elapsed 5s  ETA 45s\n",
                                         "quantize 2/10  elapsed 10s  ETA 40s  x\n", "quantize 10/10  elapsed 50s\n"};
  EXPECT_EQ(fake.written, want);
}

TEST(Progress, TerminalRedrawsAtMostEveryHalfSecondAndAlwaysAtTheEnd) {
  FakeIo fake;
  {
    ProgressBar bar("ppl chunk", 100, true, ProgressUnits::kCount, fake.io(true));
    fake.now += 0.2;
    bar.update(1);  // too soon after the start
    fake.now += 0.4;
    bar.update(2);  // 0.6 s: drawn
    fake.now += 0.1;
    bar.update(3);  // too soon
    fake.now += 0.1;
    bar.update(100);  // the end: drawn at once
  }
  ASSERT_EQ(fake.written.size(), 3u);
  EXPECT_EQ(fake.written[0], "\r\033[Kppl chunk 2/100  elapsed 1s  ETA 29s");
  EXPECT_EQ(fake.written[1], "\r\033[Kppl chunk 100/100  elapsed 1s");
  EXPECT_EQ(fake.written[2], "\n");
}

TEST(Progress, DisabledBarWritesNothing) {
  FakeIo fake;
  {
    ProgressBar bar("bench", 4, false, ProgressUnits::kCount, fake.io(true));
    fake.now += 10.0;
    bar.update(4);
  }
  EXPECT_TRUE(fake.written.empty());
}

}  // namespace
}  // namespace lowbit
