// `lowbit quantize --resume` (pipeline/quantize_checkpoint.h): a run killed with
// SIGKILL at several points (after the checkpoint of the first layer, in the middle
// of a layer, after the last layer, before any checkpoint) and resumed writes a file
// byte for byte equal to an uninterrupted run; a corrupted checkpoint, a corrupted
// OUT.tmp and a different recipe are refused with one line and exit 1, leaving the
// checkpoint; SIGINT after a checkpoint keeps it; AWQ, rotated, activation-quantized,
// LoRC and data-free recipes resume too.
// The kill points come from the test-only LOWBIT_TEST_KILL_AT hook of the CLI.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "core/crc32.h"
#include "model_writers.h"
#include "test_util.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::run_lowbit;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void flip_byte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x01);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

// The report without what differs between any two runs (times, memory) and the output name.
json comparable_report(const std::string& path) {
  std::ifstream in(path);
  json j = json::parse(in);
  for (const char* key : {"seconds", "peak_rss_bytes", "output"}) j.erase(key);
  for (json& m : j["modules"]) m.erase("seconds");
  return j;
}

// The error line of a failed run (the last line of its output).
std::string last_line(const std::string& output) {
  std::string s = output;
  while (!s.empty() && s.back() == '\n') s.pop_back();
  const size_t nl = s.rfind('\n');
  return nl == std::string::npos ? s : s.substr(nl + 1);
}

// A process killed by SIGKILL: popen's shell reports 128 + 9, or the signal itself (-1).
bool killed(const testing::CommandResult& r) { return r.exit_code == 137 || r.exit_code == -1; }

class QuantizeResume : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = testing::shared_path("models/stories260K/stories260K.gguf");
    text_ = testing::shared_path("data/tinystories/tinystories_validation_head.txt");
    if (model_.empty() || text_.empty()) GTEST_SKIP() << "shared test material missing (stories260K, tinystories)";
  }
  std::string args(const std::string& recipe, const std::string& out, const std::string& extra = "") const {
    const std::string calib = recipe == "q8_0-rtn" ? "" : " --calib " + text_ + " --calib-samples 4 --calib-len 64";
    return "quantize " + model_ + " --recipe " + recipe + calib + " -t 2 --no-progress -o " + out + " " + extra;
  }
  // An uninterrupted run into `out` with its report.
  void reference(const std::string& recipe, const std::string& out) const {
    const auto r = run_lowbit(args(recipe, out, "--json " + out + ".json"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_FALSE(fs::exists(out + ".ckpt")) << "a finished run removes its checkpoint";
    EXPECT_FALSE(fs::exists(out + ".tmp"));
  }
  // Killed at `point`, then resumed: the file must equal `expected` byte for byte.
  void kill_and_resume(const std::string& recipe, const std::string& point, bool checkpoint_expected,
                       const std::string& expected, const std::string& out) const {
    SCOPED_TRACE(point);
    const auto k = run_lowbit(args(recipe, out), "LOWBIT_TEST_KILL_AT=" + point);
    ASSERT_TRUE(killed(k)) << "exit " << k.exit_code << ": " << k.output;
    EXPECT_FALSE(fs::exists(out));
    EXPECT_TRUE(fs::exists(out + ".tmp"));
    EXPECT_EQ(fs::exists(out + ".ckpt"), checkpoint_expected);
    const auto r = run_lowbit(args(recipe, out, "--resume --json " + out + ".json"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find(checkpoint_expected ? "resuming " : "no checkpoint"), std::string::npos) << r.output;
    ASSERT_TRUE(fs::exists(out));
    EXPECT_TRUE(read_bytes(out) == read_bytes(expected)) << out << " differs from the uninterrupted " << expected;
    EXPECT_EQ(comparable_report(out + ".json"), comparable_report(expected + ".json"));
    EXPECT_FALSE(fs::exists(out + ".ckpt"));
    EXPECT_FALSE(fs::exists(out + ".tmp"));
    EXPECT_FALSE(fs::exists(out + ".ckpt.tmp"));
    fs::remove(out);
  }
  std::string model_;
  std::string text_;
};

TEST(Crc32, StandardCheckValueSplitsAndAwkwardLengths) {
  const std::string check = "123456789";
  EXPECT_EQ(crc32_update(0, check.data(), check.size()), 0xCBF43926u);  // the CRC-32/ISO-HDLC check value
  EXPECT_EQ(crc32_update(0, nullptr, 0), 0u);
  // Against the bit-at-a-time definition, for lengths around the 8-byte steps, split anywhere.
  std::vector<uint8_t> data(4097);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 131 + 7);
  for (size_t n : {1, 3, 7, 8, 9, 31, 32, 33, 255, 4097}) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; ++i) {
      c ^= data[i];
      for (int b = 0; b < 8; ++b) c = (c & 1u) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    }
    const uint32_t reference = ~c;
    EXPECT_EQ(crc32_update(0, data.data(), n), reference) << "length " << n;
    const size_t cut = n / 3;
    EXPECT_EQ(crc32_update(crc32_update(0, data.data(), cut), data.data() + cut, n - cut), reference) << n;
  }
}

