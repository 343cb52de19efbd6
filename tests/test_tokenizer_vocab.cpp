// The GGUF tokenizers against llama.cpp's own test vectors
// (tests/test-tokenizer-0.cpp): ggml-vocab-*.gguf.inp holds test strings separated
// by "\n__ggml_vocab_test__\n", and line i of the .out file holds the ids llama.cpp
// produces for string i (no BOS, parse_special). Every case must match exactly.
// Also: a GPT-2 tokenizer.json built from vocab.json + merges.txt must agree with
// the GGUF GPT-2 vocabulary, decode(encode(x)) must give x back, and the SmolLM2
// GGUF tokenizer must load and split digits one by one.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "io/gguf.h"
#include "model_writers.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace lowbit {
namespace {

struct VocabCase {
  std::string text;
  std::vector<int32_t> ids;
};

// Splits exactly as llama.cpp read_tests() does.
std::vector<VocabCase> read_vocab_cases(const std::string& gguf_path) {
  const std::string raw = read_text_file(gguf_path + ".inp").value();
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  for (size_t pos = 0; pos < raw.size();) {
    const size_t next = raw.find(sep, pos);
    if (next == std::string::npos) {
      inputs.push_back(raw.substr(pos));
      break;
    }
    inputs.push_back(raw.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::ifstream out(gguf_path + ".out");
  std::vector<VocabCase> cases;
  size_t i = 0;
  for (std::string line; std::getline(out, line); ++i) {
    VocabCase c;
    c.text = i < inputs.size() ? inputs[i] : std::string();
    std::istringstream ids(line);
    for (int32_t id; ids >> id;) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  EXPECT_EQ(inputs.size(), cases.size()) << gguf_path << ": .inp and .out disagree on the number of tests";
  return cases;
}

// Text with control and non-ASCII bytes escaped, so a failure message is readable.
std::string escape(const std::string& s) {
  std::string out;
  for (const unsigned char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c >= 0x7F) {
      out += fmt::format("\\x{:02X}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string join(const std::vector<int32_t>& ids) { return fmt::format("{}", fmt::join(ids, " ")); }

// Expects `tokenizer` to produce `expected` for every case; prints each failing
// case with both id lists.
void expect_cases(const Tokenizer& tokenizer, const std::vector<VocabCase>& cases) {
  int failures = 0;
  for (const VocabCase& c : cases) {
    const std::vector<int32_t> got = tokenizer.encode(c.text);
    if (got != c.ids) {
      ++failures;
      ADD_FAILURE() << "text:     '" << escape(c.text) << "'\nexpected: " << join(c.ids) << "\ngot:      " << join(got);
    }
  }
  EXPECT_EQ(failures, 0) << "of " << cases.size() << " cases";
}

// The tokenizer of a GGUF file, or null after recording a failure.
std::unique_ptr<Tokenizer> gguf_tokenizer(const std::string& path) {
  auto tokenizer = load_gguf_tokenizer_file(path);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status().message();
  return tokenizer.ok() ? std::move(tokenizer).value() : nullptr;
}

// What llama.cpp reports for each test vocabulary besides the ids.
struct VocabFile {
  const char* path;
  int32_t vocab_size;
  int32_t bos;
  int32_t eos;
  bool add_bos;
};

class TokenizerLlamaCppVectors : public ::testing::TestWithParam<VocabFile> {};

TEST_P(TokenizerLlamaCppVectors, MatchEveryCase) {
  const VocabFile& file = GetParam();
  LB_REQUIRE_SHARED(path, file.path);
  const auto tokenizer = gguf_tokenizer(path);
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(tokenizer->vocab_size(), file.vocab_size);
  EXPECT_EQ(tokenizer->bos_id(), file.bos);
  EXPECT_EQ(tokenizer->eos_id(), file.eos);
  EXPECT_EQ(tokenizer->add_bos(), file.add_bos);
  const auto cases = read_vocab_cases(path);
  EXPECT_GE(cases.size(), 40u);
  expect_cases(*tokenizer, cases);
}

INSTANTIATE_TEST_SUITE_P(TokenizerVocabs, TokenizerLlamaCppVectors,
                         ::testing::Values(VocabFile{"tokenizers/llamacpp-vocab/ggml-vocab-llama-spm.gguf", 32000, 1, 2, true},
                                           VocabFile{"tokenizers/llamacpp-vocab/ggml-vocab-gpt-2.gguf", 50257, 50256,
                                                     50256, false}),
                         [](const auto& info) { return info.index == 0 ? std::string("LlamaSpm") : std::string("Gpt2"); });

// Both llama.cpp test vocabularies, loaded once per test.
class TokenizerLlamaCppVocab : public ::testing::Test {
 protected:
  void SetUp() override {
    spm_path_ = testing::shared_path("tokenizers/llamacpp-vocab/ggml-vocab-llama-spm.gguf");
    const std::string gpt2_path = testing::shared_path("tokenizers/llamacpp-vocab/ggml-vocab-gpt-2.gguf");
    if (spm_path_.empty() || gpt2_path.empty()) GTEST_SKIP() << "llama.cpp test vocabularies missing";
    spm = gguf_tokenizer(spm_path_);
    gpt2 = gguf_tokenizer(gpt2_path);
    ASSERT_NE(spm, nullptr);
    ASSERT_NE(gpt2, nullptr);
  }
  std::string spm_path_;
  std::unique_ptr<Tokenizer> spm;
  std::unique_ptr<Tokenizer> gpt2;
};

TEST_F(TokenizerLlamaCppVocab, SpecialTokensInTextAreMatched) {
  // llama.cpp: the text after a special token gets the "▁" prefix again.
  const auto hello = spm->encode("Hello");
  std::vector<int32_t> expected = {1};
  expected.insert(expected.end(), hello.begin(), hello.end());
  expected.push_back(2);
  expected.insert(expected.end(), hello.begin(), hello.end());
  EXPECT_EQ(spm->encode("<s>Hello</s>Hello"), expected);
  const auto ids = gpt2->encode("a<|endoftext|>b");
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[1], 50256);
}

// decode(encode(x)) == x for every llama.cpp test string; SentencePiece adds one
// leading space, which decoding keeps.
TEST_F(TokenizerLlamaCppVocab, DecodeInvertsEncode) {
  std::vector<std::string> texts = {"Hello world", " two  spaces\tand\ttabs\n\n", "\xF0\x9F\xA6\x99 llama.cpp",
                                    "Bj\xC3\xB6rk 1234567 \xE6\x88\x91\xE6\x83\xB3"};
  for (const auto& c : read_vocab_cases(spm_path_)) texts.push_back(c.text);
  for (const std::string& text : texts) {
    SCOPED_TRACE(escape(text));
    EXPECT_EQ(gpt2->decode(gpt2->encode(text)), text);
    const std::string spm_decoded = spm->decode(spm->encode(text));
    if (text.empty()) {
      EXPECT_EQ(spm_decoded, "");
    } else {
      ASSERT_FALSE(spm_decoded.empty());
      EXPECT_EQ(spm_decoded.substr(1), text);
      EXPECT_EQ(spm_decoded[0], ' ');
    }
  }
}

// A tokenizer.json in the shape Hugging Face writes for GPT-2, from the original
// OpenAI vocab.json and merges.txt.
std::string write_gpt2_tokenizer_json(const testing::ScopedTempDir& dir, const std::string& vocab_path,
                                      const std::string& merges_path) {
  nlohmann::json vocab = nlohmann::json::parse(read_text_file(vocab_path).value());
  nlohmann::json merges = nlohmann::json::array();
  std::ifstream in(merges_path);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.rfind("#version", 0) != 0) merges.push_back(line);
  }
  nlohmann::json root = {
      {"version", "1.0"},
      {"added_tokens", {{{"id", 50256}, {"content", "<|endoftext|>"}, {"special", true}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
      {"post_processor", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
        {"end_of_word_suffix", ""}, {"fuse_unk", false}, {"byte_fallback", false}, {"vocab", vocab}, {"merges", merges}}},
  };
  const std::string path = dir.file("tokenizer.json");
  EXPECT_TRUE(write_file_atomic(path, root.dump()).ok());
  return path;
}

TEST(TokenizerHfJson, Gpt2FromVocabAndMergesAgreesWithGguf) {
  LB_REQUIRE_SHARED(gguf_path, "tokenizers/llamacpp-vocab/ggml-vocab-gpt-2.gguf");
  LB_REQUIRE_SHARED(vocab_path, "tokenizers/gpt2/gpt2_vocab.json");
  LB_REQUIRE_SHARED(merges_path, "tokenizers/gpt2/gpt2_merges.txt");
  testing::ScopedTempDir dir("tokenizer_gpt2");
  auto json_tokenizer = load_hf_tokenizer_json(write_gpt2_tokenizer_json(dir, vocab_path, merges_path));
  ASSERT_TRUE(json_tokenizer.ok()) << json_tokenizer.status().message();
  const Tokenizer& tok = **json_tokenizer;
  EXPECT_EQ(tok.vocab_size(), 50257);
  EXPECT_EQ(tok.bos_id(), 50256);  // <|endoftext|> by name
  EXPECT_EQ(tok.eos_id(), 50256);
  EXPECT_FALSE(tok.add_bos());
  // Against the GGUF reference ids directly, then against the GGUF tokenizer on
  // a longer text.
  expect_cases(tok, read_vocab_cases(gguf_path));
  const auto gguf = gguf_tokenizer(gguf_path);
  ASSERT_NE(gguf, nullptr);
  const std::string text = "The 2nd <|endoftext|> isn't   here,\n\tdon't \xE2\x80\x94 caf\xC3\xA9 \xF0\x9F\x98\x81!!";
  EXPECT_EQ(tok.encode(text), gguf->encode(text));
  EXPECT_EQ(tok.decode(tok.encode(text)), text);
}

// A Llama-style tokenizer.json made from the GGUF SentencePiece vocabulary the way
// Hugging Face's LlamaConverter does it: every split of a piece into two pieces is
// a merge, ranked by the merged piece's score. Written with the legacy normalizer
// (Prepend + Replace) or with a Metaspace pre-tokenizer.
std::string write_llama_tokenizer_json(const testing::ScopedTempDir& dir, const std::string& gguf_path,
                                       bool metaspace) {
  auto gguf = GgufFile::open(gguf_path);
  EXPECT_TRUE(gguf.ok());
  const auto pieces = gguf->get_string_array("tokenizer.ggml.tokens").value();
  const auto scores = gguf->get_float_array("tokenizer.ggml.scores").value();
  const auto types = gguf->get_int_array("tokenizer.ggml.token_type").value();
  nlohmann::json vocab = nlohmann::json::object();
  std::map<std::string, int> ids;
  for (size_t i = 0; i < pieces.size(); ++i) {
    vocab[pieces[i]] = i;
    ids[pieces[i]] = static_cast<int>(i);
  }
  struct Merge {
    double score;
    int merged, left;
    std::string a, b;
  };
  std::vector<Merge> merges;
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (types[i] != 1) continue;
    for (size_t k = 1; k < pieces[i].size(); ++k) {
      const auto a = ids.find(pieces[i].substr(0, k));
      const auto b = ids.find(pieces[i].substr(k));
      if (a != ids.end() && b != ids.end()) merges.push_back({scores[i], static_cast<int>(i), a->second, a->first, b->first});
    }
  }
  std::sort(merges.begin(), merges.end(), [](const Merge& x, const Merge& y) {
    if (x.score != y.score) return x.score > y.score;
    if (x.merged != y.merged) return x.merged < y.merged;
    return x.left < y.left;
  });
  nlohmann::json merge_list = nlohmann::json::array();
  for (const Merge& m : merges) merge_list.push_back(m.a + " " + m.b);
  nlohmann::json added = nlohmann::json::array();
  for (int id = 0; id < 3; ++id) added.push_back({{"id", id}, {"content", pieces[id]}, {"special", true}});
  nlohmann::json root = {
      {"added_tokens", added},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}}}},
      {"model",
       {{"type", "BPE"}, {"unk_token", "<unk>"}, {"byte_fallback", true}, {"fuse_unk", true}, {"vocab", vocab},
        {"merges", merge_list}}},
  };
  if (metaspace) {
    root["normalizer"] = nullptr;
    root["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "first"}, {"split", false}};
  } else {
    root["normalizer"] = {{"type", "Sequence"},
                          {"normalizers",
                           {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
                            {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}}}};
    root["pre_tokenizer"] = nullptr;
  }
  const std::string path = dir.file(metaspace ? "metaspace.json" : "tokenizer.json");
  EXPECT_TRUE(write_file_atomic(path, root.dump()).ok());
  return path;
}

TEST(TokenizerHfJson, LlamaStyleAgreesWithGguf) {
  LB_REQUIRE_SHARED(gguf_path, "tokenizers/llamacpp-vocab/ggml-vocab-llama-spm.gguf");
  testing::ScopedTempDir dir("tokenizer_llama_json");
  const auto cases = read_vocab_cases(gguf_path);
  for (const bool metaspace : {false, true}) {
    SCOPED_TRACE(metaspace ? "Metaspace" : "Prepend + Replace");
    auto tokenizer = load_hf_tokenizer_json(write_llama_tokenizer_json(dir, gguf_path, metaspace));
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().message();
    const Tokenizer& tok = **tokenizer;
    EXPECT_EQ(tok.bos_id(), 1);  // from the post_processor template
    EXPECT_TRUE(tok.add_bos());
    EXPECT_EQ(tok.eos_id(), 2);
    expect_cases(tok, cases);
    EXPECT_EQ(tok.decode(tok.encode("Bj\xC3\xB6rk \xE1\x9E\x80")), " Bj\xC3\xB6rk \xE1\x9E\x80");
  }
}

// The real SmolLM2 model file (not in the shared folder: scripts/fetch_model.sh
// puts it in $LOWBIT_CACHE; skipped with a message when absent).
TEST(TokenizerSmolLM2, LoadsAndSplitsDigits) {
  LB_REQUIRE_SMOLLM2(path);
  auto gguf = GgufFile::open(path);
  ASSERT_TRUE(gguf.ok()) << gguf.status().message();
  auto pre = gguf->get_string("tokenizer.ggml.pre");
  ASSERT_TRUE(pre.ok());
  std::printf("SmolLM2 tokenizer.ggml.pre = %s\n", pre->c_str());
  auto tokenizer = load_gguf_tokenizer(*gguf);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().message();
  const Tokenizer& tok = **tokenizer;
  EXPECT_EQ(tok.vocab_size(), 49152);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_FALSE(tok.add_bos());

  const std::string text = "Hello, world! 12345";
  const std::vector<int32_t> ids = tok.encode(text);
  std::vector<std::string> pieces;
  for (const int32_t id : ids) pieces.push_back(tok.token_to_bytes(id));
  std::printf("SmolLM2 '%s' -> %s\n", text.c_str(), join(ids).c_str());
  EXPECT_EQ(pieces, (std::vector<std::string>{"Hello", ",", " world", "!", " ", "1", "2", "3", "4", "5"}));
  EXPECT_EQ(tok.decode(ids), text);
  const auto chat = tok.encode("<|im_start|>user\nHi<|im_end|>");
  ASSERT_GE(chat.size(), 3u);
  EXPECT_EQ(chat.front(), 1);
  EXPECT_EQ(chat.back(), 2);
}

}  // namespace
}  // namespace lowbit
