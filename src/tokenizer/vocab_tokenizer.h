// What the SentencePiece-style and byte-level tokenizers share: a vocabulary, the
// special-token splitter, BOS/EOS, and the bytes of every token, computed once at
// load so decoding is a table lookup.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/special_tokens.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

namespace lowbit {

struct SpecialIds {
  int32_t bos = -1;  // -1 if none
  int32_t eos = -1;
  bool add_bos = false;
};

// An id from a file, or -1 when it is absent (< 0) or outside the vocabulary
// (GGUF writers use 0xFFFFFFFF for "none").
int32_t checked_token_id(int64_t id, int32_t vocab_size);

class VocabTokenizer : public Tokenizer {
 public:
  std::string token_to_bytes(int32_t id) const override {
    return vocab_.contains(id) ? token_bytes_[id] : std::string();
  }
  int32_t vocab_size() const override { return vocab_.size(); }
  int32_t bos_id() const override { return special_ids_.bos; }
  int32_t eos_id() const override { return special_ids_.eos; }
  bool add_bos() const override { return special_ids_.add_bos; }

  const Vocab& vocab() const { return vocab_; }

 protected:
  // `token_bytes` has one entry per id.
  VocabTokenizer(Vocab vocab, SpecialTokenSplitter specials, SpecialIds special_ids,
                 std::vector<std::string> token_bytes)
      : vocab_(std::move(vocab)),
        specials_(std::move(specials)),
        special_ids_(special_ids),
        token_bytes_(std::move(token_bytes)) {}

  Vocab vocab_;
  SpecialTokenSplitter specials_;
  SpecialIds special_ids_;
  std::vector<std::string> token_bytes_;  // [vocab_size]
};

}  // namespace lowbit