TEST_F(QuantizeResume, GptqKilledAtSeveralPointsResumesBitIdentical) {
  testing::ScopedTempDir dir("quantize_resume");
  const std::string full = dir.file("full.lbq");
  reference("w4g128-gptq", full);
  // stories260K: 5 decoder layers of 7 linears.
  kill_and_resume("w4g128-gptq", "checkpoint:1", true, full, dir.file("a.lbq"));  // after layer 0's checkpoint
  kill_and_resume("w4g128-gptq", "module:10", true, full, dir.file("b.lbq"));     // layer 1, 4th linear
  kill_and_resume("w4g128-gptq", "checkpoint:5", true, full, dir.file("c.lbq"));  // after the last layer
  // While the checkpoint of layer 3 is written (OUT.ckpt.tmp complete, not renamed): layer 2's is used.
  kill_and_resume("w4g128-gptq", "checkpoint_write:3", true, full, dir.file("e.lbq"));
  kill_and_resume("w4g128-gptq", "module:0", false, full, dir.file("d.lbq"));     // before any checkpoint
}

// Recipes with more state than GPTQ's: AWQ scales, a QuaRot rotation re-derived on resume
// with SmoothQuant and activation quantizers (records set after a linear is added), LoRC.
TEST_F(QuantizeResume, AwqRotationSmoothAndLorcRecipesResumeBitIdentical) {
  testing::ScopedTempDir dir("quantize_resume_recipes");
  for (const std::string recipe : {"w4g128-awq", "w4a4-rot-smooth-gptq", "w3g128-gptq-lorc"}) {
    SCOPED_TRACE(recipe);
    const std::string full = dir.file(recipe + ".lbq");
    reference(recipe, full);
    kill_and_resume(recipe, "module:17", true, full, dir.file(recipe + "-k.lbq"));
  }
}

TEST_F(QuantizeResume, DataFreeRecipeResumesBitIdentical) {
  testing::ScopedTempDir dir("quantize_resume_rtn");
  const std::string full = dir.file("full.lbq");
  reference("q8_0-rtn", full);
  kill_and_resume("q8_0-rtn", "checkpoint:3", true, full, dir.file("a.lbq"));
  kill_and_resume("q8_0-rtn", "module:17", true, full, dir.file("b.lbq"));
}

