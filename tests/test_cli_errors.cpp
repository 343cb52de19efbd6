// User errors of the lowbit executable (issue 17, parts 4 and 5): each is one
// line "lowbit: error: ...", exit code 1, no output file, and comes before any
// long work. Interrupting a command that writes leaves no temporary file.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "model_writers.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using lowbit::testing::CommandResult;
using lowbit::testing::count_lines;
using lowbit::testing::run_lowbit;
using lowbit::testing::ScopedTempDir;

// One line "lowbit: error: ..." containing `key`, exit code 1.
void expect_user_error(const CommandResult& r, const std::string& key, const std::string& args) {
  EXPECT_EQ(r.exit_code, 1) << args << "\n" << r.output;
  EXPECT_EQ(count_lines(r.output), 1u) << args << "\n" << r.output;
  EXPECT_EQ(r.output.rfind("lowbit: error: ", 0), 0u) << args << "\n" << r.output;
  EXPECT_NE(r.output.find(key), std::string::npos) << args << "\nexpected: " << key << "\ngot: " << r.output;
}

void expect_user_error(const std::string& args, const std::string& key) {
  expect_user_error(run_lowbit(args), key, args);
}

class CliErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = lowbit::testing::shared_path("models/stories260K/stories260K.gguf");
    text_ = lowbit::testing::shared_path("data/tinystories/tinystories_validation_head.txt");
    if (model_.empty() || text_.empty()) GTEST_SKIP() << "shared test material missing (stories260K, tinystories)";
  }
  std::string model_;
  std::string text_;
};

// (a) A run that scores no token, or one (no standard error), is refused.
TEST_F(CliErrors, PplRefusesAContextThatScoresTooFewTokens) {
  ScopedTempDir dir("cli_errors_ppl");
  const std::string json = dir.file("ppl.json");
  expect_user_error("ppl " + model_ + " --text " + text_ + " --ctx 2 --chunks 3 --no-progress --base " + model_ +
                        " --json " + json,
                    "--ctx 2: the llamacpp protocol scores the second half (ctx - 1 - ctx/2 tokens) of each chunk, "
                    "no token at this length; use --ctx 5 or more");
  EXPECT_FALSE(fs::exists(json));
  expect_user_error("ppl " + model_ + " --text " + text_ + " --ctx 3 --chunks 1 --no-progress",
                    "--ctx 3: 1 chunk(s) of the llamacpp protocol score 1 token, and the standard error needs at "
                    "least 2; use --ctx 5 or more (or more chunks)");
  // gptq scores ctx - 1 tokens: ctx 2 scores one per chunk, so 3 chunks are enough.
  const CommandResult ok = run_lowbit("ppl " + model_ + " --text " + text_ +
                                      " --ctx 2 --chunks 3 --protocol gptq --no-progress --json " + json);
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("3 tokens scored"), std::string::npos) << ok.output;
}

// (b) CLI11's parse errors: one line with the prefix, exit code 1; --help still exits 0.
TEST_F(CliErrors, ParseErrorsAreOneLineAndExitOne) {
  expect_user_error("info " + model_ + " --no-such-flag", "--no-such-flag");
  expect_user_error("ppl " + model_ + " --text " + text_ + " --ctx 0", "--ctx: Value 0 not in range");
  expect_user_error("ppl " + model_ + " --text /no/such/file.txt", "--text: File does not exist: /no/such/file.txt");
  expect_user_error("ppl " + model_ + " --text " + text_ + " --arith lmul3", "--arith: lmul3 not in {");
  expect_user_error("ppl " + model_ + " --text " + text_ + " --arith lmul --lmul-mantissa 24",
                    "--lmul-mantissa: Value 24 not in range 1 to 23");
  expect_user_error("ppl " + model_ + " --text " + text_ + " --arith fp8 --lmul-mantissa 4",
                    "--lmul-mantissa 4: goes with --arith lmul (not --arith fp8)");
  ScopedTempDir dir("cli_errors_parse");
  expect_user_error("quantize " + model_ + " --recipe w4g128-gptq --calib " + dir.path().string() + " -o " +
                        dir.file("q.lbq"),
                    "--calib: File is actually a directory");
  const CommandResult help = run_lowbit("ppl --help");
  EXPECT_EQ(help.exit_code, 0) << help.output;
  EXPECT_NE(help.output.find("--ctx"), std::string::npos);
}

