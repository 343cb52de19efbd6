// Calibration windows: reproducible from the seed, every window L tokens long and
// found in the tokenized corpus at the offset it states (BOS options included),
// GPTQ's document sampling never picks a document shorter than L, every start
// offset is reachable, and malformed inputs fail naming the file and line.
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "model_writers.h"
#include "pipeline/calibration.h"
#include "test_util.h"

namespace lowbit {
namespace {

using testing::ScopedTempDir;

std::unique_ptr<Tokenizer> stories_tokenizer(const std::string& gguf_path) {
  Expected<std::unique_ptr<Tokenizer>> t = load_gguf_tokenizer_file(gguf_path);
  EXPECT_TRUE(t.ok()) << t.status().message();
  return t.ok() ? std::move(t).value() : nullptr;
}

// Every window equals tokens[offset, offset + L) of its document, except the first
// token under kFirstToken, which is BOS.
void expect_windows_in(const CalibrationSet& set, const std::vector<std::vector<int32_t>>& documents,
                       const CalibrationOptions& o, int32_t bos_id) {
  ASSERT_EQ(set.n_samples(), o.n_samples);
  ASSERT_EQ(set.seq_len, o.seq_len);
  ASSERT_EQ(set.tokens.size(), static_cast<size_t>(o.n_samples) * o.seq_len);
  for (int i = 0; i < set.n_samples(); ++i) {
    const CalibrationWindow& w = set.windows[i];
    ASSERT_GE(w.document, 0);
    ASSERT_LT(w.document, static_cast<int64_t>(documents.size()));
    const std::vector<int32_t>& doc = documents[w.document];
    ASSERT_GE(w.offset, 0);
    ASSERT_LE(w.offset + o.seq_len, static_cast<int64_t>(doc.size())) << "window " << i;
    const int32_t* s = set.sample(i);
    for (int t = 0; t < o.seq_len; ++t) {
      const int32_t want = (t == 0 && o.bos == CalibrationBos::kFirstToken) ? bos_id : doc[w.offset + t];
      ASSERT_EQ(s[t], want) << "window " << i << " token " << t;
    }
  }
}

class CalibrationStories : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string gguf = testing::shared_path("models/stories260K/stories260K.gguf");
    text_path_ = testing::shared_path("data/tinystories/tinystories_sample.txt");
    if (gguf.empty() || text_path_.empty()) GTEST_SKIP() << "shared test material missing (stories260K, tinystories)";
    tokenizer_ = stories_tokenizer(gguf);
    ASSERT_NE(tokenizer_, nullptr);
    corpus_ = tokenizer_->encode(std::move(read_text_file(text_path_)).value());
    ASSERT_GT(corpus_.size(), 500u);
  }

  std::string text_path_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::vector<int32_t> corpus_;  // the text tokenized once, no BOS
};

TEST_F(CalibrationStories, SameSeedSameWindowsDifferentSeedDifferentWindows) {
  const CalibrationOptions o{.n_samples = 8, .seq_len = 64, .seed = 1234, .bos = CalibrationBos::kNone};
  Expected<CalibrationSet> a = load_calibration(text_path_, *tokenizer_, o);
  Expected<CalibrationSet> b = load_calibration(text_path_, *tokenizer_, o);
  ASSERT_TRUE(a.ok()) << a.status().message();
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(a->tokens, b->tokens);
  CalibrationOptions other = o;
  other.seed = 1235;
  Expected<CalibrationSet> c = load_calibration(text_path_, *tokenizer_, other);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(a->tokens, c->tokens);
  int same_offsets = 0;
  for (int i = 0; i < o.n_samples; ++i) same_offsets += a->windows[i].offset == c->windows[i].offset;
  EXPECT_LT(same_offsets, 2);
}

