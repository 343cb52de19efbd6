// Helpers shared by the unit tests: where the shared test material lives.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

namespace lowbit::testing {

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

inline std::string source_path(const std::string& relative) {
  return (std::filesystem::path(LOWBIT_SOURCE_DIR) / relative).string();
}

}  // namespace lowbit::testing

// Skips the current test with a clear message when a shared file is absent.
#define LB_REQUIRE_SHARED(var, relative)                                                   \
  const std::string var = ::lowbit::testing::shared_path(relative);                         \
  if (var.empty()) {                                                                        \
    GTEST_SKIP() << "shared test material missing: " << ::lowbit::testing::shared_dir()      \
                 << "/" << relative << " (set LOWBIT_SHARED_DIR)";                          \
  }
