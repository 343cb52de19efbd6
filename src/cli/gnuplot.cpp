#include "cli/gnuplot.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

extern char** environ;

namespace lowbit::cli {
namespace {

namespace fs = std::filesystem;

// The script variable holding the suffix of the output names ('' unless set on
// gnuplot's command line).
constexpr const char* kTmpVariable = "lowbit_tmp";
constexpr const char* kTmpSuffix = ".tmp";

void remove_temporaries(const std::vector<std::string>& images) {
  std::error_code ec;
  for (const std::string& image : images) fs::remove(image + kTmpSuffix, ec);
}

}  // namespace

Expected<std::string> find_gnuplot() {
  const char* env = std::getenv("PATH");
  const std::string dirs = env != nullptr ? env : "";
  size_t start = 0;
  while (start <= dirs.size()) {
    const size_t end = std::min(dirs.find(':', start), dirs.size());
    const std::string d = dirs.substr(start, end - start);
    if (!d.empty()) {
      const fs::path candidate = fs::path(d) / "gnuplot";
      if (access(candidate.c_str(), X_OK) == 0) return candidate.string();
    }
    start = end + 1;
  }
  return make_error(
      "gnuplot not found on PATH; install it (Debian: apt-get install gnuplot-nox, or "
      "scripts/install_deps.sh)");
}

int run_program(const std::vector<std::string>& args, bool quiet) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (quiet) {
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  }
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Expected<std::string> png_terminal(const std::string& gnuplot) {
  for (const char* terminal : {"pngcairo", "png"}) {
    if (run_program({gnuplot, "-e", std::string("set terminal ") + terminal}, true) == 0) return std::string(terminal);
  }
  return make_error("{} has neither the pngcairo nor the png terminal", gnuplot);
}

std::string gnuplot_quoted(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "''";
    } else {
      out += static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? ' ' : c;
    }
  }
  return out + "'";
}

std::string gnuplot_prologue() { return fmt::format("if (!exists('{0}')) {0} = ''\n", kTmpVariable); }

std::string gnuplot_set_output(const std::string& path) {
  return fmt::format("set output {}.{}\n", gnuplot_quoted(path), kTmpVariable);
}

Status run_gnuplot_script(const std::string& gnuplot, const std::string& script,
                          const std::vector<std::string>& images) {
  const int rc = run_program({gnuplot, "-e", fmt::format("{}='{}'", kTmpVariable, kTmpSuffix), script}, false);
  if (rc != 0) {
    remove_temporaries(images);
    return make_error("{} {} failed (exit status {})", gnuplot, script, rc);
  }
  for (const std::string& image : images) {
    std::error_code ec;
    fs::rename(image + kTmpSuffix, image, ec);
    if (ec) {
      remove_temporaries(images);
      return make_error("{} was not written ({})", image, ec.message());
    }
  }
  return Status::ok_status();
}

}  // namespace lowbit::cli