TEST_F(CalibrationStories, TextWindowsAppearAtTheirOffsetsForEveryBosMode) {
  const int32_t bos = tokenizer_->bos_id();
  ASSERT_GE(bos, 0);
  std::vector<int32_t> with_bos = {bos};
  with_bos.insert(with_bos.end(), corpus_.begin(), corpus_.end());
  for (CalibrationBos mode : {CalibrationBos::kNone, CalibrationBos::kFirstToken, CalibrationBos::kDocumentStart}) {
    const CalibrationOptions o{.n_samples = 16, .seq_len = 100, .seed = 5, .bos = mode};
    Expected<CalibrationSet> set = load_calibration(text_path_, *tokenizer_, o);
    ASSERT_TRUE(set.ok()) << set.status().message();
    expect_windows_in(*set, {mode == CalibrationBos::kDocumentStart ? with_bos : corpus_}, o, bos);
  }
}

TEST(Calibration, EveryStartOffsetIsReachableAndUniform) {
  // 10 tokens, windows of 8: starts 0, 1, 2 each with probability 1/3.
  const std::vector<int32_t> corpus = {10, 11, 12, 13, 14, 15, 16, 17, 18, 19};
  const CalibrationOptions o{.n_samples = 3000, .seq_len = 8, .seed = 77, .bos = CalibrationBos::kNone};
  Expected<CalibrationSet> set = sample_token_windows(corpus, -1, o, "ten tokens");
  ASSERT_TRUE(set.ok()) << set.status().message();
  expect_windows_in(*set, {corpus}, o, -1);
  std::map<int64_t, int> counts;
  for (const CalibrationWindow& w : set->windows) ++counts[w.offset];
  ASSERT_EQ(counts.size(), 3u);
  for (const auto& [offset, count] : counts) {
    // 1000 expected, standard deviation 26: a fixed seed, so this is a pinned value, not a flaky bound.
    EXPECT_GT(count, 900) << "offset " << offset;
    EXPECT_LT(count, 1100) << "offset " << offset;
  }
  // A window as long as the corpus has one start.
  Expected<CalibrationSet> whole =
      sample_token_windows(corpus, -1, {.n_samples = 2, .seq_len = 10, .seed = 1, .bos = CalibrationBos::kNone}, "ten");
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(whole->windows[1].offset, 0);
}

TEST(Calibration, TooFewTokensAndBadOptionsFailNamingTheSource) {
  const std::vector<int32_t> corpus(50, 7);
  Expected<CalibrationSet> s = sample_token_windows(
      corpus, 1, {.n_samples = 4, .seq_len = 51, .seed = 0, .bos = CalibrationBos::kNone}, "wiki.txt");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("wiki.txt: 50 tokens, fewer than the calibration length 51"), std::string::npos)
      << s.status().message();
  // BOS in front makes 51.
  EXPECT_TRUE(sample_token_windows(
                  corpus, 1, {.n_samples = 4, .seq_len = 51, .seed = 0, .bos = CalibrationBos::kDocumentStart}, "w")
                  .ok());
  EXPECT_FALSE(sample_token_windows(corpus, -1,
                                    {.n_samples = 4, .seq_len = 8, .seed = 0, .bos = CalibrationBos::kFirstToken}, "w")
                   .ok());
  EXPECT_FALSE(
      sample_token_windows(corpus, 1, {.n_samples = 0, .seq_len = 8, .seed = 0, .bos = CalibrationBos::kNone}, "w")
          .ok());
  EXPECT_FALSE(
      sample_token_windows(corpus, 1, {.n_samples = 2, .seq_len = 0, .seed = 0, .bos = CalibrationBos::kNone}, "w")
          .ok());
}

class CalibrationJsonl : public CalibrationStories {
 protected:
  // Documents of about 5, 80, 300 and 12 tokens and a blank line; JSON escapes inside.
  std::string write_corpus() {
    const std::string story = std::move(read_text_file(text_path_)).value();
    docs_ = {"Once upon a time.", story.substr(0, 300), story.substr(300, 1200), "The \"cat\" sat.\nThe end."};
    std::string jsonl;
    for (const std::string& d : docs_) jsonl += nlohmann::json{{"id", 1}, {"text", d}}.dump() + "\n";
    jsonl.insert(jsonl.find('\n') + 1, "\n");  // a blank line after the first document is skipped
    const std::string path = dir_.file("corpus.jsonl");
    EXPECT_TRUE(write_file_atomic(path, jsonl).ok());
    return path;
  }

