#include "tokenizer/spm_tokenizer.h"

#include <array>

#include "tokenizer/utf8.h"

namespace lowbit {

namespace {

class SpmTokenizer final : public VocabTokenizer {
 public:
  SpmTokenizer(Vocab vocab, MergeTable merges, SpecialTokenSplitter specials, SpecialIds special_ids,
               SpmOptions options, std::vector<std::string> token_bytes)
      : VocabTokenizer(std::move(vocab), std::move(specials), special_ids, std::move(token_bytes)),
        merges_(std::move(merges)),
        options_(options) {
    byte_ids_.fill(-1);
    for (int b = 0; b < 256; ++b) byte_ids_[b] = vocab_.find(byte_piece(static_cast<uint8_t>(b)));
  }

  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> out;
    bool first = true;
    for (const TextFragment& fragment : specials_.split(text)) {
      if (fragment.token >= 0) {
        out.push_back(fragment.token);
      } else {
        encode_plain(fragment.text, first, out);
      }
      first = false;
    }
    return out;
  }

 private:
  void encode_plain(std::string_view fragment, bool at_text_start, std::vector<int32_t>& out) const {
    std::string text;
    const bool prefix = options_.space_prefix == SpacePrefix::kEveryFragment ||
                        (options_.space_prefix == SpacePrefix::kFirstFragment && at_text_start);
    if (prefix) text = options_.escape_spaces ? std::string(kSpaceMarker) : std::string(" ");
    text += options_.escape_spaces ? replace_all(fragment, " ", kSpaceMarker) : std::string(fragment);

    if (!options_.split_at_space_marker) {
      encode_word(text, out);
      return;
    }
    const std::string_view all(text);
    size_t begin = 0;
    while (begin < all.size()) {
      size_t end = all.find(kSpaceMarker, begin + 1);
      if (end == std::string_view::npos) end = all.size();
      encode_word(all.substr(begin, end - begin), out);
      begin = end;
    }
  }

  void encode_word(std::string_view word, std::vector<int32_t>& out) const {
    std::vector<int32_t> ids;  // [n_symbols]
    ids.reserve(word.size());
    size_t i = 0;
    while (i < word.size()) {
      const size_t n = std::min(utf8_sequence_length(static_cast<uint8_t>(word[i])), word.size() - i);
      const std::string_view ch = word.substr(i, n);
      i += n;
      if (const int32_t id = vocab_.find(ch); id >= 0) {
        ids.push_back(id);
        continue;
      }
      bool all_bytes = true;
      for (const char c : ch) all_bytes = all_bytes && byte_ids_[static_cast<uint8_t>(c)] >= 0;
      if (all_bytes) {
        for (const char c : ch) ids.push_back(byte_ids_[static_cast<uint8_t>(c)]);
      } else if (options_.unk_id >= 0) {
        ids.push_back(options_.unk_id);
      }
    }
    apply_merges(merges_, ids);
    out.insert(out.end(), ids.begin(), ids.end());
  }

  MergeTable merges_;
  SpmOptions options_;
  std::array<int32_t, 256> byte_ids_;  // token of each byte-fallback piece, -1 if absent
};

}  // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(Vocab vocab, MergeTable merges, SpecialTokenSplitter specials,
                                              SpecialIds special_ids, SpmOptions options) {
  std::vector<std::string> token_bytes(vocab.size());
  for (int32_t id = 0; id < vocab.size(); ++id) {
    const std::string& piece = vocab.piece(id);
    const TokenKind kind = vocab.kind(id);
    if (const int byte = parse_byte_piece(piece); byte >= 0 && kind == TokenKind::kByte) {
      token_bytes[id] = std::string(1, static_cast<char>(byte));
    } else if (vocab.is_matched_literally(id) || !options.escape_spaces) {
      token_bytes[id] = piece;
    } else {
      token_bytes[id] = replace_all(piece, kSpaceMarker, " ");
    }
  }
  return std::make_unique<SpmTokenizer>(std::move(vocab), std::move(merges), std::move(specials), special_ids,
                                        options, std::move(token_bytes));
}

}  // namespace lowbit
