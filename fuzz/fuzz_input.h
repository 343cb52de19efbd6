// Shared pieces of the libFuzzer harnesses (fuzz/*.cpp).
//
// The loaders take paths (they memory-map their files), so each harness writes
// its input to a file of its own: /tmp/lowbit_fuzz_<pid>_<name>, rewritten on
// every run and removed when the process exits. The pid keeps concurrent fuzzing
// processes (-jobs, -workers) apart.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace lowbit::fuzz {

class InputFile {
 public:
  // `name` ends the file name, e.g. "model.gguf" or "tokenizer.json".
  explicit InputFile(const std::string& name)
      : path_("/tmp/lowbit_fuzz_" + std::to_string(::getpid()) + "_" + name) {}
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  ~InputFile() { std::remove(path_.c_str()); }

  // Replaces the file's contents with data[0, size); aborts when /tmp is not
  // writable, since every run after that would test nothing.
  const std::string& write(const uint8_t* data, size_t size) const {
    std::FILE* f = std::fopen(path_.c_str(), "wb");
    if (f == nullptr || (size != 0 && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) {
      std::perror(path_.c_str());
      std::abort();
    }
    return path_;
  }

 private:
  std::string path_;
};

}  // namespace lowbit::fuzz