  ScopedTempDir dir_{"calib_jsonl"};
  std::vector<std::string> docs_;
};

TEST_F(CalibrationJsonl, DocumentWindowsComeFromLongEnoughDocuments) {
  const std::string path = write_corpus();
  Expected<std::vector<std::string>> texts = read_jsonl_texts(path);
  ASSERT_TRUE(texts.ok()) << texts.status().message();
  EXPECT_EQ(*texts, docs_);
  for (CalibrationBos mode : {CalibrationBos::kNone, CalibrationBos::kDocumentStart}) {
    std::vector<std::vector<int32_t>> tokenized;
    for (const std::string& d : docs_) {
      std::vector<int32_t> t;
      if (mode == CalibrationBos::kDocumentStart) t.push_back(tokenizer_->bos_id());
      const std::vector<int32_t> body = tokenizer_->encode(d);
      t.insert(t.end(), body.begin(), body.end());
      tokenized.push_back(t);
    }
    ASSERT_LT(tokenized[0].size(), 64u);
    ASSERT_GT(tokenized[2].size(), 64u);
    const CalibrationOptions o{.n_samples = 20, .seq_len = 64, .seed = 9, .bos = mode};
    Expected<CalibrationSet> set = load_calibration(path, *tokenizer_, o);
    ASSERT_TRUE(set.ok()) << set.status().message();
    expect_windows_in(*set, tokenized, o, tokenizer_->bos_id());
    Expected<CalibrationSet> again = load_calibration(path, *tokenizer_, o);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(set->tokens, again->tokens);
  }
  // No document is 10000 tokens long: an error, not an endless loop.
  Expected<CalibrationSet> none =
      load_calibration(path, *tokenizer_, {.n_samples = 1, .seq_len = 10000, .seed = 0, .bos = CalibrationBos::kNone});
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("none of the 4 documents has 10000 tokens"), std::string::npos)
      << none.status().message();
}

TEST_F(CalibrationJsonl, MalformedLinesAreNamed) {
  const std::string path = dir_.file("bad.jsonl");
  ASSERT_TRUE(write_file_atomic(path, "{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"text\": \"c\"\n").ok());
  Expected<std::vector<std::string>> bad = read_jsonl_texts(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("bad.jsonl:3: not a JSON object"), std::string::npos) << bad.status().message();
  ASSERT_TRUE(write_file_atomic(path, "{\"text\": \"a\"}\n\n{\"body\": \"b\"}\n").ok());
  bad = read_jsonl_texts(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("bad.jsonl:3: no string field \"text\""), std::string::npos)
      << bad.status().message();
  ASSERT_TRUE(write_file_atomic(path, "[1, 2]\n").ok());
  Expected<CalibrationSet> set = load_calibration(path, *tokenizer_, {});
  ASSERT_FALSE(set.ok());
  EXPECT_NE(set.status().message().find("bad.jsonl:1"), std::string::npos) << set.status().message();
}

TEST_F(CalibrationStories, C4ValidationSampledLikeGptq) {
  LB_REQUIRE_SHARED(c4, "data/c4/c4_validation_2k.jsonl");
  const CalibrationOptions o{.n_samples = 4, .seq_len = 256, .seed = 0, .bos = CalibrationBos::kNone};
  Expected<CalibrationSet> set = load_calibration(c4, *tokenizer_, o);
  ASSERT_TRUE(set.ok()) << set.status().message();
  Expected<std::vector<std::string>> texts = read_jsonl_texts(c4);
  ASSERT_TRUE(texts.ok());
  EXPECT_EQ(texts->size(), 2000u);
  std::vector<std::vector<int32_t>> tokenized(texts->size());
  for (const CalibrationWindow& w : set->windows) tokenized[w.document] = tokenizer_->encode((*texts)[w.document]);
  expect_windows_in(*set, tokenized, o, -1);
}

}  // namespace
}  // namespace lowbit