// A resume that must not happen is refused in one line, exit 1, and the checkpoint and
// OUT.tmp stay for a correct resume.
TEST_F(QuantizeResume, CorruptOrMismatchedCheckpointIsRefused) {
  testing::ScopedTempDir dir("quantize_resume_bad");
  const std::string full = dir.file("full.lbq");
  reference("w4g128-gptq", full);
  const std::string out = dir.file("k.lbq");
  const std::string ckpt = out + ".ckpt";
  ASSERT_TRUE(killed(run_lowbit(args("w4g128-gptq", out), "LOWBIT_TEST_KILL_AT=checkpoint:2")));
  ASSERT_TRUE(fs::exists(ckpt));
  const std::string good = read_bytes(ckpt);

  auto expect_refused = [&](const std::string& run_args, const std::string& message) {
    const auto r = run_lowbit(run_args);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    const std::string line = last_line(r.output);
    EXPECT_EQ(line.rfind("lowbit: error: --resume: ", 0), 0u) << r.output;
    EXPECT_NE(line.find(message), std::string::npos) << r.output;
    EXPECT_NE(line.find("rerun without --resume to start over"), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(out));
    EXPECT_TRUE(fs::exists(ckpt));
    EXPECT_TRUE(fs::exists(out + ".tmp"));
  };
  // A flipped byte in the JSON state, in the hidden states, and in the stored CRC.
  for (uint64_t offset : {uint64_t{40}, static_cast<uint64_t>(good.size() - 100), static_cast<uint64_t>(good.size() - 1)}) {
    SCOPED_TRACE(offset);
    flip_byte(ckpt, offset);
    expect_refused(args("w4g128-gptq", out, "--resume"), "corrupt checkpoint (CRC-32");
    flip_byte(ckpt, offset);
  }
  // A cut checkpoint.
  fs::resize_file(ckpt, good.size() - 7);
  expect_refused(args("w4g128-gptq", out, "--resume"), "corrupt checkpoint");
  std::ofstream(ckpt, std::ios::binary).write(good.data(), static_cast<std::streamsize>(good.size()));
  // OUT.tmp changed under the checkpoint.
  flip_byte(out + ".tmp", 1000);
  expect_refused(args("w4g128-gptq", out, "--resume"), "do not match the checkpoint");
  flip_byte(out + ".tmp", 1000);
  // Other inputs.
  expect_refused(args("w3g128-gptq", out, "--resume"), "a different recipe");
  expect_refused(args("w4g128-gptq", out, "--resume --seed 5"), "a different calibration");
  expect_refused(args("w4g128-gptq", out, "--resume").replace(args("w4g128-gptq", out).find("-t 2"), 4, "-t 1"),
                 "a different --threads");
  // Restored, the same checkpoint still resumes to the uninterrupted file.
  const auto r = run_lowbit(args("w4g128-gptq", out, "--resume"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(read_bytes(out) == read_bytes(full));
}

// SIGINT once a checkpoint exists keeps OUT.tmp and OUT.ckpt and says how to continue.
TEST_F(QuantizeResume, SigintAfterACheckpointKeepsItForResume) {
  testing::ScopedTempDir dir("quantize_resume_sigint");
  const std::string out = dir.file("s.lbq");
  // Enough calibration that the layers after the first checkpoint outlast the poll.
  const std::string extra = "--calib " + text_ + " --calib-samples 32 --calib-len 256";
  auto command = [&](const std::string& o) {
    return std::vector<std::string>{LOWBIT_CLI_PATH, "quantize", model_,         "--recipe",     "w4g128-gptq",
                                    "--calib",       text_,      "--calib-samples", "32",        "--calib-len",
                                    "256",           "-t",       "1",            "--no-progress", "-o",
                                    o};
  };
  const pid_t pid = testing::spawn(command(out));
  ASSERT_GE(pid, 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!fs::exists(out + ".ckpt") && std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) FAIL() << "quantize ended before its first checkpoint was seen";
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  kill(pid, SIGINT);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  ASSERT_TRUE(fs::exists(out + ".ckpt"));
  ASSERT_TRUE(fs::exists(out + ".tmp"));
  EXPECT_FALSE(fs::exists(out));

  std::string plain = "quantize " + model_ + " --recipe w4g128-gptq " + extra + " -t 1 --no-progress -o ";
  const auto resumed = run_lowbit(plain + out + " --resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  const std::string full = dir.file("full.lbq");
  const auto uninterrupted = run_lowbit(plain + full);
  ASSERT_EQ(uninterrupted.exit_code, 0) << uninterrupted.output;
  EXPECT_TRUE(read_bytes(out) == read_bytes(full));
}

// Without --resume a stale checkpoint is discarded (with a note); --no-checkpoint writes none.
TEST_F(QuantizeResume, FreshRunDiscardsAStaleCheckpointAndNoCheckpointWritesNone) {
  testing::ScopedTempDir dir("quantize_resume_fresh");
  const std::string out = dir.file("f.lbq");
  ASSERT_TRUE(killed(run_lowbit(args("w4g128-gptq", out), "LOWBIT_TEST_KILL_AT=checkpoint:2")));
  ASSERT_TRUE(fs::exists(out + ".ckpt"));
  auto r = run_lowbit(args("w4g128-gptq", out));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("discarding the checkpoint"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out + ".ckpt"));

  const std::string n = dir.file("n.lbq");
  ASSERT_TRUE(killed(run_lowbit(args("w4g128-gptq", n, "--no-checkpoint"), "LOWBIT_TEST_KILL_AT=module:10")));
  EXPECT_TRUE(fs::exists(n + ".tmp"));
  EXPECT_FALSE(fs::exists(n + ".ckpt"));
  r = run_lowbit(args("w4g128-gptq", n, "--resume --no-checkpoint"));
  EXPECT_NE(r.exit_code, 0);
  r = run_lowbit(args("w4g128-gptq", n, "--resume").replace(args("w4g128-gptq", n).find("--recipe w4g128-gptq"), 20,
                                                              "--target-size 0.3"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--resume: not with --target-size"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace lowbit
