#include "tokenizer/byte_bpe_tokenizer.h"

#include <array>
#include <unordered_map>

#include "tokenizer/byte_unicode.h"
#include "tokenizer/utf8.h"

namespace lowbit {

namespace {

class ByteBpeTokenizer final : public VocabTokenizer {
 public:
  ByteBpeTokenizer(Vocab vocab, MergeTable merges, SpecialTokenSplitter specials, SpecialIds special_ids,
                   RegexSplitter splitter, ByteBpeOptions options, std::vector<std::string> token_bytes)
      : VocabTokenizer(std::move(vocab), std::move(specials), special_ids, std::move(token_bytes)),
        merges_(std::move(merges)),
        splitter_(std::move(splitter)),
        options_(options) {
    const auto& table = byte_to_unicode_table();
    for (int b = 0; b < 256; ++b) byte_ids_[b] = vocab_.find(table[b]);
  }

  std::vector<int32_t> encode(std::string_view text) const override { return encode_impl(text, nullptr); }

  Expected<std::vector<int32_t>> encode_checked(std::string_view text) const override {
    Status status;
    std::vector<int32_t> ids = encode_impl(text, &status);
    if (!status.ok()) return status;
    return ids;
  }

 private:
  using WordCache = std::unordered_map<std::string_view, std::vector<int32_t>>;

  // Where the pre-tokenizer fails (a regex limit), `error` (if given) gets the
  // error and the result is empty; without `error` the fragment is encoded as
  // one word, as though the pattern had not matched.
  std::vector<int32_t> encode_impl(std::string_view text, Status* error) const {
    std::vector<int32_t> out;
    WordCache cache;
    for (const TextFragment& fragment : specials_.split(text)) {
      if (fragment.token >= 0) {
        out.push_back(fragment.token);
      } else if (Status s = encode_plain(fragment.text, cache, out, error != nullptr); !s.ok()) {
        *error = std::move(s);
        return {};
      }
    }
    return out;
  }

  // An error only when `fail_on_limit`; otherwise a failed split keeps the
  // fragment whole.
  Status encode_plain(std::string_view fragment, WordCache& cache, std::vector<int32_t>& out,
                      bool fail_on_limit) const {
    // llama.cpp turns ill-formed UTF-8 into U+FFFD before splitting; doing the
    // same keeps the regexes on valid input and the ids identical.
    std::string text = sanitize_utf8(fragment);
    if (options_.add_prefix_space && text[0] != ' ') text.insert(0, 1, ' ');
    // The cache keys point into `text`, so they live only as long as this fragment.
    cache.clear();
    Expected<std::vector<std::string_view>> words = splitter_.split(text);
    if (!words.ok() && fail_on_limit) return words.status();
    const std::vector<std::string_view> whole{std::string_view(text)};
    for (const std::string_view word : words.ok() ? *words : whole) {
      auto [it, inserted] = cache.try_emplace(word);
      if (inserted) it->second = encode_word(word);
      out.insert(out.end(), it->second.begin(), it->second.end());
    }
    return Status::ok_status();
  }

  std::vector<int32_t> encode_word(std::string_view word) const {
    const auto& table = byte_to_unicode_table();
    if (options_.ignore_merges) {
      std::string mapped;
      for (const char c : word) mapped += table[static_cast<uint8_t>(c)];
      if (const int32_t id = vocab_.find(mapped); id >= 0) return {id};
    }
    std::vector<int32_t> ids;  // [n_bytes]
    ids.reserve(word.size());
    // A byte without a token (only in a broken vocabulary) is dropped, as in llama.cpp.
    for (const char c : word) {
      if (const int32_t id = byte_ids_[static_cast<uint8_t>(c)]; id >= 0) ids.push_back(id);
    }
    apply_merges(merges_, ids);
    return ids;
  }

  MergeTable merges_;
  RegexSplitter splitter_;
  ByteBpeOptions options_;
  std::array<int32_t, 256> byte_ids_;  // token of each byte's stand-in character
};

}  // namespace

std::unique_ptr<Tokenizer> make_byte_bpe_tokenizer(Vocab vocab, MergeTable merges, SpecialTokenSplitter specials,
                                                   SpecialIds special_ids, RegexSplitter splitter,
                                                   ByteBpeOptions options) {
  std::vector<std::string> token_bytes(vocab.size());
  for (int32_t id = 0; id < vocab.size(); ++id) {
    token_bytes[id] = vocab.is_matched_literally(id) ? vocab.piece(id) : byte_level_to_bytes(vocab.piece(id));
  }
  return std::make_unique<ByteBpeTokenizer>(std::move(vocab), std::move(merges), std::move(specials), special_ids,
                                            std::move(splitter), options, std::move(token_bytes));
}

}  // namespace lowbit
