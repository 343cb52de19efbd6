// Unit tests of the tokenizer building blocks, each on inputs small enough to know
// the answer by hand: UTF-8 repair, the GPT-2 byte <-> Unicode table (all 256
// bytes), byte-fallback piece names, the merge loop's priority and tie rules, the
// special-token splitter, and the regex pre-tokenizers.
#include <gtest/gtest.h>

#include <set>

#include "tokenizer/bpe_merge.h"
#include "tokenizer/byte_unicode.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/special_tokens.h"
#include "tokenizer/utf8.h"
#include "tokenizer/vocab.h"

namespace lowbit {
namespace {

const std::string kReplacement = "\xEF\xBF\xBD";  // U+FFFD

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

TEST(TokenizerUtf8, SanitizeKeepsValidText) {
  const std::string text = "a\xC3\xA4\xE2\x82\xAC\xF0\x9F\xA6\x99 \x7F";  // a ä € 🦙 space DEL
  EXPECT_EQ(sanitize_utf8(text), text);
  EXPECT_EQ(sanitize_utf8(""), "");
}

TEST(TokenizerUtf8, SanitizeReplacesEachIllFormedByte) {
  struct Case {
    const char* name;
    std::string in;
    std::string out;
  };
  const Case cases[] = {
      {"lone continuation", "a\x80z", "a" + kReplacement + "z"},
      {"cut 3-byte sequence", "\xE4\xB8", repeat(kReplacement, 2)},
      {"cut sequence before ASCII", "\xE4\xB8" "a", repeat(kReplacement, 2) + "a"},
      {"overlong '/'", "\xC0\xAF", repeat(kReplacement, 2)},
      {"surrogate U+D800", "\xED\xA0\x80", repeat(kReplacement, 3)},
      {"above U+10FFFF", "\xF4\x90\x80\x80", repeat(kReplacement, 4)},
      {"0xFF byte", "\xFF", kReplacement},
  };
  for (const Case& c : cases) EXPECT_EQ(sanitize_utf8(c.in), c.out) << c.name;
}

TEST(TokenizerUtf8, ReplaceAll) {
  EXPECT_EQ(replace_all(" a  b ", " ", kSpaceMarker), "\xE2\x96\x81" "a\xE2\x96\x81\xE2\x96\x81" "b\xE2\x96\x81");
  EXPECT_EQ(replace_all("abc", "x", "y"), "abc");
  EXPECT_EQ(replace_all("", "x", "y"), "");
}

TEST(TokenizerByteUnicode, AllBytesRoundTripAndAreDistinct) {
  const auto& table = byte_to_unicode_table();
  std::set<std::string> seen;
  for (int b = 0; b < 256; ++b) {
    SCOPED_TRACE(b);
    EXPECT_TRUE(seen.insert(table[b]).second) << "two bytes share a character";
    EXPECT_EQ(sanitize_utf8(table[b]), table[b]);
    EXPECT_EQ(byte_level_to_bytes(table[b]), std::string(1, static_cast<char>(b)));
  }
  // Known points of openai/gpt-2 bytes_to_unicode.
  EXPECT_EQ(table[' '], "\xC4\xA0");   // 'Ġ' U+0120
  EXPECT_EQ(table['\n'], "\xC4\x8A");  // 'Ċ' U+010A
  EXPECT_EQ(table['A'], "A");
  EXPECT_EQ(table[0x00], "\xC4\x80");  // U+0100, first remapped byte
  EXPECT_EQ(table[0xAD], "\xC5\x83");  // U+0143, last remapped byte
  EXPECT_EQ(table[0xFF], "\xC3\xBF");  // 'ÿ' stands for itself
  EXPECT_EQ(unicode_to_byte(0x144), -1);
  EXPECT_EQ(unicode_to_byte(' '), -1);  // a raw space is not in the table
}

TEST(TokenizerByteUnicode, DecodeKeepsCharactersOutsideTheTable) {
  EXPECT_EQ(byte_level_to_bytes("\xC4\xA0hi\xE2\x82\xAC"), " hi\xE2\x82\xAC");
}

TEST(TokenizerVocab, BytePieces) {
  for (int b = 0; b < 256; ++b) EXPECT_EQ(parse_byte_piece(byte_piece(static_cast<uint8_t>(b))), b) << b;
  EXPECT_EQ(byte_piece(0x0A), "<0x0A>");
  EXPECT_EQ(parse_byte_piece("<0xab>"), -1);  // SentencePiece writes upper-case hex
  EXPECT_EQ(parse_byte_piece("<0x4G>"), -1);
  EXPECT_EQ(parse_byte_piece("<0x41"), -1);
  EXPECT_EQ(parse_byte_piece("<0x041>"), -1);
}

TEST(TokenizerVocab, FirstIdKeepsADuplicatePiece) {
  const Vocab vocab({"a", "b", "a"}, {});
  EXPECT_EQ(vocab.find("a"), 0);
  EXPECT_EQ(vocab.find("c"), -1);
  EXPECT_EQ(vocab.kind(2), TokenKind::kNormal);
}

// ids of the pieces of `vocab`, for writing expectations by name.
std::vector<int32_t> ids_of(const Vocab& vocab, const std::vector<std::string>& pieces) {
  std::vector<int32_t> ids;
  for (const auto& p : pieces) ids.push_back(vocab.find(p));
  return ids;
}

std::vector<int32_t> merge_by_score(const std::vector<std::string>& pieces, const std::vector<float>& scores,
                                    const std::vector<std::string>& symbols) {
  const Vocab vocab(pieces, {});
  std::vector<int32_t> ids = ids_of(vocab, symbols);
  apply_merges(merges_from_scores(vocab, scores), ids);
  return ids;
}

TEST(TokenizerMerge, HighestScoreFirst) {
  // "abb": with ab > bb the result is [ab, b]; with bb > ab it is [a, bb].
  EXPECT_EQ(merge_by_score({"a", "b", "ab", "bb"}, {0, 0, -1, -2}, {"a", "b", "b"}),
            (std::vector<int32_t>{2, 1}));
  EXPECT_EQ(merge_by_score({"a", "b", "ab", "bb"}, {0, 0, -2, -1}, {"a", "b", "b"}),
            (std::vector<int32_t>{0, 3}));
}

TEST(TokenizerMerge, LeftmostWinsATie) {
  EXPECT_EQ(merge_by_score({"a", "aa"}, {0, -1}, {"a", "a", "a"}), (std::vector<int32_t>{1, 0}));
}

TEST(TokenizerMerge, MergesChainAndSkipStalePairs) {
  // aaaa -> aa aa -> aaaa; the queued (a,a) pairs that overlap a merge are stale.
  EXPECT_EQ(merge_by_score({"a", "aa", "aaaa"}, {0, -1, -2}, {"a", "a", "a", "a"}), (std::vector<int32_t>{2}));
  // Unknown symbols (-1) never merge and stay in place.
  const Vocab vocab({"a", "aa"}, {});
  std::vector<int32_t> ids = {0, -1, 0, 0};
  apply_merges(merges_from_scores(vocab, {0, -1}), ids);
  EXPECT_EQ(ids, (std::vector<int32_t>{0, -1, 1}));
}

TEST(TokenizerMerge, SplitsOnlyAtCharacterBoundaries) {
  // "ä" is two bytes; the piece "äb" must split as "ä" + "b", never inside "ä".
  const Vocab vocab({"\xC3\xA4", "b", "\xC3\xA4" "b", "\xC3", "\xA4" "b"}, {});
  const MergeTable table = merges_from_scores(vocab, {0, 0, -1, 0, 0});
  EXPECT_EQ(table.size(), 1u);
  ASSERT_NE(table.find(0, 1), nullptr);
  EXPECT_EQ(table.find(3, 4), nullptr);
}

TEST(TokenizerMerge, RankedPairs) {
  const Vocab vocab({"a", "b", "c", "ab", "bc", "abc"}, {});
  size_t skipped = 0;
  // bc ranks before ab; "x y" names pieces that do not exist.
  const MergeTable table = merges_from_ranked_pairs(vocab, {{"b", "c"}, {"a", "b"}, {"x", "y"}, {"a", "bc"}}, &skipped);
  EXPECT_EQ(skipped, 1u);
  std::vector<int32_t> ids = ids_of(vocab, {"a", "b", "c"});
  apply_merges(table, ids);
  EXPECT_EQ(ids, ids_of(vocab, {"abc"}));
  ids = ids_of(vocab, {"a", "b", "a", "b"});
  apply_merges(table, ids);
  EXPECT_EQ(ids, ids_of(vocab, {"ab", "ab"}));
}

std::string describe(const std::vector<TextFragment>& fragments) {
  std::string out;
  for (const auto& f : fragments) out += f.token >= 0 ? "[" + std::to_string(f.token) + "]" : "'" + std::string(f.text) + "'";
  return out;
}

TEST(TokenizerSpecialSplit, LongestFirstAdjacentAndAtTheEnds) {
  const SpecialTokenSplitter splitter({{"<|a|>", 1}, {"<|ab|>", 2}, {"<", 3}});
  EXPECT_EQ(describe(splitter.split("x<|ab|><|a|>y")), "'x'[2][1]'y'");
  EXPECT_EQ(describe(splitter.split("<|a|>")), "[1]");
  EXPECT_EQ(describe(splitter.split("a<b")), "'a'[3]'b'");
  EXPECT_EQ(describe(splitter.split("no specials")), "'no specials'");
  EXPECT_EQ(describe(splitter.split("")), "");
  const SpecialTokenSplitter none;
  EXPECT_EQ(describe(none.split("<|a|>")), "'<|a|>'");
}

TEST(TokenizerSpecialSplit, FromVocabKinds) {
  const Vocab vocab({"<unk>", "<s>", "</s>", "s", "<0x41>"},
                    {TokenKind::kUnknown, TokenKind::kControl, TokenKind::kControl, TokenKind::kNormal, TokenKind::kByte});
  const SpecialTokenSplitter splitter(vocab);
  EXPECT_EQ(splitter.size(), 3u);
  EXPECT_EQ(describe(splitter.split("<s>s</s><0x41><unk>")), "[1]'s'[2]'<0x41>'[0]");
}

std::vector<std::string> split(const std::vector<std::string>& patterns, const std::string& text) {
  auto splitter = RegexSplitter::compile(patterns);
  EXPECT_TRUE(splitter.ok()) << splitter.status().message();
  if (!splitter.ok()) return {};
  auto pieces = splitter->split(text);
  EXPECT_TRUE(pieces.ok()) << pieces.status().message();
  if (!pieces.ok()) return {};
  std::vector<std::string> out;
  for (const auto piece : *pieces) out.emplace_back(piece);
  return out;
}

using Pieces = std::vector<std::string>;

TEST(TokenizerRegex, Gpt2Words) {
  EXPECT_EQ(split({kGpt2Pattern}, "I'm  here 123!!"), (Pieces{"I", "'m", " ", " here", " 123", "!!"}));
  // A whitespace run before a word leaves its last space to the word; at the end
  // of the text it stays whole.
  EXPECT_EQ(split({kGpt2Pattern}, "a\t\n b  "), (Pieces{"a", "\t\n", " b", "  "}));
  EXPECT_EQ(split({kGpt2Pattern}, "\xD0\xBD\xD0\xB0 \xE2\x82\xAC" "5"), (Pieces{"\xD0\xBD\xD0\xB0", " \xE2\x82\xAC", "5"}));
  EXPECT_TRUE(split({kGpt2Pattern}, "").empty());
}

TEST(TokenizerRegex, PresetsApplyPatternsInTurn) {
  auto smollm = find_pretokenizer_preset("smollm");
  ASSERT_TRUE(smollm.ok());
  EXPECT_EQ(split(smollm->patterns, "abc 123"), (Pieces{"abc", " ", "1", "2", "3"}));
  auto gpt2 = find_pretokenizer_preset("gpt-2");
  ASSERT_TRUE(gpt2.ok());
  EXPECT_EQ(split(gpt2->patterns, "abc 123"), (Pieces{"abc", " 123"}));
  auto llama3 = find_pretokenizer_preset("llama-bpe");
  ASSERT_TRUE(llama3.ok());
  EXPECT_TRUE(llama3->ignore_merges);
  EXPECT_EQ(split(llama3->patterns, "12345 HE'S"), (Pieces{"123", "45", " HE", "'S"}));
}

TEST(TokenizerRegex, UnmatchedTextIsKept) {
  EXPECT_EQ(split({"[0-9]+"}, "ab12cd3"), (Pieces{"ab", "12", "cd", "3"}));
  EXPECT_EQ(split({"x*"}, "abc"), (Pieces{"abc"}));  // empty matches split nothing
}

TEST(TokenizerRegex, ErrorsNameThePattern) {
  auto bad = RegexSplitter::compile({"(unclosed"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("(unclosed"), std::string::npos) << bad.status().message();
  auto unknown = find_pretokenizer_preset("no-such-pre");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("no-such-pre"), std::string::npos);
  EXPECT_NE(unknown.status().message().find("smollm"), std::string::npos);
}

// A tokenizer.json pattern is untrusted (issue 18): its cost is bounded, and
// exceeding a bound is an error naming the pattern, not a silent split.
TEST(TokenizerRegex, LimitsAreErrors) {
  // (a*)*[bc] on 40 'a': 2^40 ways to backtrack, stopped by the match limit. ((a*)*b
  // would be answered at once: PCRE2 first checks that the text holds a 'b'.)
  auto catastrophic = RegexSplitter::compile({"(a*)*[bc]"});
  ASSERT_TRUE(catastrophic.ok()) << catastrophic.status().message();
  auto pieces = catastrophic->split(std::string(40, 'a'));
  ASSERT_FALSE(pieces.ok());
  EXPECT_NE(pieces.status().message().find("pre-tokenizer pattern '(a*)*[bc]': pattern too complex for the text: "
                                           "match limit exceeded (at byte 0 of a 40-byte piece)"),
            std::string::npos)
      << pieces.status().message();
  // The same pattern on text it answers quickly still splits.
  EXPECT_EQ(split({"(a*)*[bc]"}, "xaab"), (Pieces{"x", "aab"}));
  // Nesting and length are bounded at compile time.
  auto deep = RegexSplitter::compile({std::string(40, '(') + "a" + std::string(40, ')')});
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.status().message().find("parentheses are too deeply nested"), std::string::npos)
      << deep.status().message();
  auto long_pattern = RegexSplitter::compile({std::string(RegexSplitter::kMaxPatternBytes + 1, 'a')});
  ASSERT_FALSE(long_pattern.ok());
  EXPECT_EQ(long_pattern.status().message(), "pre-tokenizer pattern of 4097 bytes: too complex, at most 4096");
  EXPECT_TRUE(RegexSplitter::compile({std::string(RegexSplitter::kMaxPatternBytes, 'a')}).ok());
}

}  // namespace
}  // namespace lowbit
