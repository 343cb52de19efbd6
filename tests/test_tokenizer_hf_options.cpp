// tokenizer.json options on tiny hand-made vocabularies whose ids can be worked
// out by hand: ByteLevel add_prefix_space with added tokens, Metaspace split and
// prepend_scheme, byte fallback, and BOS/EOS from tokenizer_config.json.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "model_writers.h"
#include "tokenizer/byte_unicode.h"
#include "tokenizer/tokenizer.h"

namespace lowbit {
namespace {

using nlohmann::json;
using Ids = std::vector<int32_t>;

std::unique_ptr<Tokenizer> load(const testing::ScopedTempDir& dir, const json& root) {
  const std::string path = dir.file("tokenizer.json");
  EXPECT_TRUE(write_file_atomic(path, root.dump()).ok());
  auto tokenizer = load_hf_tokenizer_json(path);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status().message();
  return tokenizer.ok() ? std::move(tokenizer).value() : nullptr;
}

// 256 byte characters (ids 0..255), "Ġh" 256, "Ġhi" 257, added "<|x|>" 258.
json byte_level_json(bool add_prefix_space) {
  json vocab = json::object();
  const auto& table = byte_to_unicode_table();
  for (int b = 0; b < 256; ++b) vocab[table[b]] = b;
  vocab["\xC4\xA0h"] = 256;
  vocab["\xC4\xA0hi"] = 257;
  return {
      {"added_tokens", {{{"id", 258}, {"content", "<|x|>"}, {"special", true}}}},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"\xC4\xA0 h", "\xC4\xA0h i"}}}},
  };
}

TEST(TokenizerHfOptions, ByteLevelAddPrefixSpace) {
  testing::ScopedTempDir dir("tokenizer_hf_bytelevel");
  const auto plain = load(dir, byte_level_json(false));
  ASSERT_NE(plain, nullptr);
  EXPECT_EQ(plain->encode("hi"), (Ids{'h', 'i'}));  // printable ASCII stands for itself
  EXPECT_EQ(plain->encode(" hi<|x|> hi"), (Ids{257, 258, 257}));
  EXPECT_EQ(plain->decode({257, 258, '\n'}), " hi<|x|>\n");  // id b is byte b
  const auto prefixed = load(dir, byte_level_json(true));
  ASSERT_NE(prefixed, nullptr);
  // Every fragment between specials gets the space, but not a second one.
  EXPECT_EQ(prefixed->encode("hi<|x|>hi"), (Ids{257, 258, 257}));
  EXPECT_EQ(prefixed->encode(" hi"), (Ids{257}));
}

// "▁" 0, "a" 1, "b" 2, "▁a" 3, "a▁" 4, "▁b" 5, "<0x41>" 6, "<unk>" 7; merges
// rank "a ▁" before "▁ a" before "▁ b".
json metaspace_json(const char* prepend_scheme, bool split) {
  const std::string m = "\xE2\x96\x81";
  return {
      {"added_tokens", {{{"id", 7}, {"content", "<unk>"}, {"special", true}}}},
      {"pre_tokenizer", {{"type", "Metaspace"}, {"replacement", m}, {"prepend_scheme", prepend_scheme}, {"split", split}}},
      {"model",
       {{"type", "BPE"},
        {"byte_fallback", true},
        {"unk_token", "<unk>"},
        {"vocab", {{m, 0}, {"a", 1}, {"b", 2}, {m + "a", 3}, {"a" + m, 4}, {m + "b", 5}, {"<0x41>", 6}, {"<unk>", 7}}},
        {"merges", {"a " + m, m + " a", m + " b"}}}},
  };
}

TEST(TokenizerHfOptions, MetaspaceSplitKeepsMergesInsideWords) {
  testing::ScopedTempDir dir("tokenizer_hf_metaspace");
  // Unsplit, "▁a▁b" merges "a▁" first and nothing else applies.
  const auto whole = load(dir, metaspace_json("always", false));
  ASSERT_NE(whole, nullptr);
  EXPECT_EQ(whole->encode("a b"), (Ids{0, 4, 2}));
  // Split into "▁a" and "▁b", the "a▁" merge cannot cross the boundary.
  const auto split = load(dir, metaspace_json("always", true));
  ASSERT_NE(split, nullptr);
  EXPECT_EQ(split->encode("a b"), (Ids{3, 5}));
  EXPECT_EQ(split->decode({3, 5}), " a b");
}

TEST(TokenizerHfOptions, MetaspacePrependSchemeAndByteFallback) {
  testing::ScopedTempDir dir("tokenizer_hf_prepend");
  const auto first = load(dir, metaspace_json("first", true));
  ASSERT_NE(first, nullptr);
  // "first": only the start of the text is prefixed, not the text after <unk>.
  EXPECT_EQ(first->encode("a<unk>b"), (Ids{3, 7, 2}));
  const auto never = load(dir, metaspace_json("never", true));
  ASSERT_NE(never, nullptr);
  EXPECT_EQ(never->encode("a"), (Ids{1}));
  // 'A' has no piece: byte fallback to <0x41>; 'C' has neither, so <unk>.
  EXPECT_EQ(never->encode("AC"), (Ids{6, 7}));
  EXPECT_EQ(never->decode({6, 1}), "Aa");
}

TEST(TokenizerHfOptions, SpecialIdsFromTokenizerConfig) {
  testing::ScopedTempDir dir("tokenizer_hf_config");
  json root = byte_level_json(false);
  root["added_tokens"].push_back({{"id", 259}, {"content", "<s>"}, {"special", true}});
  const auto by_name = load(dir, root);
  ASSERT_NE(by_name, nullptr);
  EXPECT_EQ(by_name->bos_id(), 259);  // "<s>" by name
  EXPECT_EQ(by_name->eos_id(), -1);
  EXPECT_FALSE(by_name->add_bos());
  ASSERT_TRUE(write_file_atomic(dir.file("tokenizer_config.json"),
                                R"({"bos_token": {"content": "<|x|>"}, "eos_token": "<s>", "add_bos_token": true})")
                  .ok());
  const auto configured = load(dir, root);
  ASSERT_NE(configured, nullptr);
  EXPECT_EQ(configured->bos_id(), 258);
  EXPECT_EQ(configured->eos_id(), 259);
  EXPECT_TRUE(configured->add_bos());
}

}  // namespace
}  // namespace lowbit
