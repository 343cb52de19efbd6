// Malformed tokenizer files must give an error naming the file and the problem,
// never a crash: truncated and inconsistent llama2.c tokenizer.bin, broken or
// unsupported tokenizer.json, an unreadable SentencePiece model, missing files.
#include <gtest/gtest.h>

#include <cstring>

#include "core/mapped_file.h"
#include "core/status.h"
#include "model_writers.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace lowbit {
namespace {

void write_file(const std::string& path, const std::string& bytes) { ASSERT_TRUE(write_file_atomic(path, bytes).ok()); }

template <typename T>
void expect_error(const Expected<T>& result, const std::string& path, const std::string& problem) {
  ASSERT_FALSE(result.ok()) << "accepted " << path;
  const std::string& message = result.status().message();
  EXPECT_NE(message.find(path), std::string::npos) << "message does not name the file: " << message;
  EXPECT_NE(message.find(problem), std::string::npos) << "message does not say '" << problem << "': " << message;
}

TEST(TokenizerErrors, TruncatedLlama2cBin) {
  LB_REQUIRE_SHARED(bin, "models/stories260K/tok512.bin");
  const std::string full = read_text_file(bin).value();
  ASSERT_GT(full.size(), 100u);
  testing::ScopedTempDir dir("tokenizer_truncated");
  // Cut inside the header, inside the first score, the first length, the first
  // piece, and in the middle and at the last byte of the file.
  for (const size_t cut : {size_t{0}, size_t{2}, size_t{6}, size_t{10}, size_t{14}, full.size() / 2, full.size() - 1}) {
    SCOPED_TRACE(cut);
    const std::string path = dir.file("cut_" + std::to_string(cut) + ".bin");
    write_file(path, full.substr(0, cut));
    expect_error(load_llama2c_tokenizer(path, 512), path, "truncated");
  }
  // The whole file read with a larger vocabulary runs out too, and an absurd
  // vocabulary size is refused before anything is allocated for it.
  expect_error(load_llama2c_tokenizer(bin, 513), bin, "truncated");
  expect_error(load_llama2c_tokenizer(bin, INT32_MAX), bin, "truncated");
}

TEST(TokenizerErrors, InconsistentLlama2cBin) {
  testing::ScopedTempDir dir("tokenizer_bad_bin");
  const auto pack = [](int32_t max_len, float score, int32_t len) {
    std::string s(12, '\0');
    std::memcpy(s.data(), &max_len, 4);
    std::memcpy(s.data() + 4, &score, 4);
    std::memcpy(s.data() + 8, &len, 4);
    return s;
  };
  const std::string negative = dir.file("negative.bin");
  write_file(negative, pack(4, 0.0f, -1) + "abcd");
  expect_error(load_llama2c_tokenizer(negative, 1), negative, "length -1");
  const std::string too_long = dir.file("too_long.bin");
  write_file(too_long, pack(2, 0.0f, 3) + "abc");
  expect_error(load_llama2c_tokenizer(too_long, 1), too_long, "max_token_length");
  const std::string zero_max = dir.file("zero_max.bin");
  write_file(zero_max, pack(0, 0.0f, 0));
  expect_error(load_llama2c_tokenizer(zero_max, 1), zero_max, "max_token_length");
  expect_error(load_llama2c_tokenizer(negative, 0), negative, "vocab_size");
}

TEST(TokenizerErrors, MalformedTokenizerJson) {
  testing::ScopedTempDir dir("tokenizer_bad_json");
  const std::pair<const char*, const char*> cases[] = {
      {"{\"model\": ", "parse error"},
      {"[1, 2]", "no 'model' section"},
      {"{}", "no 'model' section"},
      {R"({"model": {"type": "Unigram", "vocab": []}})", "Unigram"},
      {R"({"model": {"type": "BPE", "vocab": [1, 2]}})", "model.vocab is not an object"},
      {R"({"model": {"type": "BPE", "vocab": {"a": "zero"}}})", "expected an integer"},
      {R"({"model": {"type": "BPE", "vocab": {"a": -4}}})", "has id -4"},
      {R"({"model": {"type": "BPE", "vocab": {}}})", "empty"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a c"]}})", "not in model.vocab"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["ab"]}})", "not 'left right'"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}}, "pre_tokenizer": {"type": "Whitespace"}})", "Whitespace"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}}, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
          {"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated"}, {"type": "ByteLevel"}]}})",
       "(unclosed"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}}, "normalizer": {"type": "Lowercase"}})", "Lowercase"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}, "continuing_subword_prefix": "##"}})", "continuing_subword_prefix"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}}, "added_tokens": [{"content": "<s>"}]})", "id"},
  };
  int i = 0;
  for (const auto& [json, problem] : cases) {
    SCOPED_TRACE(json);
    const std::string path = dir.file("case_" + std::to_string(i++) + ".json");
    write_file(path, json);
    expect_error(load_hf_tokenizer_json(path), path, problem);
  }
}

TEST(TokenizerErrors, BadTokenizerConfigBesideJson) {
  testing::ScopedTempDir dir("tokenizer_bad_config");
  const std::string path = dir.file("tokenizer.json");
  write_file(path, R"({"model": {"type": "BPE", "vocab": {"a": 0}}, "pre_tokenizer": {"type": "ByteLevel"}})");
  ASSERT_TRUE(load_hf_tokenizer_json(path).ok());
  write_file(dir.file("tokenizer_config.json"), "{not json");
  expect_error(load_hf_tokenizer_json(path), dir.file("tokenizer_config.json"), "invalid JSON");
}

TEST(TokenizerErrors, MissingFilesAndGarbageModel) {
  testing::ScopedTempDir dir("tokenizer_missing");
  const std::string missing = dir.file("does_not_exist");
  EXPECT_FALSE(load_llama2c_tokenizer(missing, 32).ok());
  EXPECT_FALSE(load_hf_tokenizer_json(missing).ok());
  expect_error(load_sentencepiece_model(missing), missing, "cannot load");
  const std::string garbage = dir.file("tokenizer.model");
  write_file(garbage, "this is not a protobuf");
  expect_error(load_sentencepiece_model(garbage), garbage, "cannot load");
}

}  // namespace
}  // namespace lowbit