// (d) Output paths are checked before the work: a missing folder or a folder as
// the file fails at once, and nothing is written.
TEST_F(CliErrors, OutputPathsAreCheckedBeforeTheWork) {
  ScopedTempDir dir("cli_errors_out");
  const std::string missing = dir.file("nodir") + "/x.json";
  const std::string missing_folder = "folder " + dir.file("nodir") + " does not exist";
  const std::string folder = dir.path().string();
  const std::string calib = " --calib " + text_ + " --calib-samples 2 --calib-len 64 --no-progress";
  struct Case {
    std::string args, message;
  };
  const std::vector<Case> cases = {
      {"ppl " + model_ + " --text " + text_ + " --ctx 64 --json " + missing, "--json " + missing + ": " + missing_folder},
      {"quantize " + model_ + " --recipe w4g128-gptq" + calib + " -o " + folder,
       "-o " + folder + ": is a folder; give a file name"},
      {"quantize " + model_ + " --recipe w4g128-gptq" + calib + " -o " + dir.file("nodir") + "/q.lbq",
       "-o " + dir.file("nodir") + "/q.lbq: " + missing_folder},
      {"quantize " + model_ + " --recipe w4g128-gptq" + calib + " -o " + dir.file("q.lbq") + " --json " + missing,
       "--json " + missing + ": " + missing_folder},
      {"quantize " + model_ + " --target-bpw 5" + calib + " -o " + dir.file("q.lbq") + " --recipe-out " + missing,
       "--recipe-out " + missing + ": " + missing_folder},
      {"quantize " + model_ + " --target-bpw 5" + calib + " -o " + dir.file("q.lbq") + " --sensitivity-out " + missing,
       "--sensitivity-out " + missing + ": " + missing_folder},
      {"export " + model_ + " --to gguf -o " + dir.file("nodir") + "/x.gguf",
       "-o " + dir.file("nodir") + "/x.gguf: " + missing_folder},
      {"export " + model_ + " --to gguf -o " + dir.file("x.gguf") + " --json " + missing,
       "--json " + missing + ": " + missing_folder},
      {"bench " + model_ + " -p 8 -n 4 --reps 1 --no-bandwidth --json " + missing,
       "--json " + missing + ": " + missing_folder},
  };
  for (const Case& c : cases) expect_user_error(c.args, c.message);
  // pareto -o names a folder: an existing file there is refused.
  const std::string file = dir.file("a_file");
  std::ofstream(file) << "x";
  expect_user_error("pareto " + model_ + " --calib " + text_ + " --text " + text_ + " -o " + file,
                    "-o " + file + ": is a file; give a folder");
  // Nothing was written beside the existing file.
  size_t entries = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) entries += e.path() != file;
  EXPECT_EQ(entries, 0u);
}

// (e) --kv: a missing file is named as one; an out-of-range number names the part and its range.
TEST_F(CliErrors, KvArgumentErrorsNameTheCause) {
  const std::string ppl = "ppl " + model_ + " --text " + text_ + " --ctx 64 --chunks 1 --no-progress";
  expect_user_error(ppl + " --kv nope.json", "--kv: file nope.json not found");
  expect_user_error(ppl + " --kv no/such/kv", "--kv: file no/such/kv not found");
  expect_user_error(ppl + " --kv k4v4-r99999999999",
                    "kv spec 'k4v4-r99999999999': part 'r99999999999': r takes a whole number from 0 to "
                    "1073741824 (the residual window in tokens)");
  expect_user_error(ppl + " --kv k4v4-g0", "part 'g0': g takes a whole number from 1 to 1073741824 (the group size)");
  expect_user_error(ppl + " --kv k4v4-zz3", "unknown part 'zz3'");
}

// (c) SIGTERM / SIGINT during quantize: the handler removes OUT.tmp; no output appears.
void interrupt_quantize(const std::string& model, const std::string& text, int signal) {
  ScopedTempDir dir("cli_errors_signal");
  const std::string out = dir.file("q.lbq");
  const std::string tmp = out + ".tmp";
  const pid_t pid = lowbit::testing::spawn({LOWBIT_CLI_PATH, "quantize", model, "--recipe", "w4g128-gptq", "--calib", text,
                                            "--calib-samples", "64", "--calib-len", "512", "-t", "1", "--no-progress",
                                            "-o", out});
  ASSERT_GE(pid, 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!fs::exists(tmp) && std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) FAIL() << "quantize ended before its .tmp was seen";
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_TRUE(fs::exists(tmp)) << "no " << tmp << " within 120 s";
  kill(pid, signal);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  EXPECT_EQ(WEXITSTATUS(status), 128 + signal);
  EXPECT_FALSE(fs::exists(tmp));
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(CliErrors, SigtermDuringQuantizeRemovesTheTemporaryFile) { interrupt_quantize(model_, text_, SIGTERM); }
TEST_F(CliErrors, SigintDuringQuantizeRemovesTheTemporaryFile) { interrupt_quantize(model_, text_, SIGINT); }

}  // namespace
