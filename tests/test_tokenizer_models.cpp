// Tokenizers of real models against independent references:
//  - stories260K: golden encodings (computed by a Python reference) for the GGUF
//    vocabulary, and the same ids from the llama2.c tok512.bin;
//  - Llama 2: libsentencepiece on tokenizer.model (the reference implementation)
//    against llama2.c tokenizer.bin and the llama.cpp GGUF vocabulary;
//  - speed: 1.3 MB of WikiText-2 through each algorithm.
#include <gtest/gtest.h>


#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace lowbit {
namespace {

// The tokenizer of a GGUF file, or null after recording a failure.
std::unique_ptr<Tokenizer> gguf_tokenizer(const std::string& path) {
  auto tokenizer = load_gguf_tokenizer_file(path);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status().message();
  return tokenizer.ok() ? std::move(tokenizer).value() : nullptr;
}

std::string join(const std::vector<int32_t>& ids) { return fmt::format("{}", fmt::join(ids, " ")); }

std::vector<std::pair<std::string, std::vector<int32_t>>> golden_encodings(const std::string& path) {
  const nlohmann::json golden = nlohmann::json::parse(read_text_file(path).value());
  std::vector<std::pair<std::string, std::vector<int32_t>>> cases;
  for (const auto& [text, ids] : golden.at("encode_no_bos").items()) cases.emplace_back(text, ids.get<std::vector<int32_t>>());
  return cases;
}

TEST(TokenizerStories260K, GgufMatchesGolden) {
  LB_REQUIRE_SHARED(model, "models/stories260K/stories260K.gguf");
  LB_REQUIRE_SHARED(golden, "models/stories260K/golden_reference.json");
  const auto tokenizer = gguf_tokenizer(model);
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(tokenizer->vocab_size(), 512);
  EXPECT_EQ(tokenizer->bos_id(), 1);
  EXPECT_TRUE(tokenizer->add_bos());
  const auto cases = golden_encodings(golden);
  ASSERT_FALSE(cases.empty());
  for (const auto& [text, ids] : cases) EXPECT_EQ(join(tokenizer->encode(text)), join(ids)) << text;
}

TEST(TokenizerStories260K, Llama2cBinMatchesGolden) {
  LB_REQUIRE_SHARED(bin, "models/stories260K/tok512.bin");
  LB_REQUIRE_SHARED(golden, "models/stories260K/golden_reference.json");
  auto tokenizer = load_llama2c_tokenizer(bin, 512);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().message();
  EXPECT_EQ((*tokenizer)->bos_id(), 1);
  EXPECT_EQ((*tokenizer)->eos_id(), 2);
  for (const auto& [text, ids] : golden_encodings(golden)) {
    const auto got = (*tokenizer)->encode(text);
    EXPECT_EQ(join(got), join(ids)) << text;
    EXPECT_EQ((*tokenizer)->decode(got), " " + text);
  }
}

const char* const kSentences[] = {
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "  leading spaces, trailing spaces  ",
    "Tabs\tand\nnewlines\n\n",
    "Numbers 1234567890 and 3.14159",
    "Unicode: caf\xC3\xA9, na\xC3\xAFve, \xE6\x88\x91\xE6\x83\xB3\xE5\x9C\xA8, \xF0\x9F\xA6\x99 emoji",
    "Rare \xE1\x9E\x80\xE1\x9E\xB6 script falls back to bytes",
};

// libsentencepiece is the reference; llama2.c's tokenizer.bin holds the same
// vocabulary and scores, so its encoder must agree. The llama.cpp SPM test
// vocabulary is Llama's too, so its ids must also agree.
TEST(TokenizerLlama2, SentencePieceAgreesWithTokenizerBinAndGguf) {
  LB_REQUIRE_SHARED(model, "tokenizers/llama2/tokenizer.model");
  LB_REQUIRE_SHARED(bin, "tokenizers/llama2/tokenizer.bin");
  auto sp = load_sentencepiece_model(model);
  ASSERT_TRUE(sp.ok()) << sp.status().message();
  auto l2c = load_llama2c_tokenizer(bin, 32000);
  ASSERT_TRUE(l2c.ok()) << l2c.status().message();
  EXPECT_EQ((*sp)->vocab_size(), 32000);
  EXPECT_EQ((*sp)->bos_id(), 1);
  EXPECT_EQ((*sp)->eos_id(), 2);
  const std::string gguf_path = testing::shared_path("tokenizers/llamacpp-vocab/ggml-vocab-llama-spm.gguf");
  const auto gguf = gguf_path.empty() ? nullptr : gguf_tokenizer(gguf_path);
  for (const char* sentence : kSentences) {
    SCOPED_TRACE(sentence);
    const auto reference = (*sp)->encode(sentence);
    EXPECT_EQ(join((*l2c)->encode(sentence)), join(reference));
    if (gguf) {
      EXPECT_EQ(join(gguf->encode(sentence)), join(reference));
    }
    EXPECT_EQ((*sp)->decode(reference), std::string(" ") + sentence);
  }
  // Specials in the text: the fragment after one gets its own "▁" prefix.
  EXPECT_EQ(join((*sp)->encode("<s>Hi</s>")), join((*l2c)->encode("<s>Hi</s>")));
}

// Encoding speed on real text: the merge loops must stay O(n log n).
// Round trip over a whole real corpus. Speed is measured by bench/bench_tokenizer.cpp.
TEST(TokenizerCorpus, WikiText2RoundTrip) {
  LB_REQUIRE_SHARED(corpus, "data/wikitext-2-raw/wiki.test.raw");
  LB_REQUIRE_SHARED(spm_path, "tokenizers/llamacpp-vocab/ggml-vocab-llama-spm.gguf");
  LB_REQUIRE_SHARED(gpt2_path, "tokenizers/llamacpp-vocab/ggml-vocab-gpt-2.gguf");
  const std::string text = read_text_file(corpus).value();
  ASSERT_GT(text.size(), 1000000u);
  for (const std::string& path : {spm_path, gpt2_path}) {
    const auto tokenizer = gguf_tokenizer(path);
    ASSERT_NE(tokenizer, nullptr);
    const std::vector<int32_t> ids = tokenizer->encode(text);
    // About 4 bytes per token for English with these vocabularies.
    EXPECT_GT(ids.size(), text.size() / 8);
    EXPECT_LT(ids.size(), text.size() / 2);
    const std::string decoded = tokenizer->decode(ids);
    EXPECT_TRUE(decoded == text || decoded == " " + text) << "decode(encode(wiki.test.raw)) differs";
  }
}

}  // namespace
}  // namespace lowbit
